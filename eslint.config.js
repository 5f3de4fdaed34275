import neostandard from 'neostandard'

export default neostandard({
  ts: true,
  ignores: ['.readme-check-*/**', '.node24/**', 'dist/**', 'coverage/**', '.tap/**', 'node_modules/**']
})

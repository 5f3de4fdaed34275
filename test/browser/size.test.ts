// The browser client stays small: its gzip size, as built and minified, under 5 KB.
import { readFile } from 'node:fs/promises'
import { gzipSync } from 'node:zlib'
import t from 'tap'
import { CLIENT_FILE } from './helpers.js'

const LIMIT = 5 * 1024

t.test('the built client is under 5 KB gzipped, as built and minified', async (t) => {
  const code = await readFile(CLIENT_FILE, 'utf8')
  const built = gzipSync(code, { level: 9 }).length
  t.comment(`dist/client/index.js: ${code.length} B, ${built} B gzipped`)
  t.ok(built < LIMIT, `${built} B gzipped < ${LIMIT} B`)
  t.notMatch(code, /^\s*import\s/m, 'imports nothing: it is served as one script')

  let esbuild: typeof import('esbuild') | undefined
  try {
    esbuild = await import('esbuild')
  } catch {
    t.comment('esbuild is not installed: no minified size')
    return
  }
  const minified = (await esbuild.transform(code, { minify: true, format: 'esm', target: 'es2020' })).code
  const gzipped = gzipSync(minified, { level: 9 }).length
  t.comment(`minified with esbuild: ${minified.length} B, ${gzipped} B gzipped`)
  t.ok(gzipped < LIMIT, `${gzipped} B minified and gzipped < ${LIMIT} B`)
})

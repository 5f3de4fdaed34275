// Coverage is held to 100% on the library only: every test instruments all of lib/.
import { readdirSync } from 'node:fs'

const files = readdirSync(new URL('../lib/', import.meta.url), { recursive: true })
  .filter((name) => String(name).endsWith('.ts'))
  .map((name) => `lib/${name}`)

export default function coverageMap () {
  return files
}

// Coverage is held to 100% on the server library: every test instruments all of lib/.
// lib/client/ is browser code, covered by the browser suite rather than by Node.
// The example's test starts the demo under another TypeScript loader, whose
// coverage of lib/ would not line up with the suite's, so it records none.
import { readdirSync } from 'node:fs'

const files = readdirSync(new URL('../lib/', import.meta.url), { recursive: true })
  .map(String)
  .filter((name) => name.endsWith('.ts') && !name.startsWith('client/'))
  .map((name) => `lib/${name}`)

export default function coverageMap (testFile) {
  return /(^|\/)test\/example\.test\.ts$/.test(testFile.replaceAll('\\', '/')) ? null : files
}

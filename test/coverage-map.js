// Coverage is held to 100% on the library only: every test instruments all of lib/.
// The example's test starts the demo under another TypeScript loader, whose
// coverage of lib/ would not line up with the suite's, so it records none.
import { readdirSync } from 'node:fs'

const files = readdirSync(new URL('../lib/', import.meta.url), { recursive: true })
  .filter((name) => String(name).endsWith('.ts'))
  .map((name) => `lib/${name}`)

export default function coverageMap (testFile) {
  return testFile.endsWith('example.test.ts') ? null : files
}

// Coverage is held to 100% on the server library: every test instruments all of lib/.
// lib/client/ is browser code, covered by the browser suite rather than by Node.
// The tests that start an app in a child process under another TypeScript
// loader (the demo; the proxy tests' app process; the instances killed by redis/producer-lost and redis/presence-killed) would record coverage of lib/
// that does not line up with the suite's, so they record none.
import { readdirSync } from 'node:fs'

const files = readdirSync(new URL('../lib/', import.meta.url), { recursive: true })
  .map(String)
  .filter((name) => name.endsWith('.ts') && !name.startsWith('client/'))
  .map((name) => `lib/${name}`)

export default function coverageMap (testFile) {
  return /(^|\/)test\/(example|proxy\/nginx|client-node|redis\/producer-lost|redis\/presence-killed)\.test\.ts$/.test(testFile.replaceAll('\\', '/')) ? null : files
}

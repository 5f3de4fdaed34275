// `npx tsx bench/profile.ts [--variant plugin] [--n 1000] [--bursts 5]`: runs one server under
// `node --cpu-prof` through both bursts and prints the functions with the most self time.
import { mkdtempSync, readdirSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { parseArgs } from 'node:util'
import { selfTimes } from './cpu-profile.js'
import { SMALL_PAD } from './event.js'
import type { WindowResult } from './load-client.js'
import { VARIANTS, startLoadClient, startServer, type VariantName } from './measure.js'
import { stopChild } from './proc.js'

const { values } = parseArgs({
  options: {
    variant: { type: 'string', default: 'plugin' },
    n: { type: 'string', default: '1000' },
    bursts: { type: 'string', default: '5' },
    top: { type: 'string', default: '30' }
  }
})
const variant = values.variant as VariantName
if (!VARIANTS.includes(variant)) throw new Error(`unknown variant ${variant}; known: ${VARIANTS.join(', ')}`)
const n = Number(values.n)
const bursts = Number(values.bursts)

const dir = mkdtempSync(join(tmpdir(), 'push-stream-profile-'))
const server = await startServer(variant, ['--cpu-prof', `--cpu-prof-dir=${dir}`])
const client = await startLoadClient()
try {
  const port = server.ready.port as number
  let seq = 1
  await client.rpc.call('connect', { port, n, firstSeq: seq })
  // One-event publishes, then 20 per tick, as in the benchmark.
  for (const perTick of [1, 20]) {
    for (let i = 0; i < bursts; i++) {
      const arrived = client.rpc.call<WindowResult>('expect', { until: seq + 199, timeoutMs: 60_000 })
      await server.rpc.call('publish', { from: seq, count: 200, perTick, intervalMs: 0, pad: SMALL_PAD })
      const result = await arrived
      if (result.lost + result.outOfOrder > 0 || result.timedOut) throw new Error(`events lost or out of order: ${JSON.stringify(result)}`)
      seq += 200
    }
  }
  await client.rpc.call('closeAll')
} finally {
  await stopChild(client)
  await stopChild(server)
}

// The main thread's profile is the busy one; the module loader's thread writes its own.
const profiles = readdirSync(dir).filter((name) => name.endsWith('.cpuprofile')).map((name) => join(dir, name))
const busiest = profiles
  .map((path) => ({ path, times: selfTimes(path) }))
  .sort((a, b) => busy(b.times) - busy(a.times))[0]
if (busiest === undefined) throw new Error(`no profile was written to ${dir}`)

console.log(`${variant}, ${n} clients, ${bursts} bursts of 200 at 1 per tick and ${bursts} at 20 per tick (whole process life, start-up included)`)
console.log(`profile: ${busiest.path} (open it in Chrome DevTools for the call tree)\n`)
console.log('   self ms  share  function')
for (const entry of busiest.times.slice(0, Number(values.top))) {
  console.log(`${entry.ms.toFixed(1).padStart(10)} ${(entry.share * 100).toFixed(1).padStart(5)}%  ${entry.name}  ${entry.where}`)
}

function busy (times: ReturnType<typeof selfTimes>): number {
  return times.filter((entry) => entry.name !== '(idle)').reduce((sum, entry) => sum + entry.ms, 0)
}

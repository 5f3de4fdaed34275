// The benchmark runner: `npm run bench -- [--quick] [--check] [--runs n] [--only a,b] [--out file.md]`.
import { existsSync } from 'node:fs'
import { connect } from 'node:net'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import {
  FLOOR, VARIANTS, failures, measureBroadcast, measureIdleMemory, measureStall, startLoadClient,
  type Settings, type VariantName
} from './measure.js'
import { canPin, stopChild } from './proc.js'
import { describeMachine, type Results, type RunResult } from './results.js'
import { writeReport } from './report.js'

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    check: { type: 'boolean', default: false },
    runs: { type: 'string' },
    only: { type: 'string' },
    out: { type: 'string' }
  }
})

const quick = flags.quick === true
const runs = flags.runs === undefined ? (quick ? 1 : 3) : Number(flags.runs)
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got ${flags.runs}`)
const clientCounts = quick ? [100, 1000] : [100, 1000, 5000]
const idleClients = quick ? 2000 : 10_000
const settings: Settings = quick
  ? { pacedSeconds: 1, stallEvents: 4096, minDeliveries: 50_000 }
  : { pacedSeconds: 1, stallEvents: 8192, minDeliveries: 100_000 }
const defaultOut = fileURLToPath(new URL('../docs/benchmarks.md', import.meta.url))
// CI runs --quick --check: it must not touch the committed figures unless asked to.
const out = flags.out ?? (quick || flags.check === true ? undefined : defaultOut)

/** True when a Redis server answers PING on 127.0.0.1:6379 within a second. */
function redisAnswers (): Promise<boolean> {
  return new Promise((resolve) => {
    const socket = connect(6379, '127.0.0.1')
    const done = (ok: boolean): void => { socket.destroy(); resolve(ok) }
    socket.setTimeout(1000, () => done(false))
    socket.on('error', () => done(false))
    socket.on('connect', () => socket.write('PING\r\n'))
    socket.on('data', (data) => done(data.toString().startsWith('+PONG')))
  })
}

async function chooseVariants (): Promise<{ variants: VariantName[], skipped: string[] }> {
  const wanted = flags.only === undefined ? [...VARIANTS] : flags.only.split(',').map((name) => name.trim())
  for (const name of wanted) {
    if (!(VARIANTS as readonly string[]).includes(name)) throw new Error(`unknown variant ${name}; known: ${VARIANTS.join(', ')}`)
  }
  // The floor always runs: every figure is a ratio to it.
  const variants = VARIANTS.filter((name) => name === FLOOR || wanted.includes(name))
  const skipped: string[] = []
  if (variants.includes('plugin-redis')) {
    const built = existsSync(fileURLToPath(new URL('../dist/redis/index.js', import.meta.url)))
    const why = !built ? 'dist/redis/index.js is not built' : !(await redisAnswers()) ? 'no Redis answers on 127.0.0.1:6379' : undefined
    if (why !== undefined) {
      skipped.push(`plugin-redis skipped: ${why}`)
      variants.splice(variants.indexOf('plugin-redis'), 1)
    }
  }
  return { variants, skipped }
}

function log (line: string): void {
  process.stdout.write(line + '\n')
}

const fmt = (value: number, digits = 2): string => Number.isFinite(value) ? value.toFixed(digits) : '-'

async function main (): Promise<void> {
  const started = Date.now()
  const { variants, skipped } = await chooseVariants()
  for (const line of skipped) log(line)
  if (!canPin) log('taskset or a second core is missing: server and client are not pinned')
  log(`variants: ${variants.join(', ')}; N = ${clientCounts.join(', ')}; idle at ${idleClients}; ${runs} run(s)`)

  const client = await startLoadClient()
  const results: RunResult[] = []
  try {
    for (let run = 1; run <= runs; run++) {
      const result: RunResult = { broadcast: {}, idleBytes: {}, stall: {} }
      // Variants take turns at each N, so drift on a noisy machine spreads over all of them.
      for (const n of clientCounts) {
        for (const variant of variants) {
          const figures = await measureBroadcast(variant, n, client, settings)
          if (figures === undefined) continue
          ;(result.broadcast[variant] ??= {})[n] = figures
          log(`run ${run} N=${n} ${variant.padEnd(15)} connect ${fmt(figures.connectMs, 0)} ms | ` +
            `1/tick ${fmt(figures.single.cpuMicrosPerEvent)} µs/ev ${fmt(figures.single.eventsPerSecond / 1000, 0)}k ev/s p99 ${fmt(figures.single.p99, 1)} ms | ` +
            `20/tick ${fmt(figures.batched.cpuMicrosPerEvent)} µs/ev ${fmt(figures.batched.eventsPerSecond / 1000, 0)}k ev/s | ` +
            `paced p50 ${fmt(figures.paced.p50, 1)} p99 ${fmt(figures.paced.p99, 1)} ms`)
        }
      }
      for (const variant of variants) {
        const idle = await measureIdleMemory(variant, idleClients, client)
        if (idle !== undefined) result.idleBytes[variant] = idle
        const stall = await measureStall(variant, client, settings)
        if (stall !== undefined) result.stall[variant] = stall
        log(`run ${run} ${variant.padEnd(15)} idle ${fmt((idle ?? NaN) / 1024, 1)} KB/conn at ${idleClients} | ` +
          `stalled client: ${fmt((stall?.heldBytes ?? NaN) / 2 ** 20, 1)} MiB held, ${stall?.disconnected === true ? 'disconnected' : 'kept'}`)
      }
      results.push(result)
    }
  } finally {
    await stopChild(client)
  }

  const args = process.argv.slice(2)
  const all: Results = {
    machine: describeMachine(canPin),
    command: `npm run bench${args.length > 0 ? ' -- ' + args.join(' ') : ''}`,
    date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
    minutes: (Date.now() - started) / 60_000,
    variants,
    clientCounts,
    idleClients,
    settings,
    runs: results,
    skipped,
    failures
  }
  if (out !== undefined) {
    const written = writeReport(all, out)
    log(`wrote ${written.join(' and ')}`)
  }
  log(`done in ${fmt(all.minutes, 1)} min`)
  if (failures.length > 0) {
    log(`\n${failures.length} problem(s):`)
    for (const failure of failures) log(`  ${failure}`)
    process.exitCode = 1
  }
}

await main()

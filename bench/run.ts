// The benchmark runner: `npm run bench -- [--quick] [--check] [--runs n] [--only a,b] [--scenario broadcast|per-request] [--out file.md]`,
// or `npm run bench -- --scale [--streams 100000]` for the scale run alone.
import { existsSync } from 'node:fs'
import { connect } from 'node:net'
import { fileURLToPath } from 'node:url'
import { parseArgs } from 'node:util'
import {
  FLOOR, VARIANTS, failures, measureBroadcast, measureIdleMemory, measureStall, measureSustained, startLoadClient,
  type Settings, type VariantName
} from './measure.js'
import {
  PER_REQUEST_VARIANTS, measurePerRequest, startStreamClient,
  type PerRequestFigures, type PerRequestSettings, type PerRequestVariant
} from './per-request.js'
import { ensureNchan } from './nchan-install.js'
import { canPin, stopChild } from './proc.js'
import { describeMachine, type PerRequestResults, type Results, type RunResult } from './results.js'
import { writeReport } from './report.js'
import { writeScaleSection } from './report-scale.js'
import { runScale, scaleMarkdown } from './scale.js'
import { writePerRequestSection } from './report-per-request.js'

const { values: flags } = parseArgs({
  options: {
    quick: { type: 'boolean', default: false },
    check: { type: 'boolean', default: false },
    runs: { type: 'string' },
    only: { type: 'string' },
    scenario: { type: 'string' },
    scale: { type: 'boolean', default: false },
    streams: { type: 'string', default: '100000' },
    out: { type: 'string' }
  }
})

const quick = flags.quick === true
const runs = flags.runs === undefined ? (quick ? 1 : 3) : Number(flags.runs)
if (!Number.isInteger(runs) || runs < 1) throw new Error(`--runs must be a positive integer, got ${flags.runs}`)
const clientCounts = quick ? [100, 1000] : [100, 1000, 5000]
const idleClients = quick ? 1000 : 10_000
const settings: Settings = quick
  ? { pacedSeconds: 1, stallEvents: 4096, minDeliveries: 50_000, sustained: { seconds: 1, firstRate: 60, factor: 1.5, maxSteps: 1 } }
  : { pacedSeconds: 1, stallEvents: 8192, minDeliveries: 100_000, sustained: { seconds: 10, firstRate: 60, factor: 1.5, maxSteps: 10 } }
// The sustained scenario's client counts: quick mode only checks that it runs.
const sustainedCounts = quick ? [1000] : [1000, 5000]
const perRequestSettings: PerRequestSettings = quick
  ? { streams: 100, tokens: 200, stalledClients: 10, stalledTokens: 400_000, stallSeconds: 1, laterSeconds: 0 }
  : { streams: 1000, tokens: 1000, stalledClients: 100, stalledTokens: 1_000_000, stallSeconds: 10, laterSeconds: 45 }
const SCENARIOS = ['broadcast', 'per-request'] as const
const scenarios = flags.scenario === undefined ? [...SCENARIOS] : flags.scenario.split(',').map((name) => name.trim())
for (const name of scenarios) {
  if (!(SCENARIOS as readonly string[]).includes(name)) throw new Error(`unknown scenario ${name}; known: ${SCENARIOS.join(', ')}`)
}
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

const wanted = flags.only === undefined ? undefined : flags.only.split(',').map((name) => name.trim())
for (const name of wanted ?? []) {
  if (!(VARIANTS as readonly string[]).includes(name)) throw new Error(`unknown variant ${name}; known: ${VARIANTS.join(', ')}`)
}

async function chooseVariants (): Promise<{ variants: VariantName[], skipped: string[] }> {
  // The floor always runs: every figure is a ratio to it.
  const variants = VARIANTS.filter((name) => name === FLOOR || wanted === undefined || wanted.includes(name))
  const skipped: string[] = []
  if (variants.includes('nchan')) {
    const nchan = ensureNchan()
    if (!nchan.ok) {
      skipped.push(`nchan skipped: ${nchan.reason}`)
      variants.splice(variants.indexOf('nchan'), 1)
    }
  }
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
const args = process.argv.slice(2)
const command = `npm run bench${args.length > 0 ? ' -- ' + args.join(' ') : ''}`
const timestamp = (): string => new Date().toISOString().replace(/\.\d+Z$/, 'Z')

/** The broadcast scenario: every server at every N, then idle memory and a stalled client. */
async function runBroadcast (): Promise<Results> {
  const started = Date.now()
  const { variants, skipped } = await chooseVariants()
  for (const line of skipped) log(line)
  log(`broadcast: ${variants.join(', ')}; N = ${clientCounts.join(', ')}; idle at ${idleClients}; ${runs} run(s)`)

  const client = await startLoadClient()
  const results: RunResult[] = []
  try {
    for (let run = 1; run <= runs; run++) {
      const result: RunResult = { broadcast: {}, sustained: {}, idleBytes: {}, stall: {} }
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
      for (const n of sustainedCounts) {
        for (const variant of variants) {
          const figures = await measureSustained(variant, n, client, settings)
          if (figures === undefined) continue
          ;(result.sustained[variant] ??= {})[n] = figures
          const steps = figures.steps.map((step) => `${step.rate}/s p99 ${fmt(step.p99, 0)} ms${step.lost > 0 ? ` ${step.lost} lost` : ''} cpu ${fmt(step.serverCpu * 100, 0)}% client ${fmt(step.clientCpu * 100, 0)}%`)
          log(`run ${run} N=${n} ${variant.padEnd(15)} sustained ${fmt(figures.capacity / 1000, 0)}k deliveries/s held | ${steps.join(', ')}`)
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
  return {
    machine: describeMachine(canPin),
    command,
    date: timestamp(),
    minutes: (Date.now() - started) / 60_000,
    variants,
    clientCounts,
    idleClients,
    settings,
    runs: results,
    skipped,
    // Its own failures: the per-request scenario's are reported in its section.
    failures: failures.filter((failure) => !failure.startsWith('per-request '))
  }
}

/** The per-request scenario: N concurrent streams of T tokens each, then clients that stop reading. */
async function runPerRequest (): Promise<PerRequestResults> {
  const started = Date.now()
  const variants = PER_REQUEST_VARIANTS.filter((name) => name === PER_REQUEST_VARIANTS[0] || wanted === undefined || wanted.includes(name))
  const s = perRequestSettings
  log(`per-request: ${variants.join(', ')}; ${s.streams} streams × ${s.tokens} tokens; ${s.stalledClients} stalled clients; ${runs} run(s)`)
  const client = await startStreamClient()
  const results: Array<Partial<Record<PerRequestVariant, PerRequestFigures>>> = []
  try {
    for (let run = 1; run <= runs; run++) {
      const result: Partial<Record<PerRequestVariant, PerRequestFigures>> = {}
      for (const variant of variants) {
        const figures = await measurePerRequest(variant, client, s)
        if (figures === undefined) continue
        result[variant] = figures
        const { streams, stalled } = figures
        log(`run ${run} per-request ${variant.padEnd(15)} ${fmt(streams.cpuMicrosPerToken)} µs/token ${fmt(streams.tokensPerSecond / 1000, 0)}k tokens/s | ` +
          `${stalled.clients} stalled, each: pulled ${fmt(stalled.pulledBytes / 1024, 0)} KiB, buffered ${fmt(stalled.queuedBytes / 1024, 0)} KiB, ` +
          `kernel ${fmt(stalled.sentBytes / 1024, 0)} KiB, heap+external ${fmt(stalled.heldBytes / 1024, 0)} KiB ` +
          `(${fmt(stalled.lateGrowthBytes / 1024, 0)} KiB in the second half), ${stalled.disconnected} disconnected` +
          (Number.isFinite(stalled.laterHeldBytes)
            ? `; ${s.laterSeconds} s after: ${fmt(stalled.laterHeldBytes / 1024, 0)} KiB, ${stalled.laterDisconnected} disconnected`
            : ''))
      }
      results.push(result)
    }
  } finally {
    await stopChild(client)
  }
  return {
    machine: describeMachine(canPin),
    command,
    date: timestamp(),
    minutes: (Date.now() - started) / 60_000,
    variants,
    settings: s,
    runs: results,
    failures: failures.filter((failure) => failure.startsWith('per-request '))
  }
}

/** The scale run alone: it writes only its own section of the page. */
async function scale (): Promise<void> {
  const wantedStreams = Number(flags.streams)
  if (!Number.isInteger(wantedStreams) || wantedStreams < 1) throw new Error(`--streams must be a positive integer, got ${flags.streams}`)
  const results = await runScale(wantedStreams, command, log)
  if (flags.check !== true) log(`wrote ${writeScaleSection(scaleMarkdown(results), flags.out ?? defaultOut)}`)
}

async function main (): Promise<void> {
  const started = Date.now()
  if (!canPin) log('taskset or a second core is missing: server and client are not pinned')
  if (flags.scale === true) await scale()
  const broadcast = flags.scale !== true && scenarios.includes('broadcast') ? await runBroadcast() : undefined
  if (broadcast !== undefined) log(`broadcast done in ${fmt(broadcast.minutes, 1)} min`)
  const perRequest = flags.scale !== true && scenarios.includes('per-request') ? await runPerRequest() : undefined
  if (perRequest !== undefined) log(`per-request done in ${fmt(perRequest.minutes * 60, 0)} s`)
  if (out !== undefined) {
    const written = broadcast !== undefined
      ? writeReport(broadcast, out, perRequest)
      : perRequest !== undefined ? [writePerRequestSection(perRequest, out)] : []
    if (written.length > 0) log(`wrote ${written.join(' and ')}`)
  }
  log(`done in ${fmt((Date.now() - started) / 60_000, 1)} min`)
  if (failures.length > 0) {
    log(`\n${failures.length} problem(s):`)
    for (const failure of failures) log(`  ${failure}`)
    process.exitCode = 1
  }
}

await main()

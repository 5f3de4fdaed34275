import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { basename } from 'node:path'
import { renderBarChart, type BarGroup } from './chart.js'
import { num } from './format.js'
import { FLOOR, type BroadcastFigures, type VariantName } from './measure.js'
import { keptPerRequest, markedPerRequest, perRequestMarkdown } from './report-per-request.js'
import type { PerRequestResults, Results, RunResult } from './results.js'
import { spread } from './stats.js'

const PROFILE_START = '<!-- profile:start -->'
const PROFILE_END = '<!-- profile:end -->'
const PROFILE_PLACEHOLDER = [
  'Not written yet. `npx tsx bench/profile.ts` runs the plugin\'s server under `node --cpu-prof` for both bursts',
  'at 1,000 clients and prints the functions with the most self time; what dominates goes here.'
].join('\n')

/** One figure of one server in one run; undefined when it was not measured. */
type Read = (run: RunResult, variant: VariantName) => number | undefined

/** A figure summarised over the runs: median, min–max and the median of its same-run ratios to the floor. */
interface Summary { median: number, min: number, max: number, ratio: number, runs: number }

function summarise (results: Results, variant: VariantName, read: Read): Summary {
  const values: number[] = []
  const ratios: number[] = []
  for (const run of results.runs) {
    const value = read(run, variant)
    if (value === undefined || !Number.isFinite(value)) continue
    values.push(value)
    const floor = read(run, FLOOR)
    if (floor !== undefined && floor !== 0) ratios.push(value / floor)
  }
  const { median, min, max } = spread(values)
  return { median, min, max, ratio: spread(ratios).median, runs: values.length }
}

function ratio (value: number): string {
  return Number.isFinite(value) ? `×${value.toFixed(2)}` : ''
}

function cell (summary: Summary): string {
  if (summary.runs === 0) return '–'
  const range = summary.runs > 1 ? ` (${num(summary.min)}–${num(summary.max)})` : ''
  return `${num(summary.median)}${range} ${ratio(summary.ratio)}`.trim()
}

function table (results: Results, columns: Array<{ label: string, read: Read }>): string {
  const lines = [
    `| server | ${columns.map((column) => column.label).join(' | ')} |`,
    `|---|${columns.map(() => '---:').join('|')}|`
  ]
  for (const variant of results.variants) {
    lines.push(`| ${variant} | ${columns.map((column) => cell(summarise(results, variant, column.read))).join(' | ')} |`)
  }
  return lines.join('\n')
}

const at = (n: number, pick: (figures: BroadcastFigures) => number): Read =>
  (run, variant) => {
    const figures = run.broadcast[variant]?.[n]
    return figures === undefined ? undefined : pick(figures)
  }

function perN (results: Results, pick: (figures: BroadcastFigures) => number): Array<{ label: string, read: Read }> {
  return results.clientCounts.map((n) => ({ label: `N = ${n.toLocaleString('en-US')}`, read: at(n, pick) }))
}

function disconnected (results: Results, variant: VariantName): string {
  const seen = results.runs.map((run) => run.stall[variant]?.disconnected).filter((value) => value !== undefined)
  if (seen.length === 0) return '–'
  const yes = seen.filter(Boolean).length
  return yes === seen.length ? 'yes' : yes === 0 ? 'no' : `${yes} of ${seen.length} runs`
}

function markdown (results: Results, svgName: string, profile: string, perRequest: string): string {
  const n = (count: number): string => count.toLocaleString('en-US')
  const runs = results.runs.length
  const sections: string[] = []
  const add = (title: string, note: string, body: string): void => { sections.push(`### ${title}\n\n${note}\n\n${body}`) }
  add('Server CPU per delivered event, 200 one-event publishes (µs)', 'One publish per tick, `setImmediate` between them.', table(results, perN(results, (f) => f.single.cpuMicrosPerEvent)))
  add('Server CPU per delivered event, 200 events published 20 per tick (µs)', 'Twenty publishes in the same tick, then `setImmediate`.', table(results, perN(results, (f) => f.batched.cpuMicrosPerEvent)))
  add('Delivered events per second, 200 one-event publishes (thousands)', 'Events received by all clients together, from the first publish to the last arrival.', table(results, perN(results, (f) => f.single.eventsPerSecond / 1000)))
  add('Delivered events per second, 200 events 20 per tick (thousands)', 'As above, for the batched burst.', table(results, perN(results, (f) => f.batched.eventsPerSecond / 1000)))
  add('Publish-to-receive latency p50, burst of 200 one-event publishes (ms)', 'Over every event at every client.', table(results, perN(results, (f) => f.single.p50)))
  add('Publish-to-receive latency p99, burst of 200 one-event publishes (ms)', 'Over every event at every client.', table(results, perN(results, (f) => f.single.p99)))
  add('Publish-to-receive latency p50, paced at 100 events/s (ms)', `${results.settings.pacedSeconds * 100} events, one every 10 ms.`, table(results, perN(results, (f) => f.paced.p50)))
  add('Publish-to-receive latency p99, paced at 100 events/s (ms)', `${results.settings.pacedSeconds * 100} events, one every 10 ms.`, table(results, perN(results, (f) => f.paced.p99)))
  add('Connect time for N clients (ms)', 'From the first request to the last response head, at most 200 handshakes in flight.', table(results, perN(results, (f) => f.connectMs)))
  const memory = table(results, [
    { label: `idle memory per connection at ${n(results.idleClients)} (KB)`, read: (run, variant) => ratioSafe(run.idleBytes[variant], 1024) },
    { label: 'held for a stalled client (MiB)', read: (run, variant) => ratioSafe(run.stall[variant]?.heldBytes, 2 ** 20) }
  ]).split('\n')
  memory[0] += ' stalled client disconnected |'
  memory[1] += '---|'
  for (let i = 0; i < results.variants.length; i++) memory[i + 2] += ` ${disconnected(results, results.variants[i])} |`
  add('Memory', `Idle: server RSS growth divided by N. Stalled client: see the method above (${n(results.settings.stallEvents)} events of 4 KiB).`, memory.join('\n'))

  const notes = [...results.skipped, ...results.failures.map((failure) => `**Failed:** ${failure}`)]
  return `# Benchmarks

Written by \`npm run bench\` (\`bench/run.ts\`); rerun it rather than editing the figures. The profile section at the end is written by hand and kept across runs. The per-request section comes from its own run, which it names, and is kept when only the broadcast is rerun (\`--scenario broadcast\`).

- Machine: ${results.machine}
- Date: ${results.date}
- Command: \`${results.command}\` (took ${results.minutes.toFixed(1)} min)
- Runs: ${runs}. Each cell is the median${runs > 1 ? ' (min–max)' : ''} of the runs, then ×r: the ratio to the hand-written \`node:http\` server of the same run (median of the runs' ratios). These machines are noisy: compare ratios, not absolute figures across runs.
${notes.map((note) => `- ${note}\n`).join('')}
![Ratios to the node:http floor](${svgName})

## What is measured

Every server is its own process on 127.0.0.1; a load client in another process opens the streams. ${results.machine.includes('taskset') ? 'Server and client run on different cores.' : ''} Each server streams \`GET /events\` and, told over IPC, publishes events of about 100 bytes of JSON (a sequence number, the publish time and padding) to every client. The load client reads with \`node:http\` (\`agent: false\`), parses the stream with its own SSE parser and checks that every client gets every event once and in order; a lost, repeated or reordered event fails the run (\`--check\` exits non-zero for that, never for a figure).

- **Servers**: \`node-http\` is the floor: a hand-written \`node:http\` server that encodes each event once into a \`Buffer\` and \`res.write\`s it to every response. \`plugin\` is this package from \`dist/\`, registered with \`interval: 0\`, published with \`fastify.pushStream.publish(obj)\` (defaults otherwise: 15 s heartbeat on idle streams, history of 1,000, \`maxBufferedBytes\` 1 MiB; \`maxConnections\` raised to 20,000 for the memory test). \`plugin-redis\` is the same with the Redis Streams adapter on a local Redis. \`@fastify/sse\` keeps each \`reply.sse\` (\`keepAlive()\`) and calls \`send({ data })\` on each; \`fastify-sse-v2\` calls \`reply.sse({ data })\` on each kept reply, the data serialized once per broadcast; \`better-sse\` registers each session on one \`Channel\` and calls \`channel.broadcast(data)\` (on a plain \`node:http\` server, as its README shows). Each peer runs with its own defaults (heartbeats included).
- **Server CPU per delivered event**: user + system time of the server process from \`/proc/<pid>/stat\` across one burst, divided by the events all clients received, so a slow client cannot lower it. At small N the burst is repeated until it covers ${n(results.settings.minDeliveries)} deliveries, so the 10 ms clock tick of \`/proc\` stays a small error.
- **Delivered events/s**: all events received by all clients, divided by the time from the first publish to the last arrival. It is bounded by the load client as well as by the server.
- **Latency**: the publish time in each event (\`performance.timeOrigin + performance.now()\`, comparable across processes) subtracted from the arrival time of the chunk that carried it; p50 and p99 over every event at every client (the worst repetition at small N). A warm-up of up to 100 events (20 per tick, at most ${n(results.settings.minDeliveries)} deliveries) precedes the measured runs.
- **Connect time**: from the first request until every client has the response head.
- **Idle memory per connection**: the server's RSS after a GC (\`--expose-gc\`, two passes) with ${n(results.idleClients)} idle streams open, minus its RSS before the first one, divided by ${n(results.idleClients)}.
- **Held for a stalled client**: one client reads normally; ${n(results.settings.stallEvents)} events of 4 KiB are published to it, then a raw socket sends the request and never reads, and the same ${n(results.settings.stallEvents)} events are published again. The figure is the server's own \`process.memoryUsage()\` heapUsed + external after a GC, at the end of the second round minus at the end of the first, the same method for every server: whatever layer queues the bytes (socket, stream, library queue) is counted, and steady state such as the plugin's history cancels out. The kernel's socket buffers (several MiB on loopback) absorb the first part and are not counted. "Disconnected" is the server's own count of open streams afterwards.

## Results

${sections.join('\n\n')}

${markedPerRequest(perRequest)}

## CPU profile of the burst

${PROFILE_START}
${profile}
${PROFILE_END}
`
}

function ratioSafe (value: number | undefined, unit: number): number | undefined {
  return value === undefined ? undefined : value / unit
}

function chart (results: Results): string {
  const largest = results.clientCounts[results.clientCounts.length - 1]
  const figures: Array<{ label: string, read: Read }> = [
    { label: `CPU/event, 1 per tick, N=${largest}`, read: at(largest, (f) => f.single.cpuMicrosPerEvent) },
    { label: `CPU/event, 20 per tick, N=${largest}`, read: at(largest, (f) => f.batched.cpuMicrosPerEvent) },
    { label: `burst p99, N=${largest}`, read: at(largest, (f) => f.single.p99) },
    { label: `paced p99, N=${largest}`, read: at(largest, (f) => f.paced.p99) },
    { label: `connect ${largest} clients`, read: at(largest, (f) => f.connectMs) },
    { label: `idle memory/conn, ${results.idleClients}`, read: (run, variant) => run.idleBytes[variant] },
    { label: 'held for stalled client', read: (run, variant) => run.stall[variant]?.heldBytes }
  ]
  const groups: BarGroup[] = figures.map((figure) => ({
    label: figure.label,
    bars: results.variants.map((variant) => {
      const summary = summarise(results, variant, figure.read)
      return { series: variant, value: summary.ratio, text: Number.isFinite(summary.ratio) ? ratio(summary.ratio) : 'not measured' }
    })
  }))
  return renderBarChart({
    title: 'Ratio to the hand-written node:http server (lower is better)',
    subtitle: `${results.machine.split(';')[0]} · ${results.date.slice(0, 10)} · median of ${results.runs.length} run(s)`,
    series: results.variants,
    groups,
    reference: 1,
    referenceLabel: 'node:http = 1'
  })
}

/**
 * Writes the markdown report to `mdPath` and the chart next to it; keeps the
 * hand-written profile section, and the per-request section unless this run
 * measured it (`perRequest`).
 */
export function writeReport (results: Results, mdPath: string, perRequest?: PerRequestResults): string[] {
  const svgPath = mdPath.replace(/\.md$/, '') + '.svg'
  let profile = PROFILE_PLACEHOLDER
  if (existsSync(mdPath)) {
    const old = readFileSync(mdPath, 'utf8')
    const start = old.indexOf(PROFILE_START)
    const end = old.indexOf(PROFILE_END)
    if (start !== -1 && end > start) profile = old.slice(start + PROFILE_START.length, end).trim()
  }
  const perRequestSection = perRequest === undefined ? keptPerRequest(mdPath) : perRequestMarkdown(perRequest)
  writeFileSync(mdPath, markdown(results, basename(svgPath), profile, perRequestSection))
  writeFileSync(svgPath, chart(results))
  return [mdPath, svgPath]
}

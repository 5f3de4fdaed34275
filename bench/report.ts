import { existsSync, readFileSync, writeFileSync } from 'node:fs'
import { basename } from 'node:path'
import { renderBarChart, type BarGroup } from './chart.js'
import { num } from './format.js'
import { FLOOR, SUSTAINED_P99_MS, type BroadcastFigures, type SustainedFigures, type VariantName } from './measure.js'
import { keptPerRequest, markedPerRequest, perRequestMarkdown } from './report-per-request.js'
import { keptScale, markedScale } from './report-scale.js'
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

/** The median over the runs of `variant`'s figure divided by `other`'s in the same run. */
function ratioBetween (results: Results, read: Read, variant: VariantName, other: VariantName): number {
  const ratios: number[] = []
  for (const run of results.runs) {
    const value = read(run, variant)
    const base = read(run, other)
    if (value !== undefined && base !== undefined && base !== 0 && Number.isFinite(value) && Number.isFinite(base)) ratios.push(value / base)
  }
  return spread(ratios).median
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

const sustainedAt = (n: number, pick: (figures: SustainedFigures) => number): Read =>
  (run, variant) => {
    const figures = run.sustained[variant]?.[n]
    return figures === undefined ? undefined : pick(figures)
  }

function sustainedCounts (results: Results): number[] {
  const counts = new Set<number>()
  for (const run of results.runs) for (const byN of Object.values(run.sustained)) for (const n of Object.keys(byN ?? {})) counts.add(Number(n))
  return [...counts].sort((a, b) => a - b)
}

/** Each step of every server's climb in the first run, for the record. */
function sustainedSteps (results: Results): string {
  const run = results.runs[0]
  if (run === undefined) return ''
  const lines = ['| server | N | steps (events/s: p99 ms, server CPU, load-client CPU; ✗ not held) |', '|---|---:|---|']
  for (const variant of results.variants) {
    for (const [n, figures] of Object.entries(run.sustained[variant] ?? {})) {
      const steps = figures.steps.map((step) =>
        `${step.rate}: ${num(step.p99)}, ${Math.round(step.serverCpu * 100)}%, ${Math.round(step.clientCpu * 100)}%${step.lost > 0 ? `, ${step.lost} lost` : ''}${step.held ? '' : ' ✗'}`)
      lines.push(`| ${variant} | ${Number(n).toLocaleString('en-US')} | ${steps.join(' → ')} |`)
    }
  }
  return lines.join('\n')
}

/** Which servers held every step of a climb: their capacity is a lower bound. */
function atLeastNote (results: Results): string {
  const held: string[] = []
  for (const variant of results.variants) {
    for (const n of sustainedCounts(results)) {
      const runs = results.runs.filter((run) => run.sustained[variant]?.[n]?.atLeast === true).length
      if (runs > 0) held.push(`${variant} at N = ${n.toLocaleString('en-US')} (${runs} of ${results.runs.length} runs)`)
    }
  }
  return held.length === 0
    ? ''
    : `\n\nHeld every step up to the last of the climb (${results.settings.sustained.maxSteps} steps), so its capacity is at least the figure given: ${held.join(', ')}.`
}

/** One line of the goals table: what is compared, the goal, the figure and whether it holds. */
interface Goal { what: string, goal: string, value: number, met: (value: number) => boolean, unit?: string, atLeast?: boolean }

function goalsTable (results: Results): string {
  const goals: Goal[] = []
  const has = (variant: VariantName): boolean => results.variants.includes(variant)
  const single = (n: number): Read => at(n, (f) => f.single.cpuMicrosPerEvent)
  const batched = (n: number): Read => at(n, (f) => f.batched.cpuMicrosPerEvent)
  for (const n of results.clientCounts.filter((count) => count >= 1000)) {
    const clients = n.toLocaleString('en-US')
    goals.push({ what: `CPU per delivery, 1 event per tick, ${clients} clients: plugin ÷ raw-socket`, goal: '≤ ×1.00', value: ratioBetween(results, single(n), 'plugin', 'raw-socket'), met: (v) => v <= 1 })
    if (has('nchan')) goals.push({ what: `CPU per delivery, 1 event per tick, ${clients} clients: plugin ÷ nchan`, goal: '≤ ×1.00', value: ratioBetween(results, single(n), 'plugin', 'nchan'), met: (v) => v <= 1 })
    goals.push({ what: `CPU per delivery, 20 per tick, ${clients} clients: plugin ÷ raw-socket (joined)`, goal: '≤ ×1.00', value: ratioBetween(results, batched(n), 'plugin', 'raw-socket'), met: (v) => v <= 1 })
  }
  for (const n of sustainedCounts(results)) {
    const clients = n.toLocaleString('en-US')
    const capacity = sustainedAt(n, (f) => f.capacity)
    // The plugin held every step of a climb: its figure, and so the ratio, is a lower bound.
    const atLeast = results.runs.some((run) => run.sustained.plugin?.[n]?.atLeast === true)
    goals.push({ what: `Sustained capacity, ${clients} clients: plugin ÷ raw-socket`, goal: '≥ ×2.00', value: ratioBetween(results, capacity, 'plugin', 'raw-socket'), met: (v) => v >= 2, atLeast })
    if (has('nchan')) goals.push({ what: `Sustained capacity, ${clients} clients: plugin ÷ nchan`, goal: '≥ ×2.00', value: ratioBetween(results, capacity, 'plugin', 'nchan'), met: (v) => v >= 2, atLeast })
    if (n === 1000) {
      const held = spread(results.runs.map((run) => capacity(run, 'plugin')).filter((value) => value !== undefined)).median
      goals.push({ what: '300 events/s to 1,000 clients (300,000 deliveries/s) held by the plugin: its capacity', goal: '≥ 300,000/s', value: held, met: (v) => v >= 300_000, unit: '/s', atLeast })
    }
  }
  goals.push({
    what: `Idle memory per stream at ${results.idleClients.toLocaleString('en-US')}: plugin ÷ raw-socket`,
    goal: '≤ ×0.90',
    value: ratioBetween(results, (run, variant) => run.idleBytes[variant], 'plugin', 'raw-socket'),
    met: (v) => v <= 0.9
  })
  const lines = ['| goal | target | this run | |', '|---|---|---:|---|']
  for (const goal of goals) {
    const figure = (goal.atLeast === true ? '≥ ' : '') + (goal.unit === undefined ? ratio(goal.value) : `${num(goal.value)}${goal.unit}`)
    const verdict = !Number.isFinite(goal.value) ? 'not measured' : goal.met(goal.value) ? 'met' : '**not met**'
    lines.push(`| ${goal.what} | ${goal.goal} | ${figure || '–'} | ${verdict} |`)
  }
  return lines.join('\n')
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

function markdown (results: Results, svgName: string, profile: string, perRequest: string, scale: string): string {
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
  const sustained = sustainedCounts(results)
  if (sustained.length > 0) {
    const columns = sustained.map((count) => ({ label: `N = ${count.toLocaleString('en-US')}`, read: sustainedAt(count, (f) => f.capacity / 1000) }))
    add('Sustained capacity: deliveries per second per server core held with p99 ≤ ' + SUSTAINED_P99_MS + ' ms (thousands)',
      `A steady rate of ~100-byte events for ${results.settings.sustained.seconds} s per step, stepped up ×${results.settings.sustained.factor} from ${num(results.settings.sustained.firstRate * 1000)} deliveries/s until p99 exceeds ${SUSTAINED_P99_MS} ms or an event is lost; the figure is the highest step held. Each event comes from a timer of its own at its due time and carries that time.`,
      table(results, columns) + atLeastNote(results) + '\n\nThe climbs of the first run:\n\n' + sustainedSteps(results))
  }
  add('Load client CPU during the burst of one-event publishes (share of its core)', 'The load client\'s own CPU time over the wall time of the burst: below 1 the figures describe the server, not the client.', table(results, perN(results, (f) => f.single.clientCpu)))
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
- Runs: ${runs}. Each cell is the median${runs > 1 ? ' (min–max)' : ''} of the runs, then ×r: the ratio to the hand-written raw-socket server of the same run (median of the runs' ratios). These machines are noisy: compare ratios, not absolute figures across runs.
${notes.map((note) => `- ${note}\n`).join('')}
![Ratios to the raw-socket floor](${svgName})

## Against the goals

Each figure is a ratio of two servers in the same run (the median of the runs' ratios). The per-request goal is in its own section below, and the 100,000-stream goal in the scale section.

${goalsTable(results)}

## What is measured

Every server is its own process on 127.0.0.1; a load client in another process opens the streams. ${results.machine.includes('taskset') ? 'Server and client run on different cores.' : ''} Each server streams \`GET /events\` and, told over IPC, publishes events of about 100 bytes of JSON (a sequence number, the publish time and padding) to every client. The load client is written in C (\`bench/load-client.c\`, one thread on \`epoll\`, built with \`gcc -O2\` on first use) so that it is not the bottleneck: it reads chunked and close-delimited bodies, parses the stream as the SSE spec says and checks that every client gets every event once and in order; a lost, repeated or reordered event fails the run (\`--check\` exits non-zero for that, never for a figure). Its own CPU share is reported below.

- **Servers**: \`raw-socket\` is the floor: a hand-written \`node:net\` server that puts on the wire what the plugin does (a close-delimited body, each event one pre-encoded \`Buffer\` with an id, \`socket.write\`n to every client, a client over 1 MiB behind cut off); for the burst of 20 per tick it joins the tick's frames into one \`Buffer\` and writes it once per client. \`node-http\` is the earlier floor, kept as a column: a hand-written \`node:http\` server that encodes each event once and \`res.write\`s it to every response (chunked). \`nchan\` is Debian's \`libnginx-mod-nchan\` on nginx, started by the bench with its own config (\`master_process off\`, one process, pinned like the others), EventSource subscribers and one HTTP POST per event from a publisher process on the load client's core; its CPU is nginx's alone, and it has no way to send a tick's events in one publish. \`plugin\` is this package from \`dist/\`, registered with \`interval: 0\`, published with \`fastify.pushStream.publish(obj)\` (defaults otherwise: 15 s heartbeat on idle streams, history of 1,000, \`maxBufferedBytes\` 1 MiB; \`maxConnections\` raised to 20,000 for the memory test). \`plugin-redis\` is the same with the Redis Streams adapter on a local Redis. \`@fastify/sse\` keeps each \`reply.sse\` (\`keepAlive()\`) and calls \`send({ data })\` on each; \`fastify-sse-v2\` calls \`reply.sse({ data })\` on each kept reply, the data serialized once per broadcast; \`better-sse\` registers each session on one \`Channel\` and calls \`channel.broadcast(data)\` (on a plain \`node:http\` server, as its README shows). Each peer runs with its own defaults (heartbeats included).
- **Server CPU per delivered event**: user + system time of the server process from \`/proc/<pid>/stat\` across one burst, divided by the events all clients received, so a slow client cannot lower it. At small N the burst is repeated until it covers ${n(results.settings.minDeliveries)} deliveries, so the 10 ms clock tick of \`/proc\` stays a small error.
- **Delivered events/s**: all events received by all clients, divided by the time from the first publish to the last arrival. It is bounded by the load client as well as by the server.
- **Latency**: the publish time in each event (\`performance.timeOrigin + performance.now()\`, comparable across processes) subtracted from the arrival time of the chunk that carried it; p50 and p99 over every event at every client (the worst repetition at small N). A warm-up of up to 100 events (20 per tick, at most ${n(results.settings.minDeliveries)} deliveries) precedes the measured runs.
- **Connect time**: from the first request until every client has the response head.
- **Idle memory per connection**: the server's RSS after a GC (\`--expose-gc\`, two passes) with ${n(results.idleClients)} idle streams open, minus its RSS before the first one, divided by ${n(results.idleClients)}.
- **Held for a stalled client**: one client reads normally; ${n(results.settings.stallEvents)} events of 4 KiB are published to it, then a raw socket sends the request and never reads, and the same ${n(results.settings.stallEvents)} events are published again. The figure is the server's own \`process.memoryUsage()\` heapUsed + external after a GC, at the end of the second round minus at the end of the first, the same method for every server: whatever layer queues the bytes (socket, stream, library queue) is counted, and steady state such as the plugin's history cancels out. The kernel's socket buffers (several MiB on loopback) absorb the first part and are not counted. "Disconnected" is the server's own count of open streams afterwards.

## Results

${sections.join('\n\n')}

${markedPerRequest(perRequest)}

${markedScale(scale)}

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
    title: 'Ratio to the hand-written raw-socket server (lower is better)',
    subtitle: `${results.machine.split(';')[0]} · ${results.date.slice(0, 10)} · median of ${results.runs.length} run(s)`,
    series: results.variants,
    groups,
    reference: 1,
    referenceLabel: 'raw-socket = 1'
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
  writeFileSync(mdPath, markdown(results, basename(svgPath), profile, perRequestSection, keptScale(mdPath)))
  writeFileSync(svgPath, chart(results))
  return [mdPath, svgPath]
}

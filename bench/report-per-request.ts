import { defaults } from '../dist/index.js'
import { num } from './format.js'
import { PageSection } from './page-section.js'
import {
  FILL_POLL_MS, FILLED_SHARE, PER_REQUEST_REFERENCE, WARM_UP_STREAMS, WARM_UP_TOKENS,
  type PerRequestFigures, type PerRequestVariant
} from './per-request.js'
import type { PerRequestResults } from './results.js'
import { spread } from './stats.js'
import { TOKEN_BYTES, TOKEN_FRAME_BYTES } from './token.js'

/** The per-request section of docs/benchmarks.md, so either scenario can be rerun alone. */
const SECTION = new PageSection('per-request', '## Per-request streams\n\nNot measured yet: `npm run bench -- --scenario per-request` writes this section.')

type Read = (figures: PerRequestFigures) => number

/** The figure in every run, and its ratio to the reference peer in the same run. */
function collect (results: PerRequestResults, variant: PerRequestVariant, read: Read): { values: number[], ratios: number[] } {
  const values: number[] = []
  const ratios: number[] = []
  for (const run of results.runs) {
    const figures = run[variant]
    if (figures === undefined) continue
    const value = read(figures)
    if (!Number.isFinite(value)) continue
    values.push(value)
    const reference = run[PER_REQUEST_REFERENCE]
    if (reference !== undefined && read(reference) !== 0) ratios.push(value / read(reference))
  }
  return { values, ratios }
}

/** The median (min–max) of the runs, with the ratio to the reference when `withRatio`. */
function cell (results: PerRequestResults, variant: PerRequestVariant, read: Read, withRatio: boolean, format = num): string {
  const { values, ratios } = collect(results, variant, read)
  if (values.length === 0) return '–'
  const { median, min, max } = spread(values)
  const range = values.length > 1 ? ` (${format(min)}–${format(max)})` : ''
  const ratio = spread(ratios).median
  return `${format(median)}${range}${withRatio && Number.isFinite(ratio) ? ` ×${ratio.toFixed(2)}` : ''}`
}

/** 'yes', 'no' or 'k of n runs' for a yes/no figure over the runs. */
function share (results: PerRequestResults, variant: PerRequestVariant, test: (figures: PerRequestFigures) => boolean): string {
  const seen = results.runs.map((run) => run[variant]).filter((figures) => figures !== undefined)
  if (seen.length === 0) return '–'
  const yes = seen.filter(test).length
  return yes === seen.length ? 'yes' : yes === 0 ? 'no' : `${yes} of ${seen.length} runs`
}

function table (results: PerRequestResults, columns: Array<{ label: string, cell: (variant: PerRequestVariant) => string }>): string {
  const lines = [
    `| server | ${columns.map((column) => column.label).join(' | ')} |`,
    `|---|${columns.map(() => '---:').join('|')}|`
  ]
  for (const variant of results.variants) lines.push(`| ${variant} | ${columns.map((column) => column.cell(variant)).join(' | ')} |`)
  return lines.join('\n')
}

const KIB = 1024
const whole = (value: number): string => Math.round(value).toLocaleString('en-US')

/** Growth in the second half above a tenth of what is held, and above 64 KiB, counts as still growing. */
function stillGrowing (figures: PerRequestFigures): boolean {
  const { heldBytes, lateGrowthBytes } = figures.stalled
  return lateGrowthBytes > 64 * KIB && lateGrowthBytes > heldBytes / 10
}

/** What a server still held, and how many it had disconnected, `laterSeconds` after; '' when that was not read. */
function later (results: PerRequestResults, variant: PerRequestVariant): string {
  const seconds = results.settings.laterSeconds
  const held = collect(results, variant, (f) => f.stalled.laterHeldBytes).values
  const cut = collect(results, variant, (f) => f.stalled.laterDisconnected).values
  if (seconds === 0 || held.length === 0) return ''
  const clients = results.settings.stalledClients
  return `; ${seconds} s after their buffers filled, ${num(spread(held).median / KIB)} KiB per stalled client (median), with ${whole(spread(cut).median)} of ${whole(clients)} disconnected`
}

/** What the figures say about the goals of issue 13, worded from the figures themselves. */
function againstGoals (results: PerRequestResults): string[] {
  const lines: string[] = []
  const cpu = spread(collect(results, 'plugin', (f) => f.streams.cpuMicrosPerToken).ratios).median
  if (Number.isFinite(cpu)) {
    lines.push(`CPU per token, plugin ÷ ${PER_REQUEST_REFERENCE} in the same run: ×${cpu.toFixed(2)} (median of the runs); the goal is ×0.50 or less: ${cpu <= 0.5 ? 'met' : 'not met'}.`)
  }
  // The plugin's server runs with the default maxBufferedBytes.
  const bound = defaults.maxBufferedBytes + TOKEN_FRAME_BYTES
  const queued = collect(results, 'plugin', (f) => f.stalled.queuedBytes).values
  if (queued.length > 0) {
    const most = Math.max(...queued)
    const heldRatio = spread(collect(results, 'plugin', (f) => f.stalled.heldBytes).ratios).median
    const versus = Number.isFinite(heldRatio) ? `, ×${heldRatio.toFixed(1)} what ${PER_REQUEST_REFERENCE} holds (heap + external, median of the runs' ratios)` : ''
    const growing = results.runs.map((run) => run.plugin).filter((figures) => figures !== undefined).filter(stillGrowing).length
    lines.push(`Held by the plugin per stalled client: at most ${whole(most)} bytes in its write buffers over the runs, against a bound of \`maxBufferedBytes\` plus one token (${whole(bound)} bytes): ${most <= bound ? 'within it' : 'over it'}${versus}; ${growing === 0 ? 'it stopped growing in every run' : `still growing in the second half in ${growing} of ${results.runs.length} runs`}${later(results, 'plugin')}.`)
  }
  for (const variant of results.variants) {
    if (variant === 'plugin') continue
    const runs = results.runs.map((run) => run[variant]).filter((figures) => figures !== undefined)
    if (runs.length === 0) continue
    const growing = runs.filter(stillGrowing).length
    const heldMost = Math.max(...runs.map((figures) => figures.stalled.heldBytes))
    const buffered = Math.max(...runs.map((figures) => figures.stalled.queuedBytes))
    const how = growing === 0
      ? 'what it holds stopped growing in every run: it waits for the client, so it is bounded'
      : `what it holds was still growing in the second half in ${growing} of ${runs.length} runs`
    lines.push(`${variant}${variant === results.variants[0] ? ' (the floor)' : ''}: ${how}; at most ${num(buffered / KIB)} KiB in write buffers and ${num(heldMost / KIB)} KiB of heap + external growth per stalled client${later(results, variant)}.`)
  }
  return lines
}

/** The section, headed by its own machine, date and command: it may come from another run than the rest of the page. */
export function perRequestMarkdown (results: PerRequestResults): string {
  const n = (count: number): string => count.toLocaleString('en-US')
  const s = results.settings
  const runs = results.runs.length
  const shape = `${n(s.streams)} streams × ${n(s.tokens)} tokens`
  const notes = results.failures.map((failure) => `- **Failed:** ${failure}\n`).join('')
  const kib = (read: (figures: PerRequestFigures) => number) => (variant: PerRequestVariant) => cell(results, variant, (f) => read(f) / KIB, false)
  return `## Per-request streams

Each request streams its own source to the end, as a language model's answer does; no broadcast. Written by \`npm run bench\` like the rest of this page, but with its own run: \`npm run bench -- --scenario per-request\` rewrites only this section.

- Machine: ${results.machine}
- Date: ${results.date}
- Command: \`${results.command}\` (took ${results.minutes.toFixed(1)} min)
- Runs: ${runs}. Each cell is the median${runs > 1 ? ' (min–max)' : ''} of the runs; ×r is the ratio to \`${PER_REQUEST_REFERENCE}\` of the same run (median of the runs' ratios), since the goal is stated against it. These machines are noisy: compare ratios, not absolute figures across runs.
${notes}
### What is measured

- **Servers**, each its own process with the same token source: an async generator yielding ${n(s.tokens)} strings of ${TOKEN_BYTES} bytes (an index and text) as fast as it is pulled, each sent as one event (\`data: <token>\`, ${TOKEN_FRAME_BYTES} bytes). \`plugin\` is this package from \`dist/\`: \`return reply.sse(generator)\` with the defaults (\`maxBufferedBytes\` 1 MiB). \`@fastify/sse\` is an \`sse: 'only'\` route whose handler does \`for await (const token of generator) await reply.sse.send(token)\`, as its README shows. \`fastify-sse-v2\` is \`reply.sse(generator)\`, the generator yielding \`{ data: token }\`, as its README shows for an AsyncIterable. \`node-http\` is the floor: a hand-written \`node:http\` loop, one \`res.write\` per token, waiting for \`drain\` when \`write\` returns false.
- **Concurrent streams**: the load client (another process, another core) opens ${shape} (at most 200 connections being made at a time); each server holds every source at its first token until it counts them all, then starts them together. Every stream must get tokens 0 to ${n(s.tokens - 1)} once, in order, and end; a lost, repeated or reordered token, or a stream that ends early, fails the run (\`--check\` exits non-zero for that, never for a figure). Events with an \`event:\` name (the plugin's closing \`push-stream:end\`) are not tokens. A warm-up round of up to ${n(WARM_UP_STREAMS)} streams × ${n(WARM_UP_TOKENS)} tokens comes first on the same server.
- **Server CPU per delivered token**: user + system time of the server process from \`/proc/<pid>/stat\`, from the start of the sources until the client has seen the last stream end, divided by the tokens delivered. **Tokens/s**: all tokens delivered over the same span; it is bounded by the load client as well as by the server.
- **Clients that stop reading**: after that round, ${n(s.stalledClients)} raw sockets each send the request and never read. Their sources have ${n(s.stalledTokens)} tokens (${num(s.stalledTokens * TOKEN_FRAME_BYTES / 2 ** 20)} MiB of events), more than any server should pull. Per stalled client, at the end: the tokens its source yielded (as bytes of events), the bytes waiting in its response's write buffers (\`res.writableLength\`, the response's and its socket's), the bytes its socket handed to the kernel (\`bytesWritten\` less what still waits, chunked framing included; the loopback socket buffers take a few MiB, and keep taking a trickle long after they are full, so "pulled" grows slowly even from a server that waits for the client), and the growth of the server's heap + external memory after a GC (\`--expose-gc\`, two passes) since before the stalled clients came, divided by their number. The ${s.stallSeconds} s start once their socket buffers are full (the tokens pulled grow by less than ${FILLED_SHARE * 100}% in ${FILL_POLL_MS} ms), and the memory is also read halfway through them: the growth in the second half tells a server that holds a bounded amount (about 0) from one that keeps queuing. "Still growing" is a second-half growth above both 64 KiB and a tenth of what is held; "disconnected", the stalled streams the server had closed by the end.${s.laterSeconds > 0 ? ` The same memory and count are read once more ${s.laterSeconds} s after the buffers filled: past the plugin's default \`stallTimeout\` (30 s without the client taking a byte; noticed within 37.5 s), which none of the peers has.` : ''}

### Server CPU per delivered token (µs)

${table(results, [{ label: shape, cell: (variant) => cell(results, variant, (f) => f.streams.cpuMicrosPerToken, true) }])}

### Delivered tokens per second (thousands)

${table(results, [{ label: shape, cell: (variant) => cell(results, variant, (f) => f.streams.tokensPerSecond / 1000, true) }])}

### Clients that stop reading: per stalled client (${n(s.stalledClients)} clients)

${table(results, [
    { label: 'pulled from its source (KiB)', cell: kib((f) => f.stalled.pulledBytes) },
    { label: 'in write buffers (KiB)', cell: kib((f) => f.stalled.queuedBytes) },
    { label: 'taken by the kernel (KiB)', cell: kib((f) => f.stalled.sentBytes) },
    { label: 'heap + external growth (KiB)', cell: kib((f) => f.stalled.heldBytes) },
    { label: 'of which in the second half (KiB)', cell: kib((f) => f.stalled.lateGrowthBytes) },
    { label: 'still growing', cell: (variant) => share(results, variant, stillGrowing) },
    { label: 'disconnected', cell: (variant) => cell(results, variant, (f) => f.stalled.disconnected, false, whole) },
    ...(s.laterSeconds > 0
      ? [
          { label: `heap + external growth ${s.laterSeconds} s after (KiB)`, cell: kib((f) => f.stalled.laterHeldBytes) },
          { label: `disconnected ${s.laterSeconds} s after`, cell: (variant: PerRequestVariant) => cell(results, variant, (f) => f.stalled.laterDisconnected, false, whole) }
        ]
      : [])
  ])}

### Against the goals of issue 13

${againstGoals(results).map((line) => `- ${line}`).join('\n')}`
}

/** The section between the markers of `text`, or undefined when it has none. */
export function perRequestSection (text: string): string | undefined {
  return SECTION.read(text)
}

/** The section a full rewrite of the page keeps: the one already in `mdPath`, or a placeholder. */
export function keptPerRequest (mdPath: string): string {
  return SECTION.kept(mdPath)
}

/** The section with its markers, as it stands in the page. */
export function markedPerRequest (section: string): string {
  return SECTION.marked(section)
}

/** Rewrites only the per-request section of `mdPath` (added before the profile, or at the end, if it has none). */
export function writePerRequestSection (results: PerRequestResults, mdPath: string): string {
  return SECTION.write(perRequestMarkdown(results), mdPath)
}

// The scale run, `npm run bench -- --scale [--streams 100000]`: idle streams on one plugin process,
// the memory each costs, then broadcasts that reach all of them, with their latency. Not part of CI.
import { setTimeout as sleep } from 'node:timers/promises'
import { SMALL_PAD } from './event.js'
import type { WindowResult } from './load-client.js'
import { failures, startLoadClient, startServer } from './measure.js'
import { canPin, cpuMicros, openFilesHardLimit, stopChild, type Child } from './proc.js'
import { describeMachine } from './results.js'
import type { ServerMemory } from './servers/harness.js'

/** What the scale run measured. */
export interface ScaleResults {
  machine: string
  date: string
  command: string
  /** Streams asked for. */
  wanted: number
  /** Streams opened: fewer than asked when the machine's limits do not allow them, with the reason. */
  streams: number
  limitedBy?: string
  sources: string[]
  connectMs: number
  rssPerStream: number
  heapPerStream: number
  broadcasts: Array<{ p50: number, p99: number, ms: number, cpuMs: number }>
}

/** Streams per source address, well inside the ephemeral port range of each. */
const PER_SOURCE = 20_000
/** Open files a process needs besides its streams (its listener, pipes, modules, Redis none). */
const SPARE_FILES = 200
const BROADCASTS = 5

/** Measures `wanted` idle streams, or as many as the limit of open files allows. */
export async function runScale (wanted: number, command: string, log: (line: string) => void): Promise<ScaleResults> {
  const hard = openFilesHardLimit()
  const streams = Math.min(wanted, hard - SPARE_FILES)
  const limitedBy = streams < wanted
    ? `the hard limit of open files per process here is ${hard.toLocaleString('en-US')} (\`ulimit -Hn\`), and raising it needs CAP_SYS_RESOURCE, which this machine's processes lack`
    : undefined
  if (limitedBy !== undefined) log(`scale: ${streams} streams, not ${wanted}: ${limitedBy}`)
  const sources = Array.from({ length: Math.ceil(streams / PER_SOURCE) }, (_, i) => `127.0.0.${i + 2}`)
  const openFiles = streams + SPARE_FILES
  const server = await startServer('plugin', [], { env: { BENCH_MAX_CONNECTIONS: String(streams + 10) }, openFiles })
  let client: Child | undefined
  try {
    client = await startLoadClient(openFiles)
    const port = server.ready.port as number
    const before = await server.rpc.call<ServerMemory>('memory')
    const opened = await client.rpc.call<{ ms: number, failed: number, firstError?: string }>(
      'connect', { port, n: streams, firstSeq: 1, concurrency: 500, sources }, 600_000)
    if (opened.failed > 0) throw new Error(`${opened.failed} of ${streams} streams failed to open (${opened.firstError})`)
    log(`scale: ${streams} streams open in ${(opened.ms / 1000).toFixed(1)} s`)
    // The client's "open" can come before the server's bookkeeping of the last streams.
    for (let i = 0; i < 100 && await server.rpc.call<number>('connections') !== streams; i++) await sleep(100)
    const after = await server.rpc.call<ServerMemory>('memory')
    if (after.connections !== streams) throw new Error(`the server counts ${after.connections} streams, not ${streams}`)
    const broadcasts: ScaleResults['broadcasts'] = []
    for (let seq = 1; seq <= BROADCASTS; seq++) {
      const arrived = client.rpc.call<WindowResult>('expect', { until: seq, timeoutMs: 60_000 }, 70_000)
      const cpu = cpuMicros(server.pid)
      const started = performance.now()
      await server.rpc.call('publish', { from: seq, count: 1, perTick: 1, intervalMs: 0, pad: SMALL_PAD })
      const result = await arrived
      const ms = performance.now() - started
      const problems = result.lost + result.outOfOrder + result.dropped + result.malformed
      if (problems > 0 || result.timedOut) failures.push(`scale: broadcast ${seq}: ${JSON.stringify(result)}`)
      broadcasts.push({ p50: result.p50, p99: result.p99, ms, cpuMs: (cpuMicros(server.pid) - cpu) / 1000 })
      log(`scale: broadcast ${seq} to ${result.delivered} streams: p50 ${result.p50.toFixed(1)} ms, p99 ${result.p99.toFixed(1)} ms`)
    }
    await client.rpc.call('closeAll', {}, 120_000)
    return {
      machine: describeMachine(canPin),
      date: new Date().toISOString().replace(/\.\d+Z$/, 'Z'),
      command,
      wanted,
      streams,
      limitedBy,
      sources,
      connectMs: opened.ms,
      rssPerStream: (after.rss - before.rss) / streams,
      heapPerStream: (after.heapUsed + after.external - before.heapUsed - before.external) / streams,
      broadcasts
    }
  } finally {
    if (client !== undefined) await stopChild(client)
    await stopChild(server)
  }
}

/** The section of docs/benchmarks.md for a scale run. */
export function scaleMarkdown (results: ScaleResults): string {
  const n = (value: number): string => Math.round(value).toLocaleString('en-US')
  const kb = (bytes: number): string => (bytes / 1024).toFixed(1)
  const sorted = (pick: (b: ScaleResults['broadcasts'][number]) => number): number[] => results.broadcasts.map(pick).sort((a, b) => a - b)
  const median = (values: number[]): number => values[values.length >> 1] ?? NaN
  const p50 = median(sorted((b) => b.p50))
  const p99 = median(sorted((b) => b.p99))
  const goal = results.rssPerStream <= 8 * 1024
  const limited = results.limitedBy === undefined
    ? ''
    : `\n\n**Not at ${n(results.wanted)} streams here:** ${results.limitedBy}. The run opens as many as it can; on a machine whose limit allows it (\`ulimit -Hn\` above ${n(results.wanted + SPARE_FILES)}), the same command opens ${n(results.wanted)}.`
  return `## ${n(results.streams)} idle streams on one process

Written by \`${results.command}\` on ${results.date} (${results.machine}). The plugin's server (\`bench/servers/plugin.ts\`, defaults, \`maxConnections\` raised) and the C load client, each on its own core; the client's sockets are bound to ${results.sources.join(', ')} in turn, ${n(PER_SOURCE)} streams each at most, so no address runs out of ephemeral ports.${limited}

| figure | value |
|---|---:|
| streams open | ${n(results.streams)} |
| connect time (500 handshakes in flight) | ${(results.connectMs / 1000).toFixed(1)} s |
| server RSS per stream, after a GC | ${kb(results.rssPerStream)} KB |
| server heap + external per stream | ${kb(results.heapPerStream)} KB |
| one broadcast to all, publish-to-receive p50 (median of ${results.broadcasts.length}) | ${p50.toFixed(1)} ms |
| one broadcast to all, publish-to-receive p99 (median of ${results.broadcasts.length}) | ${p99.toFixed(1)} ms |
| server CPU per broadcast (median) | ${median(sorted((b) => b.cpuMs)).toFixed(0)} ms |

Goal: at 100,000 streams, ≤ 8 KB each. ${results.limitedBy === undefined ? (goal ? 'Met' : '**Not met**') : `Measured at ${n(results.streams)}: ${kb(results.rssPerStream)} KB each (${goal ? 'within' : '**over**'} 8 KB); not measured at 100,000 here.`}`
}

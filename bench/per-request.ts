import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { now } from './event.js'
import { failures, withChildServer } from './measure.js'
import { cpuMicros, startChild, type Child } from './proc.js'
import type { ServerMemory } from './servers/harness.js'
import type { StalledCounts } from './servers/per-request/harness.js'
import type { RoundResult } from './stream-client.js'
import { TOKEN_FRAME_BYTES } from './token.js'

/** The per-request servers, by the name the report uses; the first is the hand-written floor. */
export const PER_REQUEST_VARIANTS = ['node-http', 'plugin', '@fastify/sse', 'fastify-sse-v2'] as const
export type PerRequestVariant = typeof PER_REQUEST_VARIANTS[number]
/** The peer the per-request figures are compared with: the goal of issue 13 is stated against it. */
export const PER_REQUEST_REFERENCE: PerRequestVariant = '@fastify/sse'

const FILES: Record<PerRequestVariant, string> = {
  'node-http': 'node-http.ts',
  plugin: 'plugin.ts',
  '@fastify/sse': 'fastify-sse.ts',
  'fastify-sse-v2': 'fastify-sse-v2.ts'
}

export interface PerRequestSettings {
  /** Streams that run at once. */
  streams: number
  /** Tokens each of them yields. */
  tokens: number
  /** Clients that open a stream and never read. */
  stalledClients: number
  /** Tokens a stalled client's source has: more than its server should ever pull. */
  stalledTokens: number
  /** How long the stalled clients are given once their socket buffers are full: the server's memory is read halfway and at the end. */
  stallSeconds: number
  /**
   * Seconds after their buffers filled at which the memory is read once more,
   * past the plugin's default `stallTimeout` (30 s, noticed within 37.5 s);
   * 0 skips that read.
   */
  laterSeconds: number
}

/** One round of concurrent streams: server CPU per delivered token and the rate of all of them together. */
export interface StreamFigures {
  cpuMicrosPerToken: number
  tokensPerSecond: number
  /** From the start of the sources to the end of the last stream. */
  seconds: number
}

/** What the server holds for each client that stopped reading (averages over the stalled clients), at the end. */
export interface StalledFigures {
  clients: number
  /** The tokens its source yielded, in bytes as events on the wire. */
  pulledBytes: number
  /** Bytes in its response's write buffers (`res.writableLength`). */
  queuedBytes: number
  /** Bytes its socket handed to the kernel (framing included), which the process no longer holds. */
  sentBytes: number
  /** The server's heap + external growth after a GC since before the stalled clients came, divided by their number. */
  heldBytes: number
  /** How much of `heldBytes` came in the second half of the time: about 0 when what the server holds is bounded. */
  lateGrowthBytes: number
  /** Stalled streams the server had closed by the end. */
  disconnected: number
  /** The same growth `laterSeconds` after their buffers filled (NaN when not read). */
  laterHeldBytes: number
  /** Stalled streams the server had closed by then (NaN when not read). */
  laterDisconnected: number
}

/** Everything measured for one server in one run. */
export interface PerRequestFigures {
  streams: StreamFigures
  stalled: StalledFigures
}

/** The stalled clients' socket buffers count as full once a poll sees their sources pulled by less than this share of the total. */
export const FILL_POLL_MS = 250
export const FILLED_SHARE = 0.01
const FILL_LIMIT_MS = 120_000

/** The warm-up round before the measured one, at most. */
export const WARM_UP_STREAMS = 50
export const WARM_UP_TOKENS = 100

/** Starts the stream client on core 1. */
export function startStreamClient (): Promise<Child> {
  return startChild(fileURLToPath(new URL('./stream-client.ts', import.meta.url)), 'stream client', { core: 1 })
}

function startStreamServer (variant: PerRequestVariant): Promise<Child> {
  const file = fileURLToPath(new URL(`./servers/per-request/${FILES[variant]}`, import.meta.url))
  // Room for a library that would queue for stalled clients without bound: it shows as memory, not a crash.
  return startChild(file, `${variant} (per request)`, { core: 0, nodeArgs: ['--max-old-space-size=8192'] })
}

function check (variant: PerRequestVariant, what: string, result: RoundResult, expected: number): void {
  const problems: string[] = []
  if (result.lost > 0) problems.push(`${result.lost} tokens lost`)
  if (result.outOfOrder > 0) problems.push(`${result.outOfOrder} tokens repeated or out of order`)
  if (result.malformed > 0) problems.push(`${result.malformed} events that are not the stream's tokens`)
  if (result.cut > 0) problems.push(`${result.cut} streams ended before their last token`)
  if (result.timedOut) problems.push('timed out')
  if (problems.length === 0 && result.delivered !== expected) problems.push(`${result.delivered} tokens delivered, not ${expected}`)
  if (problems.length > 0) failures.push(`per-request ${variant}, ${what}: ${problems.join(', ')}`)
}

/** Polls `read` until `done` says so or `timeoutMs` passes; gives the last value read. */
async function poll<T> (read: () => Promise<T>, done: (value: T) => boolean, timeoutMs: number): Promise<T> {
  const until = now() + timeoutMs
  let value = await read()
  while (!done(value) && now() < until) {
    await sleep(50)
    value = await read()
  }
  return value
}

/**
 * `n` streams of `tokens` tokens: opened first, the server holding every
 * source at its first token, then started together; the server's CPU time
 * from the start until the client has seen the last stream end.
 */
async function runRound (
  variant: PerRequestVariant, what: string, server: Child, client: Child, port: number, n: number, tokens: number
): Promise<StreamFigures> {
  const opened = await client.rpc.call<{ failed: number, firstError?: string }>('open', { port, n, tokens })
  if (opened.failed > 0) throw new Error(`${what}: ${opened.failed} of ${n} streams failed to open (${opened.firstError})`)
  const waiting = await poll(() => server.rpc.call<number>('waiting'), (count) => count === n, 10_000)
  if (waiting !== n) throw new Error(`${what}: the server holds ${waiting} sources at their start, not ${n}`)
  const timeoutMs = 30_000 + n * tokens / 50
  const cpuBefore = cpuMicros(server.pid)
  const start = now()
  await server.rpc.call('go')
  const result = await client.rpc.call<RoundResult>('finish', { timeoutMs }, timeoutMs + 10_000)
  const cpu = cpuMicros(server.pid) - cpuBefore
  check(variant, what, result, n * tokens)
  const seconds = (result.lastEnded - start) / 1000
  return { cpuMicrosPerToken: cpu / result.delivered, tokensPerSecond: result.delivered / seconds, seconds }
}

/** The server's memory after a GC and its counts for the stalled clients, read together. */
async function snapshot (server: Child): Promise<{ held: number, counts: StalledCounts }> {
  const memory = await server.rpc.call<ServerMemory>('memory')
  const counts = await server.rpc.call<StalledCounts>('stalled')
  return { held: memory.heapUsed + memory.external, counts }
}

/**
 * Waits until the stalled clients' socket buffers are full: the tokens pulled
 * grow by less than FILLED_SHARE of the total in one poll (the trickle the
 * kernel keeps taking), at most FILL_LIMIT_MS.
 */
async function filled (server: Child): Promise<void> {
  const until = now() + FILL_LIMIT_MS
  let pulled = (await server.rpc.call<StalledCounts>('stalled')).pulled
  while (now() < until) {
    await sleep(FILL_POLL_MS)
    const previous = pulled
    pulled = (await server.rpc.call<StalledCounts>('stalled')).pulled
    if (pulled - previous < pulled * FILLED_SHARE) return
  }
}

/**
 * Clients that open a stream and never read. Their sources are pulled as
 * long as the server lets them (the loopback socket buffers keep taking a
 * trickle long after they are full, so "pulled" alone never settles). Once
 * their buffers are full, the server's memory after a GC is read, less
 * before they came, halfway through `stallSeconds` and at its end, with its
 * own counts of what they were given and what waits in their write buffers;
 * and once more `laterSeconds` after they filled.
 */
async function runStalled (server: Child, client: Child, port: number, settings: PerRequestSettings): Promise<StalledFigures> {
  const n = settings.stalledClients
  const before = await snapshot(server)
  await client.rpc.call('stall', { port, n, count: settings.stalledTokens })
  // Long enough for a server that accepts them only as its first ones' socket buffers fill (a send
  // loop whose writes all succeed at once runs in microtasks, and no connection is accepted meanwhile).
  const opened = await poll(() => server.rpc.call<StalledCounts>('stalled'), (counts) => counts.opened === n, FILL_LIMIT_MS)
  if (opened.opened !== n) throw new Error(`stalled clients: the server saw ${opened.opened} of ${n} streams open`)
  await filled(server)
  const fullAt = now()
  const half = settings.stallSeconds * 500
  await sleep(half)
  const middle = await snapshot(server)
  await sleep(half)
  const end = await snapshot(server)
  let later: { held: number, counts: StalledCounts } | undefined
  if (settings.laterSeconds > 0) {
    await sleep(Math.max(0, fullAt + settings.laterSeconds * 1000 - now()))
    later = await snapshot(server)
  }
  return {
    clients: n,
    pulledBytes: end.counts.pulled * TOKEN_FRAME_BYTES / n,
    queuedBytes: end.counts.queued / n,
    sentBytes: end.counts.sent / n,
    heldBytes: (end.held - before.held) / n,
    lateGrowthBytes: (end.held - middle.held) / n,
    disconnected: n - end.counts.streams,
    laterHeldBytes: later === undefined ? NaN : (later.held - before.held) / n,
    laterDisconnected: later === undefined ? NaN : n - later.counts.streams
  }
}

/** Runs a warm-up, the round of concurrent streams and the stalled clients against a fresh server. */
export async function measurePerRequest (variant: PerRequestVariant, client: Child, settings: PerRequestSettings): Promise<PerRequestFigures | undefined> {
  return withChildServer(`per-request ${variant}`, () => startStreamServer(variant), async (server, port) => {
    try {
      const warmStreams = Math.min(WARM_UP_STREAMS, settings.streams)
      const warmTokens = Math.min(WARM_UP_TOKENS, settings.tokens)
      await runRound(variant, 'warm-up', server, client, port, warmStreams, warmTokens)
      await client.rpc.call('closeAll')
      const streams = await runRound(variant, `${settings.streams} streams of ${settings.tokens} tokens`, server, client, port, settings.streams, settings.tokens)
      await client.rpc.call('closeAll')
      const stalled = await runStalled(server, client, port, settings)
      return { streams, stalled }
    } finally {
      await client.rpc.call('closeAll')
    }
  })
}

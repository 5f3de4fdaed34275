import { fileURLToPath } from 'node:url'
import { setTimeout as sleep } from 'node:timers/promises'
import { cpuMicros, startChild, stopChild, type Child } from './proc.js'
import { SMALL_PAD } from './event.js'
import type { WindowResult } from './load-client.js'
import type { PublishArgs, ServerMemory } from './servers/harness.js'

/** The servers, by the name the report uses; the first is the floor every figure is compared with. */
export const VARIANTS = ['raw-socket', 'node-http', 'nchan', 'plugin', 'plugin-redis', '@fastify/sse', 'fastify-sse-v2', 'better-sse'] as const
export type VariantName = typeof VARIANTS[number]
export const FLOOR: VariantName = 'raw-socket'

const FILES: Record<VariantName, string> = {
  'raw-socket': 'raw-socket.ts',
  'node-http': 'node-http.ts',
  nchan: 'nchan.ts',
  plugin: 'plugin.ts',
  'plugin-redis': 'plugin-redis.ts',
  '@fastify/sse': 'fastify-sse.ts',
  'fastify-sse-v2': 'fastify-sse-v2.ts',
  'better-sse': 'better-sse.ts'
}

/** One burst or paced run: throughput, server CPU per delivered event and latency. */
export interface Delivery {
  eventsPerSecond: number
  cpuMicrosPerEvent: number
  p50: number
  p99: number
  /** The load client's CPU time over the wall time of the runs (1 = its core busy). */
  clientCpu: number
}

/** Every broadcast figure of one server at one N. */
export interface BroadcastFigures {
  connectMs: number
  /** 200 publishes, one per tick. */
  single: Delivery
  /** 200 events, 20 published per tick. */
  batched: Delivery
  /** 100 events per second. */
  paced: Delivery
}

/** One step of the sustained scenario: a steady rate held for a while. */
export interface SustainedStep {
  /** Events published per second. */
  rate: number
  p99: number
  lost: number
  /** Deliveries per second: the rate times the clients. */
  deliveriesPerSecond: number
  /** Server CPU time over the step's wall time (1 = one core busy). */
  serverCpu: number
  /** The load client's own CPU time over the step's wall time. */
  clientCpu: number
  /** p99 within the bound and nothing lost, repeated or cut off. */
  held: boolean
}

/** The sustained scenario at one N: the steps tried, and the highest one held. */
export interface SustainedFigures {
  steps: SustainedStep[]
  /** Deliveries per second of the highest step held; 0 when none was. */
  capacity: number
  /** Every step was held, up to the most steps: the capacity is at least `capacity`. */
  atLeast: boolean
}

/** How much the server holds for a client that stops reading, and whether it cut it off. */
export interface StallFigures {
  heldBytes: number
  disconnected: boolean
}

export interface Settings {
  /** Seconds of the paced run. */
  pacedSeconds: number
  /** Events of 4 KiB published at the stalled client. */
  stallEvents: number
  /** At small N a burst is repeated until it covers this many deliveries, so the 10 ms clock tick of /proc stays a small error. */
  minDeliveries: number
  /** The sustained scenario: seconds per step, the first rate at N = 1,000 (events/s), the factor between steps and the most steps. */
  sustained: { seconds: number, firstRate: number, factor: number, maxSteps: number }
}

/** The sustained scenario's bound on publish-to-receive p99, in ms. */
export const SUSTAINED_P99_MS = 100

/** Problems that make a run fail the check: a server that did not start, events lost, duplicated or out of order. */
export const failures: string[] = []

const BURST = 200
const PER_TICK = 20
const PACED_RATE = 100
const WARM_UP = 100
const STALL_PAD = 4096
// 256 KiB of events at a time, well under any server's limit for a client that reads.
const STALL_STEP = 64

function serverFile (variant: VariantName): string {
  return fileURLToPath(new URL(`./servers/${FILES[variant]}`, import.meta.url))
}

/** Starts the server of `variant` on core 0. */
export function startServer (variant: VariantName, nodeArgs: string[] = [], limits: { env?: Record<string, string>, openFiles?: number } = {}): Promise<Child> {
  return startChild(serverFile(variant), variant, { core: 0, nodeArgs, ...limits })
}

/** Starts the load client on core 1. */
export function startLoadClient (openFiles?: number): Promise<Child> {
  return startChild(fileURLToPath(new URL('./load-client.ts', import.meta.url)), 'load client', { core: 1, openFiles })
}

function check (variant: string, what: string, result: WindowResult): void {
  const problems: string[] = []
  if (result.lost > 0) problems.push(`${result.lost} events lost`)
  if (result.outOfOrder > 0) problems.push(`${result.outOfOrder} duplicated or out of order`)
  if (result.dropped > 0) problems.push(`${result.dropped} streams ended by the server`)
  if (result.malformed > 0) problems.push(`${result.malformed} events with data that is not the benchmark's JSON`)
  if (result.timedOut) problems.push('timed out')
  if (problems.length > 0) failures.push(`${variant}, ${what}: ${problems.join(', ')}`)
}

/** A publish on the server and the client's wait for every event, with the server's CPU time around it. */
async function deliver (server: Child, client: Child, args: PublishArgs) {
  const until = args.from + args.count - 1
  const timeoutMs = 60_000 + args.count * args.intervalMs
  const arrived = client.rpc.call<WindowResult>('expect', { until, timeoutMs }, timeoutMs + 10_000)
  const before = cpuMicros(server.pid)
  const started = performance.now()
  await server.rpc.call('publish', args, timeoutMs)
  const result = await arrived
  return { result, cpu: cpuMicros(server.pid) - before, wallMicros: (performance.now() - started) * 1000 }
}

/** Sequence numbers handed out per server, so every event of a server's life has its own. */
class Sequence {
  next = 1
  take (count: number): number {
    const from = this.next
    this.next += count
    return from
  }
}

async function measureDelivery (
  variant: VariantName, what: string, server: Child, client: Child, seq: Sequence,
  shape: { count: number, perTick: number, intervalMs: number, repeat: number }
): Promise<Delivery> {
  let delivered = 0
  let cpu = 0
  let seconds = 0
  let clientCpu = 0
  let wall = 0
  const p50: number[] = []
  const p99: number[] = []
  for (let i = 0; i < shape.repeat; i++) {
    const { result, cpu: used, wallMicros } = await deliver(server, client, {
      from: seq.take(shape.count), count: shape.count, perTick: shape.perTick, intervalMs: shape.intervalMs, pad: SMALL_PAD
    })
    check(variant, what, result)
    delivered += result.delivered
    cpu += used
    clientCpu += result.clientCpuMicros
    wall += wallMicros
    seconds += (result.lastReceived - result.firstPublished) / 1000
    p50.push(result.p50)
    p99.push(result.p99)
  }
  return {
    eventsPerSecond: delivered / seconds,
    cpuMicrosPerEvent: cpu / delivered,
    p50: Math.max(...p50),
    p99: Math.max(...p99),
    clientCpu: clientCpu / wall
  }
}

/** Waits until the server itself counts `n` streams: a client's "connected" may come before the server's bookkeeping. */
async function serverCounts (server: Child, n: number): Promise<number> {
  let count = 0
  for (let i = 0; i < 100; i++) {
    count = await server.rpc.call<number>('connections')
    if (count === n) break
    await sleep(50)
  }
  return count
}

/**
 * Starts a server with `start`, runs `work` against it and stops it. A server
 * that does not start, or work that throws, is recorded in `failures` under
 * `name` and gives undefined.
 */
export async function withChildServer<T> (
  name: string, start: () => Promise<Child>, work: (server: Child, port: number) => Promise<T>
): Promise<T | undefined> {
  let server: Child
  try {
    server = await start()
  } catch (err) {
    failures.push(`${name}: the server did not start: ${(err as Error).message}`)
    return undefined
  }
  try {
    return await work(server, server.ready.port as number)
  } catch (err) {
    failures.push(`${name}: ${(err as Error).message}`)
    return undefined
  } finally {
    await stopChild(server)
  }
}

function withServer<T> (variant: VariantName, work: (server: Child, port: number) => Promise<T>): Promise<T | undefined> {
  return withChildServer(variant, () => startServer(variant), work)
}

async function connectAll (server: Child, client: Child, port: number, n: number, firstSeq: number): Promise<number> {
  const opened = await client.rpc.call<{ ms: number, failed: number, firstError?: string }>('connect', { port, n, firstSeq })
  if (opened.failed > 0) throw new Error(`${opened.failed} of ${n} streams failed to open (${opened.firstError})`)
  const counted = await serverCounts(server, n)
  if (counted !== n) throw new Error(`the server counts ${counted} streams, not ${n}`)
  return opened.ms
}

/** Connects `n` clients to a fresh server and runs both bursts and the paced rate. */
export async function measureBroadcast (variant: VariantName, n: number, client: Child, settings: Settings): Promise<BroadcastFigures | undefined> {
  return withServer(variant, async (server, port) => {
    const seq = new Sequence()
    try {
      const connectMs = await connectAll(server, client, port, n, seq.next)
      // Enough to warm the JIT up; at large N fewer events do.
      const warmUp = Math.max(20, Math.min(WARM_UP, Math.round(settings.minDeliveries / n)))
      const warm = await deliver(server, client, { from: seq.take(warmUp), count: warmUp, perTick: PER_TICK, intervalMs: 0, pad: SMALL_PAD })
      check(variant, `warm-up at N=${n}`, warm.result)
      const repeat = Math.max(1, Math.round(settings.minDeliveries / (BURST * n)))
      const single = await measureDelivery(variant, `1 per tick at N=${n}`, server, client, seq, { count: BURST, perTick: 1, intervalMs: 0, repeat })
      const batched = await measureDelivery(variant, `${PER_TICK} per tick at N=${n}`, server, client, seq, { count: BURST, perTick: PER_TICK, intervalMs: 0, repeat })
      const paced = await measureDelivery(variant, `paced at N=${n}`, server, client, seq, {
        count: Math.round(PACED_RATE * settings.pacedSeconds), perTick: 1, intervalMs: 1000 / PACED_RATE, repeat: 1
      })
      return { connectMs, single, batched, paced }
    } finally {
      await client.rpc.call('closeAll')
    }
  })
}

/**
 * The sustained scenario: ~100-byte events at a steady rate to `n` clients,
 * stepped up by `factor` until a step is not held (p99 above
 * SUSTAINED_P99_MS, or an event lost); the capacity is the deliveries per
 * second of the highest step held. The server is pinned to one core, so that
 * is its figure per core.
 */
export async function measureSustained (variant: VariantName, n: number, client: Child, settings: Settings): Promise<SustainedFigures | undefined> {
  const { seconds, firstRate, factor, maxSteps } = settings.sustained
  return withServer(variant, async (server, port) => {
    const seq = new Sequence()
    const steps: SustainedStep[] = []
    try {
      await connectAll(server, client, port, n, seq.next)
      const warm = await deliver(server, client, { from: seq.take(20), count: 20, perTick: 1, intervalMs: 0, pad: SMALL_PAD })
      check(variant, `sustained warm-up at N=${n}`, warm.result)
      // The same first load in deliveries per second at every N.
      let rate = Math.max(1, Math.round(firstRate * 1000 / n))
      for (let step = 0; step < maxSteps; step++) {
        const count = Math.round(rate * seconds)
        const from = seq.take(count)
        const timeoutMs = seconds * 1000 + 30_000
        const arrived = client.rpc.call<WindowResult>('expect', { until: from + count - 1, timeoutMs }, timeoutMs + 10_000)
        const cpuBefore = cpuMicros(server.pid)
        const started = performance.now()
        await server.rpc.call('publishSteady', { from, count, rate, pad: SMALL_PAD }, timeoutMs)
        const result = await arrived
        const wallMicros = (performance.now() - started) * 1000
        const serverCpu = (cpuMicros(server.pid) - cpuBefore) / wallMicros
        const clientCpu = result.clientCpuMicros / wallMicros
        // Lost or repeated events fail the run like anywhere else; a p99 over the bound only ends the climb.
        check(variant, `sustained ${rate} events/s at N=${n}`, result)
        const lost = result.lost + result.outOfOrder + result.dropped + result.malformed
        const held = lost === 0 && !result.timedOut && result.p99 <= SUSTAINED_P99_MS
        steps.push({ rate, p99: result.p99, lost, deliveriesPerSecond: rate * n, serverCpu, clientCpu, held })
        // A step not held ends the climb; its backlog has been waited out by `expect`.
        if (!held) break
        rate = Math.round(rate * factor)
      }
      const best = steps.filter((step) => step.held).at(-1)
      return { steps, capacity: best?.deliveriesPerSecond ?? 0, atLeast: steps.at(-1)?.held === true }
    } finally {
      await client.rpc.call('closeAll')
    }
  })
}

/** Server RSS growth per idle stream, after a GC, with `n` streams open. */
export async function measureIdleMemory (variant: VariantName, n: number, client: Child): Promise<number | undefined> {
  return withServer(variant, async (server, port) => {
    try {
      const before = await server.rpc.call<ServerMemory>('memory')
      await connectAll(server, client, port, n, 1)
      const after = await server.rpc.call<ServerMemory>('memory')
      return (after.rss - before.rss) / n
    } finally {
      await client.rpc.call('closeAll')
    }
  })
}

function held (memory: ServerMemory): number {
  return memory.heapUsed + memory.external
}

/**
 * What a server holds for a client that stops reading: the same number of
 * 4 KiB events is published twice to a reading client, the second time with
 * a stalled one as well; the difference in heap plus external memory after a GC is
 * what the stalled client costs (history and other steady state cancel out).
 */
export async function measureStall (variant: VariantName, client: Child, settings: Settings): Promise<StallFigures | undefined> {
  return withServer(variant, async (server, port) => {
    const seq = new Sequence()
    // In steps the reading client keeps up with, so only the stalled one falls behind.
    const round = async (what: string): Promise<void> => {
      for (let sent = 0; sent < settings.stallEvents; sent += STALL_STEP) {
        const count = Math.min(STALL_STEP, settings.stallEvents - sent)
        const { result } = await deliver(server, client, { from: seq.take(count), count, perTick: 1, intervalMs: 0, pad: STALL_PAD })
        check(variant, what, result)
      }
    }
    try {
      await connectAll(server, client, port, 1, seq.next)
      await round('stalled client, the round without it')
      const before = await server.rpc.call<ServerMemory>('memory')
      await client.rpc.call('stall', { port })
      const counted = await serverCounts(server, 2)
      if (counted !== 2) throw new Error(`the stalled client's stream did not open (the server counts ${counted})`)
      await round('stalled client, the reading one')
      const after = await server.rpc.call<ServerMemory>('memory')
      return { heldBytes: held(after) - held(before), disconnected: after.connections === 1 }
    } finally {
      await client.rpc.call('closeAll')
    }
  })
}

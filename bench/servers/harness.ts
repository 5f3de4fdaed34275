import { setImmediate as nextTick, setTimeout as sleep } from 'node:timers/promises'
import { serveRpc } from '../rpc.js'
import { now, type BenchEvent } from '../event.js'

/** What each benchmark server provides; the harness does the rest the same way for all. */
export interface Variant {
  /** The port it listens on, on 127.0.0.1. */
  port: number
  /** Sends one event to every connected client; may return a promise (an adapter's publish). */
  publish: (event: BenchEvent) => unknown
  /**
   * Sends the events of one tick together, where a server can do that by hand (one joined write per
   * client). Used by the burst of several events per tick only; without it, `publish` is called per event.
   */
  publishBatch?: (events: BenchEvent[]) => unknown
  /** Streams open now, as the server itself counts them. */
  connections: () => number | Promise<number>
  /** Releases what outlives the process (a Redis key); the process then exits without closing its streams. */
  cleanup?: () => Promise<void>
  /**
   * Each tick's publishes are awaited before the next tick: for a server fed over the network
   * (nchan), whose events would otherwise queue in front of it with their publish time already taken.
   */
  awaitEachTick?: boolean
  /** The process whose CPU time and memory are measured, when it is not this one (nginx for nchan). */
  pid?: number
  /** The measured process's memory, when it is not this one; default: this process's after a GC. */
  memory?: () => ServerMemory | Promise<ServerMemory>
}

/** Arguments of the `publish` command. */
export interface PublishArgs {
  /** Sequence number of the first event. */
  from: number
  count: number
  /** Events published synchronously in one tick. */
  perTick: number
  /** Milliseconds between ticks; 0 means the next tick (`setImmediate`). */
  intervalMs: number
  /** Length of the padding string. */
  pad: number
}

/** Arguments of the `publishSteady` command. */
export interface SteadyArgs {
  /** Sequence number of the first event. */
  from: number
  count: number
  /** Events per second. */
  rate: number
  /** Length of the padding string. */
  pad: number
}

/** The server's own view of its memory and connections. */
export interface ServerMemory {
  rss: number
  heapUsed: number
  external: number
  connections: number
}

const gc = (globalThis as { gc?: () => void }).gc

async function publishAll (variant: Variant, args: PublishArgs): Promise<void> {
  const pad = 'x'.repeat(args.pad)
  const pending: Promise<unknown>[] = []
  const end = args.from + args.count
  const start = now()
  let seq = args.from
  for (let tick = 1; seq < end; tick++) {
    if (args.perTick > 1 && variant.publishBatch !== undefined) {
      const events: BenchEvent[] = []
      for (let i = 0; i < args.perTick && seq < end; i++, seq++) events.push({ seq, t: now(), pad })
      const result = variant.publishBatch(events)
      if (result instanceof Promise) pending.push(result)
    } else {
      for (let i = 0; i < args.perTick && seq < end; i++, seq++) {
        const result = variant.publish({ seq, t: now(), pad })
        if (result instanceof Promise) pending.push(result)
      }
    }
    if (variant.awaitEachTick === true) await Promise.all(pending.splice(0))
    if (args.intervalMs === 0) await nextTick()
    else await sleep(Math.max(0, start + tick * args.intervalMs - now()))
  }
  await Promise.all(pending)
}

/**
 * Publishes `count` events at a steady `rate`, each from a timer of its own at
 * its due time, as events from independent sources arrive: when the server is
 * busy, those that fell due meanwhile run in the same turn of the event loop,
 * each in its own callback. Each carries its due time, so a late timer counts
 * in the latency.
 */
function publishSteady (variant: Variant, args: SteadyArgs): Promise<void> {
  const pad = 'x'.repeat(args.pad)
  const pending: Promise<unknown>[] = []
  // Whole milliseconds, all set in this one synchronous block (one start time for all): timers due
  // in the same millisecond share Node's list for it and run in the order they were set.
  const start = now()
  return new Promise((resolve) => {
    let fired = 0
    for (let i = 0; i < args.count; i++) {
      const offset = 20 + Math.round(i * 1000 / args.rate)
      setTimeout(() => {
        const result = variant.publish({ seq: args.from + i, t: start + offset, pad })
        if (result instanceof Promise) pending.push(result)
        if (++fired === args.count) resolve(Promise.all(pending).then(() => {}))
      }, offset)
    }
  })
}

/** The process's memory after a GC, with the streams it counts open. */
export function memoryAfterGc (connections: number): ServerMemory {
  // Twice: the first pass can leave garbage that only a second one frees.
  gc?.()
  gc?.()
  const { rss, heapUsed, external } = process.memoryUsage()
  return { rss, heapUsed, external, connections }
}

/** Exits soon after `cleanup`, without closing the server: some peers' close() waits for every stream to end. */
export async function exitSoon (cleanup?: () => Promise<void>): Promise<void> {
  await Promise.race([cleanup?.(), sleep(2000)])
  setImmediate(() => process.exit(0))
}

/**
 * Runs a benchmark server: tells the parent its port and pid, then answers
 * `publish`, `memory` and `stop` over IPC.
 */
export async function runServer (start: () => Promise<Variant>): Promise<void> {
  const variant = await start()
  serveRpc({
    publish: (args: PublishArgs) => publishAll(variant, args),
    publishSteady: (args: SteadyArgs) => publishSteady(variant, args),
    connections: () => variant.connections(),
    memory: async () => await variant.memory?.() ?? memoryAfterGc(await variant.connections()),
    stop: () => exitSoon(variant.cleanup)
  })
  process.send?.({ ready: true, port: variant.port, pid: variant.pid ?? process.pid })
}

/** The port a server listening on 127.0.0.1 was given. */
export function portOf (server: { address: () => unknown }): number {
  return (server.address() as { port: number }).port
}

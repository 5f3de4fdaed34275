import { setImmediate as nextTick, setTimeout as sleep } from 'node:timers/promises'
import { serveRpc } from '../rpc.js'
import { now, type BenchEvent } from '../event.js'

/** What each benchmark server provides; the harness does the rest the same way for all. */
export interface Variant {
  /** The port it listens on, on 127.0.0.1. */
  port: number
  /** Sends one event to every connected client; may return a promise (an adapter's publish). */
  publish: (event: BenchEvent) => unknown
  /** Streams open now, as the server itself counts them. */
  connections: () => number
  /** Releases what outlives the process (a Redis key); the process then exits without closing its streams. */
  cleanup?: () => Promise<void>
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
    for (let i = 0; i < args.perTick && seq < end; i++, seq++) {
      const result = variant.publish({ seq, t: now(), pad })
      if (result instanceof Promise) pending.push(result)
    }
    if (args.intervalMs === 0) await nextTick()
    else await sleep(Math.max(0, start + tick * args.intervalMs - now()))
  }
  await Promise.all(pending)
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
    connections: () => variant.connections(),
    memory: () => memoryAfterGc(variant.connections()),
    stop: () => exitSoon(variant.cleanup)
  })
  process.send?.({ ready: true, port: variant.port, pid: process.pid })
}

/** The port a server listening on 127.0.0.1 was given. */
export function portOf (server: { address: () => unknown }): number {
  return (server.address() as { port: number }).port
}

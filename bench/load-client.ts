// The load client, run as its own process: opens N streams, parses every event,
// checks each stream gets every event once and in order, and measures latency.
import { get, type ClientRequest } from 'node:http'
import { setTimeout as sleep } from 'node:timers/promises'
import { connect as tcpConnect, type Socket } from 'node:net'
import { serveRpc } from './rpc.js'
import { SseParser } from './sse-parser.js'
import { now, type BenchEvent } from './event.js'
import { percentile } from './stats.js'

interface Stream {
  /** The sequence number this stream expects next. */
  next: number
  req: ClientRequest
}

/** What one `expect` window saw, over all streams. */
export interface WindowResult {
  delivered: number
  /** Events a stream never got (skipped, or still missing at the timeout). */
  lost: number
  /** Events that came twice or out of order. */
  outOfOrder: number
  /** Streams the server ended. */
  dropped: number
  /** Events whose data was not the benchmark's JSON. */
  malformed: number
  timedOut: boolean
  /** Publish time of the window's first event and arrival time of its last one. */
  firstPublished: number
  lastReceived: number
  p50: number
  p99: number
}

const live = new Set<Stream>()
const stalled = new Set<Socket>()
let closing = false
let receivedAt = 0
// The window being waited for: every live stream must get up to `target`.
let target = -1
let reached = 0
let onReached: (() => void) | undefined
let counts = { delivered: 0, lost: 0, outOfOrder: 0, dropped: 0, malformed: 0 }
let firstPublished = Infinity
let lastReceived = 0
let latencies = new Float64Array(1 << 16)
let latencyCount = 0

function parse (data: string): BenchEvent | undefined {
  try {
    const event = JSON.parse(data) as BenchEvent
    return typeof event.seq === 'number' && typeof event.t === 'number' ? event : undefined
  } catch {
    return undefined
  }
}

function record (stream: Stream, data: string): void {
  const event = parse(data)
  if (event === undefined) {
    counts.malformed++
    return
  }
  const before = stream.next
  if (event.seq < before) {
    counts.outOfOrder++
    return
  }
  counts.lost += event.seq - before
  stream.next = event.seq + 1
  counts.delivered++
  if (latencyCount === latencies.length) {
    const bigger = new Float64Array(latencies.length * 2)
    bigger.set(latencies)
    latencies = bigger
  }
  latencies[latencyCount++] = receivedAt - event.t
  if (event.t < firstPublished) firstPublished = event.t
  lastReceived = receivedAt
  if (before <= target && stream.next > target) arrived()
}

function arrived (): void {
  reached++
  if (reached >= live.size) onReached?.()
}

function ended (stream: Stream): void {
  if (!live.delete(stream) || closing) return
  counts.dropped++
  // It will never reach the target: count what it misses and stop waiting for it.
  if (stream.next <= target) {
    counts.lost += target + 1 - stream.next
    stream.next = target + 1
  } else if (target >= 0) {
    reached--
  }
  if (reached >= live.size) onReached?.()
}

function openStream (port: number, firstSeq: number): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = get({ host: '127.0.0.1', port, path: '/events', agent: false, headers: { accept: 'text/event-stream' } })
    const stream: Stream = { next: firstSeq, req }
    let open = false
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        res.resume()
        req.destroy()
        reject(new Error(`status ${res.statusCode}`))
        return
      }
      open = true
      live.add(stream)
      res.setEncoding('utf8')
      // This plugin's opening event is not one of the benchmark's (some servers name theirs `message`, so only it is skipped).
      const parser = new SseParser((data, event) => { if (event !== 'push-stream:open') record(stream, data) })
      res.on('data', (chunk: string) => {
        receivedAt = now()
        parser.push(chunk)
      })
      res.on('close', () => ended(stream))
      resolve()
    })
    req.on('error', (err) => {
      if (open) ended(stream)
      else reject(err)
    })
  })
}

/** Opens `n` streams, at most `concurrency` handshakes at a time so the listen backlog never overflows. */
async function connect ({ port, n, firstSeq, concurrency = 200 }: { port: number, n: number, firstSeq: number, concurrency?: number }) {
  closing = false
  const start = now()
  let started = 0
  const errors: string[] = []
  const worker = async (): Promise<void> => {
    while (started < n) {
      started++
      await openStream(port, firstSeq).catch((err: Error) => { errors.push(err.message) })
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker))
  return { ms: now() - start, failed: errors.length, firstError: errors[0] }
}

/** Waits until every live stream has the events up to `until`, then reports the window and starts a new one. */
async function expect ({ until, timeoutMs }: { until: number, timeoutMs: number }): Promise<WindowResult> {
  target = until
  reached = 0
  for (const stream of live) if (stream.next > until) reached++
  let timedOut = false
  if (reached < live.size) {
    await new Promise<void>((resolve) => {
      const timer = setTimeout(() => { timedOut = true; resolve() }, timeoutMs)
      onReached = () => { clearTimeout(timer); resolve() }
    })
  }
  onReached = undefined
  if (timedOut) {
    for (const stream of live) {
      if (stream.next <= until) {
        counts.lost += until + 1 - stream.next
        stream.next = until + 1
      }
    }
  }
  const sorted = latencies.subarray(0, latencyCount).sort()
  const result: WindowResult = {
    ...counts,
    timedOut,
    firstPublished,
    lastReceived,
    p50: percentile(sorted, 0.5),
    p99: percentile(sorted, 0.99)
  }
  counts = { delivered: 0, lost: 0, outOfOrder: 0, dropped: 0, malformed: 0 }
  firstPublished = Infinity
  lastReceived = 0
  latencyCount = 0
  target = -1
  return result
}

/** Opens a stream that sends its request and then never reads a byte. */
function stall ({ port }: { port: number }): Promise<void> {
  return new Promise((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1', () => {
      socket.write('GET /events HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n', () => resolve())
    })
    socket.pause()
    socket.on('error', reject)
    stalled.add(socket)
  })
}

/** Closes every stream this client opened and waits until they are all gone. */
async function closeAll (): Promise<void> {
  closing = true
  const sockets = [...stalled]
  for (const stream of live) if (stream.req.socket !== null) sockets.push(stream.req.socket)
  const gone = sockets.filter((socket) => !socket.closed).map((socket) => new Promise((resolve) => socket.once('close', resolve)))
  for (const socket of sockets) socket.destroy()
  await Promise.race([Promise.all(gone), sleep(10_000)])
  live.clear()
  stalled.clear()
}

serveRpc({ connect, expect, stall, closeAll, stop: () => { setImmediate(() => process.exit(0)) } })
process.send?.({ ready: true, pid: process.pid })

// The load client of the per-request scenario, run as its own process: opens N token streams,
// checks that each gets its tokens once, in order, up to the last, and opens streams that never read.
import { get, type ClientRequest } from 'node:http'
import { connect as tcpConnect, type Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import { now } from './event.js'
import { serveRpc } from './rpc.js'
import { SseParser } from './sse-parser.js'
import { tokenIndex } from './token.js'

/** What one round of token streams saw, over all its streams. */
export interface RoundResult {
  /** Tokens that arrived once and in order. */
  delivered: number
  /** Tokens a stream never got (skipped, or missing when it ended or at the timeout). */
  lost: number
  /** Tokens that came twice or out of order. */
  outOfOrder: number
  /** Unnamed events whose data was not a token of the stream. */
  malformed: number
  /** Streams that ended before their last token (the server closed them, or the timeout did). */
  cut: number
  /** Events with an `event:` name, such as a closing event: counted, not tokens. */
  named: number
  timedOut: boolean
  /** When the last stream ended (`now()`). */
  lastEnded: number
}

interface TokenStream {
  /** The token index this stream expects next. */
  next: number
  done: boolean
  req: ClientRequest
}

/** One round: `n` streams of `tokens` tokens each, opened together and checked as they run. */
class Round {
  readonly streams = new Set<TokenStream>()
  readonly counts = { delivered: 0, lost: 0, outOfOrder: 0, malformed: 0, cut: 0, named: 0 }
  lastEnded = 0
  #running = 0
  #onAllEnded: (() => void) | undefined

  constructor (readonly tokens: number) {}

  add (stream: TokenStream): void {
    this.streams.add(stream)
    this.#running++
  }

  receive (stream: TokenStream, data: string, event: string): void {
    if (event !== '' && event !== 'message') {
      this.counts.named++
      return
    }
    const index = tokenIndex(data)
    if (index < 0 || index >= this.tokens) {
      this.counts.malformed++
      return
    }
    if (index < stream.next) {
      this.counts.outOfOrder++
      return
    }
    this.counts.lost += index - stream.next
    stream.next = index + 1
    this.counts.delivered++
  }

  /** A stream ended: whatever it had not received by then is lost. */
  end (stream: TokenStream): void {
    if (stream.done) return
    stream.done = true
    if (stream.next < this.tokens) {
      this.counts.cut++
      this.counts.lost += this.tokens - stream.next
      stream.next = this.tokens
    }
    this.lastEnded = now()
    if (--this.#running === 0) this.#onAllEnded?.()
  }

  /** Resolves true once every stream has ended, false at the timeout (the rest are then ended as cut). */
  async allEnded (timeoutMs: number): Promise<boolean> {
    if (this.#running > 0) {
      const ended = await new Promise<boolean>((resolve) => {
        const timer = setTimeout(() => resolve(false), timeoutMs)
        this.#onAllEnded = () => { clearTimeout(timer); resolve(true) }
      })
      this.#onAllEnded = undefined
      if (!ended) {
        for (const stream of this.streams) {
          this.end(stream)
          stream.req.destroy()
        }
        return false
      }
    }
    return true
  }
}

let round = new Round(0)
const stalled = new Set<Socket>()

/** Opens one stream of `round`; resolves once its connection is made and the request is on its way. */
function openStream (port: number, current: Round): Promise<void> {
  return new Promise((resolve, reject) => {
    const req = get({
      host: '127.0.0.1', port, path: `/tokens?count=${current.tokens}`, agent: false, headers: { accept: 'text/event-stream' }
    })
    const stream: TokenStream = { next: 0, done: false, req }
    let connected = false
    req.on('socket', (socket) => socket.once('connect', () => {
      connected = true
      current.add(stream)
      resolve()
    }))
    req.on('response', (res) => {
      if (res.statusCode !== 200) {
        res.resume()
        req.destroy()
        return
      }
      res.setEncoding('utf8')
      const parser = new SseParser((data, event) => current.receive(stream, data, event))
      res.on('data', (chunk: string) => parser.push(chunk))
      res.on('close', () => current.end(stream))
    })
    req.on('close', () => { if (connected) current.end(stream) })
    req.on('error', (err) => {
      if (connected) current.end(stream)
      else reject(err)
    })
  })
}

/**
 * Starts a round of `n` streams of `tokens` tokens, at most `concurrency`
 * connections being made at a time; the server holds every source until it
 * is told to start, so they run together.
 */
async function open ({ port, n, tokens, concurrency = 200 }: { port: number, n: number, tokens: number, concurrency?: number }) {
  const current = new Round(tokens)
  round = current
  let started = 0
  const errors: string[] = []
  const worker = async (): Promise<void> => {
    while (started < n) {
      started++
      await openStream(port, current).catch((err: Error) => { errors.push(err.message) })
    }
  }
  await Promise.all(Array.from({ length: Math.min(concurrency, n) }, worker))
  return { failed: errors.length, firstError: errors[0] }
}

/** Waits until every stream of the round has ended, at most `timeoutMs`, and reports what they got. */
async function finish ({ timeoutMs }: { timeoutMs: number }): Promise<RoundResult> {
  const ended = await round.allEnded(timeoutMs)
  return { ...round.counts, timedOut: !ended, lastEnded: round.lastEnded }
}

/** Opens `n` streams of `count` tokens that send their request and then never read a byte. */
async function stall ({ port, n, count }: { port: number, n: number, count: number }): Promise<void> {
  const request = `GET /tokens?count=${count}&stall=1 HTTP/1.1\r\nHost: 127.0.0.1\r\nAccept: text/event-stream\r\n\r\n`
  const opening = Array.from({ length: n }, () => new Promise<void>((resolve, reject) => {
    const socket = tcpConnect(port, '127.0.0.1', () => socket.write(request, () => resolve()))
    socket.pause()
    socket.on('error', reject)
    stalled.add(socket)
  }))
  await Promise.all(opening)
}

/** Closes every stream this client opened and waits until they are all gone. */
async function closeAll (): Promise<void> {
  const sockets = [...stalled]
  for (const stream of round.streams) {
    stream.done = true
    if (stream.req.socket !== null) sockets.push(stream.req.socket)
  }
  const gone = sockets.filter((socket) => !socket.closed).map((socket) => new Promise((resolve) => socket.once('close', resolve)))
  for (const socket of sockets) socket.destroy()
  await Promise.race([Promise.all(gone), sleep(10_000)])
  stalled.clear()
  round = new Round(0)
}

serveRpc({ open, finish, stall, closeAll, stop: () => { setImmediate(() => process.exit(0)) } })
process.send?.({ ready: true, pid: process.pid })

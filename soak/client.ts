import http from 'node:http'
import { createParser } from 'eventsource-parser'
import { now } from './clock.js'
import type { Histogram } from './histogram.js'

/** What a client counts while it runs. */
export interface ClientCounts {
  received: number
  duplicates: number
  outOfOrder: number
  resets: number
  reconnects: number
}

interface Options {
  port: number
  channels: string[]
  latency: Histogram
  /** Mean time a connection stays up before the client drops it, in ms. */
  meanLife: number
  /** Longest wait before reconnecting, in ms. */
  maxAway: number
}

/**
 * One soak client: subscribes to its channels with the browser client's
 * handshake, drops its connection at random and resumes with Last-Event-ID,
 * and checks every event against what it already has, per channel.
 */
export class SoakClient {
  readonly channels: string[]
  readonly counts: ClientCounts = { received: 0, duplicates: 0, outOfOrder: 0, resets: 0, reconnects: 0 }
  /** The id the server gave this client when it first connected: it must get every event after it. */
  startId: string | undefined
  /** Ids of the `reset` events it got: gaps up to them are beyond history, not losses. */
  readonly resetIds: string[] = []
  /** Per channel: which sequence numbers arrived. */
  readonly seen = new Map<string, Uint8Array>()
  /** Per channel: the highest sequence number that arrived. */
  readonly lastSeq = new Map<string, number>()
  readonly #options: Options
  #lastId: string | undefined
  #request: http.ClientRequest | undefined
  #timer: NodeJS.Timeout | undefined
  #stopping = false
  #connected = false
  /** Resolves `connect()` once the first stream has opened, whichever attempt that is. */
  #onFirstOpen: () => void = () => {}

  constructor (options: Options) {
    this.#options = options
    this.channels = options.channels
  }

  /** True while a stream is open. */
  get connected (): boolean {
    return this.#connected
  }

  /** Opens the stream; resolves once its opening event arrived. */
  async connect (): Promise<void> {
    await new Promise<void>((resolve) => {
      this.#onFirstOpen = resolve
      this.#open()
    })
  }

  /** No more random drops; a client away now comes back on its own timer. */
  settle (): void {
    this.#stopping = true
    if (this.#connected) clearTimeout(this.#timer)
  }

  close (): void {
    this.#stopping = true
    clearTimeout(this.#timer)
    this.#request?.destroy()
  }

  #open (): void {
    const query = ['handshake=1', ...this.channels.map((c) => `channel=${c}`)].join('&')
    const headers: Record<string, string> = this.#lastId === undefined ? {} : { 'last-event-id': this.#lastId }
    const sentAt = now()
    const decoder = new TextDecoder()
    const parser = createParser({
      onEvent: (event) => {
        if (event.event === 'push-stream:open') {
          if (this.startId === undefined) this.startId = event.id
          if (this.#lastId === undefined) this.#lastId = event.id
          this.#connected = true
          this.#scheduleDrop()
          this.#onFirstOpen()
          return
        }
        if (event.id !== undefined) this.#lastId = event.id
        if (event.event === 'reset') {
          this.counts.resets++
          if (event.id !== undefined) this.resetIds.push(event.id)
          return
        }
        const { c, s, t } = JSON.parse(event.data) as { c: string, s: number, t: number }
        this.#check(c, s)
        // Only live events: a replayed one was published before this connection was asked for.
        if (t >= sentAt) this.#options.latency.add(now() - t)
      }
    })
    const request = http.get({ port: this.#options.port, host: '127.0.0.1', path: `/events?${query}`, headers, agent: false }, (res) => {
      res.on('data', (chunk: Buffer) => parser.feed(decoder.decode(chunk, { stream: true })))
      res.on('error', () => {})
    })
    request.on('error', () => {})
    request.on('close', () => {
      if (this.#request !== request) return
      this.#connected = false
      if (this.#stopping && this.#timer === undefined) return
      this.#reconnectLater()
    })
    this.#request = request
  }

  #check (channel: string, seq: number): void {
    this.counts.received++
    let seen = this.seen.get(channel)
    if (seen === undefined || seq >= seen.length) {
      const grown = new Uint8Array(Math.max(64, (seq + 1) * 2))
      if (seen !== undefined) grown.set(seen)
      seen = grown
      this.seen.set(channel, seen)
    }
    if (seen[seq] === 1) {
      this.counts.duplicates++
      return
    }
    seen[seq] = 1
    const last = this.lastSeq.get(channel) ?? -1
    if (seq < last) this.counts.outOfOrder++
    else this.lastSeq.set(channel, seq)
  }

  #scheduleDrop (): void {
    clearTimeout(this.#timer)
    this.#timer = undefined
    if (this.#stopping) return
    const life = -Math.log(1 - Math.random()) * this.#options.meanLife
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#request?.destroy()
    }, life)
  }

  #reconnectLater (): void {
    this.counts.reconnects++
    this.#timer = setTimeout(() => {
      this.#timer = undefined
      this.#open()
    }, Math.random() * this.#options.maxAway)
  }
}

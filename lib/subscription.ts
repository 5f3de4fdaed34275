import { FST_PUSH_STREAM_SUBSCRIPTION_OVERFLOW, FST_PUSH_STREAM_SUBSCRIPTION_USED } from './errors.js'
import type { HistoryEntry } from './history.js'

/** An event as a subscription's reader gets it: its id, name, channel and `data:` text, as every instance sees them. */
export interface SubscribedEvent {
  id: string
  /** The event name; undefined for the client's `message`. */
  event: string | undefined
  channel: string
  /** The data as it went on the wire: the text `serialize` made of it, or the string published. */
  data: string
}

/** Options of `fastify.pushStream.subscribe`. */
export interface SubscribeOptions {
  /** Read as an async iterable: events a reader may fall behind by before it ends with `FST_PUSH_STREAM_SUBSCRIPTION_OVERFLOW`. Default `1000`. */
  maxQueued?: number
}

/** Who hands a reader the events of each tick: adds it, and gives back how to remove it. */
export type AttachReader = (reader: SubscriptionReader) => () => void

/**
 * A set of channels to follow, made by `fastify.pushStream.subscribe`. Given
 * to `reply.sse`, it streams those channels to the request the way the
 * built-in route does (shared encoded bytes, `Last-Event-ID` replay, `reset`,
 * limits). Read as an async iterable, it yields the events published on them
 * from then on. Either way, once.
 */
export class Subscription implements AsyncIterable<SubscribedEvent> {
  /** The channels followed. */
  readonly channels: ReadonlySet<string>
  readonly #maxQueued: number
  readonly #attach: AttachReader
  #used = false

  constructor (channels: ReadonlySet<string>, maxQueued: number, attach: AttachReader) {
    this.channels = channels
    this.#maxQueued = maxQueued
    this.#attach = attach
  }

  /** Marks the subscription used; throws `FST_PUSH_STREAM_SUBSCRIPTION_USED` if it was. */
  take (): void {
    if (this.#used) throw new FST_PUSH_STREAM_SUBSCRIPTION_USED()
    this.#used = true
  }

  [Symbol.asyncIterator] (): AsyncIterator<SubscribedEvent> {
    this.take()
    return new SubscriptionReader(this.channels, this.#maxQueued, this.#attach)
  }
}

/**
 * One reader of a subscription: queues the events of its channels until it
 * asks for them, at most `maxQueued`; past that it ends with
 * `FST_PUSH_STREAM_SUBSCRIPTION_OVERFLOW` rather than hold more.
 */
export class SubscriptionReader implements AsyncIterator<SubscribedEvent> {
  readonly #channels: ReadonlySet<string>
  readonly #maxQueued: number
  readonly #detach: () => void
  #queue: SubscribedEvent[] = []
  /** The reader's pending `next()`, when it waits for an event. */
  #waiting: ((result: IteratorResult<SubscribedEvent>) => void) | undefined
  /** Set when the reader fell too far behind: its next `next()` rejects with it. */
  #error: Error | undefined
  #done = false

  constructor (channels: ReadonlySet<string>, maxQueued: number, attach: AttachReader) {
    this.#channels = channels
    this.#maxQueued = maxQueued
    this.#detach = attach(this)
  }

  /** Takes a tick's events: those on its channels go to the waiting `next()` or the queue. */
  deliver (entries: readonly HistoryEntry[]): void {
    for (const entry of entries) {
      if (this.#done || !this.#channels.has(entry.channel)) continue
      const event: SubscribedEvent = { id: entry.idText, event: entry.event, channel: entry.channel, data: entry.data }
      const waiting = this.#waiting
      if (waiting !== undefined) {
        this.#waiting = undefined
        waiting({ done: false, value: event })
      } else if (this.#queue.length < this.#maxQueued) {
        this.#queue.push(event)
      } else {
        this.#error = new FST_PUSH_STREAM_SUBSCRIPTION_OVERFLOW(this.#maxQueued)
        this.#queue = []
        this.#stop()
      }
    }
  }

  /** The plugin closes: the reader gets what is queued, then its end. */
  end (): void {
    this.#stop()
    const waiting = this.#waiting
    this.#waiting = undefined
    waiting?.({ done: true, value: undefined })
  }

  async next (): Promise<IteratorResult<SubscribedEvent>> {
    const queued = this.#queue.shift()
    if (queued !== undefined) return { done: false, value: queued }
    const error = this.#error
    if (error !== undefined) {
      this.#error = undefined
      throw error
    }
    if (this.#done) return { done: true, value: undefined }
    return await new Promise((resolve) => { this.#waiting = resolve })
  }

  async return (): Promise<IteratorResult<SubscribedEvent>> {
    this.#queue = []
    this.end()
    return { done: true, value: undefined }
  }

  #stop (): void {
    if (this.#done) return
    this.#done = true
    this.#detach()
  }
}

import type { OutgoingHttpHeaders } from 'node:http'
import { Connection, isGone, type RawResponse } from './connection.js'
import { assertEventName, encodeControl, encodeEvent } from './encoder.js'
import {
  FST_PUSH_STREAM_CLOSED,
  FST_PUSH_STREAM_INVALID_CHANNEL,
  FST_PUSH_STREAM_SERIALIZE_FAILED,
  describe,
  errorMessage
} from './errors.js'
import { EventIdClock, formatEventId, parseEventId } from './event-id.js'
import { Generator } from './generator.js'
import { History } from './history.js'
import { Hub } from './hub.js'
import type { ResolvedOptions } from './options.js'

/** The channel of a client that names none, and of an event published without one. */
export const DEFAULT_CHANNEL = 'default'

/** The name of the event a client gets when its `Last-Event-ID` cannot be replayed. */
export const RESET_EVENT = 'reset'

/** The first event of a stream opened with `?handshake=1` (the browser client): data `{ retry }`. */
export const OPEN_EVENT = 'push-stream:open'

/** What a stream request asks for. */
export interface StreamRequest {
  /** The channels to subscribe to. */
  channels: ReadonlySet<string>
  /** The id to resume after, as the client sent it; undefined for a fresh client. */
  lastEventId: string | undefined
  /** True for the browser client (`?handshake=1`): it gets the opening block as an `OPEN_EVENT` it can read. */
  handshake: boolean
}

const UTF8 = new TextDecoder()
const RESET_DATA = JSON.stringify({ reason: 'unknown-last-event-id' })
const CHANNEL = /^[A-Za-z0-9_.:-]{1,64}$/

/** True when `name` is in the safe channel character set (1 to 64 of `A-Z a-z 0-9 _ - . :`). */
export function isValidChannel (name: unknown): name is string {
  return typeof name === 'string' && CHANNEL.test(name)
}

/** Throws `FST_PUSH_STREAM_INVALID_CHANNEL` unless `name` is a valid channel name. */
export function assertChannel (name: unknown): asserts name is string {
  if (!isValidChannel(name)) throw new FST_PUSH_STREAM_INVALID_CHANNEL(describe(name))
}

/** Options of `publish`. */
export interface PublishOptions {
  /** The SSE event name; the client's `message` event when absent. No CR, LF or NUL. */
  event?: string
  /** The channel to publish on. Default `'default'`. */
  channel?: string
}

/** An event as published: the id the plugin gave it, its name, channel and data. */
export interface PublishedEvent<T = unknown> {
  id: string
  event: string | undefined
  channel: string
  data: T
}

/** Counters since the plugin started. */
export interface PushStreamStats {
  /** Streams open now. */
  connections: number
  /** Events published. */
  published: number
  /** Events sent again to clients that reconnected with `Last-Event-ID`. */
  replayed: number
  /** `reset` events sent because a `Last-Event-ID` could not be replayed. */
  resets: number
  /** Streams ended because the client fell more than `maxBufferedBytes` behind. */
  slowDisconnects: number
}

/** The `fastify.pushStream` decorator. */
export interface PushStreamApi {
  /**
   * Publishes one event to every subscriber of its channel and records it for
   * replay. Strings are sent as they are; anything else goes through `serialize`.
   * Throws a named error (and sends nothing) for a bad event name, channel or data.
   */
  publish<T>(data: T, options?: PublishOptions): PublishedEvent<T>
  /** Pulls one message from the source and publishes it; `undefined` when the source gave none. */
  generate(): Promise<PublishedEvent | undefined>
  /** Counters since the plugin started. */
  stats(): PushStreamStats
}

function isSourceMessage (value: unknown): value is { data: unknown, event?: string, channel?: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !('data' in value)) return false
  return Object.keys(value).every((key) => key === 'data' || key === 'event' || key === 'channel')
}

/**
 * The core: assigns ids, encodes each event once, records it in history and
 * hands the bytes to the hub; opens client streams with their replay.
 */
export class PushStream implements PushStreamApi {
  readonly #options: ResolvedOptions
  readonly #clock = new EventIdClock()
  readonly #history: History
  readonly #hub: Hub
  readonly #generator: Generator<PublishedEvent>
  #published = 0
  #replayed = 0
  #resets = 0
  #closed = false

  /** `onSourceError` is told of every failure of the generator loop (the loop goes on). */
  constructor (options: ResolvedOptions, onSourceError: (error: unknown) => void) {
    this.#options = options
    this.#history = new History(options.history, this.#clock.origin)
    this.#hub = new Hub(options.heartbeat)
    this.#generator = new Generator({
      source: options.source,
      interval: options.interval,
      publish: (value) => this.#publishFromSource(value),
      onError: onSourceError
    })
  }

  /** True once `close()` began: no new streams, no publishing. */
  get closing (): boolean {
    return this.#closed
  }

  /** Open streams. */
  get connections (): number {
    return this.#hub.size
  }

  publish<T>(data: T, options: PublishOptions = {}): PublishedEvent<T> {
    if (this.#closed) throw new FST_PUSH_STREAM_CLOSED()
    const { event } = options
    if (event !== undefined) assertEventName(event)
    const channel = options.channel ?? DEFAULT_CHANNEL
    assertChannel(channel)
    const text = this.#serialize(data)
    const id = this.#clock.next()
    const idText = formatEventId(id)
    const frame = encodeEvent({ id: idText, event, data: text })
    this.#published++
    this.#history.append({ id, idText, channel, frame })
    this.#hub.broadcast(channel, frame)
    return { id: idText, event, channel, data }
  }

  async generate (): Promise<PublishedEvent | undefined> {
    if (this.#closed) throw new FST_PUSH_STREAM_CLOSED()
    const pulled = await this.#generator.pull()
    return pulled.done ? undefined : pulled.published
  }

  stats (): PushStreamStats {
    return {
      connections: this.#hub.size,
      published: this.#published,
      replayed: this.#replayed,
      resets: this.#resets,
      slowDisconnects: this.#hub.slowDisconnects
    }
  }

  /** Starts the generator loop (a no-op when `interval` is 0 and the source is a function). */
  start (): void {
    this.#generator.start()
  }

  /**
   * Opens a client's stream: headers, an opening block (the `retry:` and, for
   * a fresh client, its starting id), then the events it missed or a `reset`,
   * then live events. All of it happens in one synchronous step, so no event
   * can fall between replay and live.
   */
  open (res: RawResponse, headers: OutgoingHttpHeaders, request: StreamRequest): void {
    // A client that left while the request was in hooks or authorize: its close event has already passed.
    if (isGone(res)) return
    const { channels, lastEventId, handshake } = request
    const connection = new Connection(res, channels, this.#options.maxBufferedBytes, this.#hub.remove)
    // Subscribed before the first write, so a write that ends it unsubscribes it again.
    this.#hub.add(connection)
    connection.open(headers)
    const retry = this.#options.retry
    const newest = formatEventId(this.#history.newest)
    // A fresh client learns where it starts, so a reconnect before its first event still resumes.
    const startId = lastEventId === undefined ? newest : undefined
    connection.write(handshake
      ? encodeEvent({ retry, id: startId, event: OPEN_EVENT, data: JSON.stringify({ retry }) })
      : encodeControl({ retry, id: startId }))
    if (lastEventId === undefined) return
    const parsed = parseEventId(lastEventId)
    const missed = parsed === null ? null : this.#history.since(parsed, channels)
    if (missed === null) {
      this.#resets++
      connection.write(encodeEvent({ id: newest, event: RESET_EVENT, data: RESET_DATA }))
      return
    }
    connection.writeReplay(missed.map((entry) => entry.frame))
    this.#replayed += missed.length
  }

  /** Stops the generator and ends every stream, each with a jittered `retry:` so clients do not all return at once. */
  async close (): Promise<void> {
    this.#closed = true
    const retry = this.#options.retry
    this.#hub.closeAll(() => encodeControl({ retry: retry + Math.floor(Math.random() * Math.max(retry, 1000)) }))
    await this.#generator.stop()
  }

  #serialize (data: unknown): string {
    if (typeof data === 'string') return data
    // Decoded whole, so a multi-byte character is never split.
    if (data instanceof Uint8Array) return UTF8.decode(data)
    let text: unknown
    try {
      text = this.#options.serialize(data)
    } catch (error) {
      throw new FST_PUSH_STREAM_SERIALIZE_FAILED(errorMessage(error), { cause: error })
    }
    if (typeof text !== 'string') {
      throw new FST_PUSH_STREAM_SERIALIZE_FAILED(`serialize returned ${describe(text)}, not a string`)
    }
    return text
  }

  #publishFromSource (value: unknown): PublishedEvent {
    if (!isSourceMessage(value)) return this.publish(value)
    return this.publish(value.data, { event: value.event, channel: value.channel })
  }
}

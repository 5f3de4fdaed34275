import type { OutgoingHttpHeaders } from 'node:http'
import type { AdapterContext, AdapterEvent, AdapterLogger, PushStreamAdapter } from './adapter.js'
import { Connection, isGone, type CloseReason, type RawResponse, type StreamLog } from './connection.js'
import { assertEventName, encodeControl, encodeEvent } from './wire/encoder.js'
import {
  FST_PUSH_STREAM_ADAPTER_UNAVAILABLE,
  FST_PUSH_STREAM_CLOSED,
  FST_PUSH_STREAM_INVALID_OPTION,
  FST_PUSH_STREAM_INVALID_PUBLISH_OPTIONS,
  FST_PUSH_STREAM_SERIALIZE_FAILED,
  describe,
  errorMessage
} from './errors.js'
import { EventIdClock, compareEventIds, formatEventId, parseEventId, type EventId } from './wire/event-id.js'
import { Generator } from './generator.js'
import { History, type HistoryEntry } from './history.js'
import { Hub, groupKey } from './hub.js'
import { LeaseKeeper } from './lease.js'
import { withoutRepeatedCause } from './log.js'
import type { ResolvedOptions } from './options.js'
import { DEFAULT_CHANNEL, OPEN_EVENT, RESET_DATA, RESET_EVENT, assertChannel, isValidChannel } from './wire/protocol.js'

/** What a stream request asks for. */
export interface StreamRequest {
  /** The channels to subscribe to. */
  channels: ReadonlySet<string>
  /** The id to resume after, as the client sent it; undefined for a fresh client. */
  lastEventId: string | undefined
  /** True for the browser client (`?handshake=1`): it gets the opening block as an `OPEN_EVENT` it can read. */
  handshake: boolean
  /** The client's address (`request.ip`). */
  address: string
  /** The request's logger (`request.log`, which carries its id): the stream's open and end are logged there at `debug`. */
  log: StreamLog
}

/** How a stream's end reads in its log line. */
const END_REASONS: Record<CloseReason, string> = { client: 'client-closed', slow: 'too-slow', server: 'server-closing' }

const UTF8 = new TextDecoder()

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

/**
 * What `publish` returns, with every engine: a promise of the event as
 * published. Kept as a name for code written against earlier versions.
 */
export type Published<T> = Promise<PublishedEvent<T>>

/** The `fastify.pushStream` decorator. */
export interface PushStreamApi {
  /**
   * Publishes one event to every subscriber of its channel and records it for
   * replay. Strings are sent as they are; anything else goes through `serialize`.
   * Bad input throws a named error at once, with every engine, and sends
   * nothing: a bad event name, channel, options argument or data, or a call
   * after close. Otherwise it returns a promise of the event with its id,
   * which resolves at once with the in-memory engine and once the engine has
   * stored the event with an adapter (it rejects only when the engine fails).
   */
  publish<T>(data: T, options?: PublishOptions): Promise<PublishedEvent<T>>
  /** Pulls one message from the source and publishes it; `undefined` when the source gave none. */
  generate(): Promise<PublishedEvent | undefined>
  /** Counters since the plugin started. */
  stats(): PushStreamStats
}

/** The keys `publish` accepts in its options. */
const PUBLISH_OPTION_KEYS: ReadonlySet<string> = new Set<keyof PublishOptions>(['event', 'channel'])

/** Throws `FST_PUSH_STREAM_INVALID_PUBLISH_OPTIONS` unless `options` is an object with only known keys. */
function assertPublishOptions (options: unknown): asserts options is PublishOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new FST_PUSH_STREAM_INVALID_PUBLISH_OPTIONS(describe(options))
  }
  for (const key of Object.keys(options)) {
    if (!PUBLISH_OPTION_KEYS.has(key)) throw new FST_PUSH_STREAM_INVALID_PUBLISH_OPTIONS(`an object with the unknown key ${describe(key)}`)
  }
}

/** An event checked and serialized, ready to be given an id. */
interface Prepared { event: string | undefined, channel: string, text: string }

function isSourceMessage (value: unknown): value is { data: unknown, event?: string, channel?: string } {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !('data' in value)) return false
  return Object.keys(value).every((key) => key === 'data' || key === 'event' || key === 'channel')
}

/** The name of the lease that decides which instance runs the generator. */
const GENERATOR_LEASE = 'generator'

/**
 * The core: assigns ids (or has the adapter assign them), encodes each event
 * once, records it in history and hands the bytes to the hub; opens client
 * streams with their replay. Events published in the same tick are handed to
 * the hub together, so each connection gets one write for all of them.
 */
export class PushStream implements PushStreamApi {
  readonly #options: ResolvedOptions
  readonly #adapter: PushStreamAdapter | undefined
  readonly #log: AdapterLogger
  readonly #clock = new EventIdClock()
  #history: History
  readonly #hub: Hub
  readonly #generator: Generator<PublishedEvent>
  readonly #lease: LeaseKeeper | undefined
  /** Streams waiting for the adapter's replay: not yet live, but open and counted. */
  readonly #resuming = new Set<Connection>()
  /** Open streams per client address, for `maxConnectionsPerIp`. */
  readonly #perAddress = new Map<string, number>()
  /**
   * Joined replays by resume point and channels, shared by the clients of a
   * reconnect storm; kept until the next event is published or the current
   * turn of the event loop ends, whichever comes first.
   */
  readonly #replays = new Map<string, { buffer: Buffer, count: number }>()
  /**
   * Clients whose id is one this instance has not delivered yet (they came
   * from a faster instance): they go live once it has, so they never get an
   * event twice.
   */
  readonly #waiting = new Map<Connection, EventId>()
  /** The newest id taken from the adapter: anything not after it was delivered already. */
  #lastDelivered: EventId = { ms: 0, seq: 0 }
  /** Events of this tick not yet handed to the hub. */
  #pending: HistoryEntry[] = []
  #published = 0
  #replayed = 0
  #resets = 0
  #closed = false

  /** `log` is told of every failure of the generator loop (the loop goes on) and of the adapter. */
  constructor (options: ResolvedOptions, log: AdapterLogger) {
    this.#options = options
    this.#adapter = options.adapter
    this.#log = log
    this.#history = new History(options.history, this.#clock.origin)
    this.#hub = new Hub(options.heartbeat)
    const onError = (err: unknown): void => {
      log.error({ err: withoutRepeatedCause(err) }, 'fastify-push-stream: the generator could not publish a message; it goes on')
    }
    this.#lease = this.#adapter === undefined
      ? undefined
      : new LeaseKeeper(this.#adapter, GENERATOR_LEASE, (err) => {
        log.warn({ err }, 'fastify-push-stream: could not take or renew the generator lease')
      })
    const lease = this.#lease
    this.#generator = new Generator({
      source: options.source,
      interval: options.interval,
      publish: (value) => this.#publishFromSource(value),
      onError,
      mayRun: lease === undefined ? undefined : () => lease.held
    })
  }

  /** True once `close()` began: no new streams, no publishing. */
  get closing (): boolean {
    return this.#closed
  }

  /** Open streams. */
  get connections (): number {
    return this.#hub.size + this.#resuming.size
  }

  /** Open streams from one client address. */
  connectionsFrom (address: string): number {
    return this.#perAddress.get(address) ?? 0
  }

  publish<T>(data: T, options?: PublishOptions): Promise<PublishedEvent<T>> {
    // Checked before anything asynchronous, so bad input throws alike with every engine.
    const { event, channel, text } = this.#prepare(data, options)
    if (this.#adapter !== undefined) return this.#publishShared(this.#adapter, { event, channel, text }, data)
    const id = this.#clock.next()
    const idText = formatEventId(id)
    this.#published++
    this.#enqueue({ id, idText, channel, frame: encodeEvent({ id: idText, event, data: text }) })
    return Promise.resolve({ id: idText, event, channel, data })
  }

  async generate (): Promise<PublishedEvent | undefined> {
    if (this.#closed) throw new FST_PUSH_STREAM_CLOSED()
    const pulled = await this.#generator.pull()
    return pulled.done ? undefined : pulled.published
  }

  stats (): PushStreamStats {
    return {
      connections: this.connections,
      published: this.#published,
      replayed: this.#replayed,
      resets: this.#resets,
      slowDisconnects: this.#hub.slowDisconnects
    }
  }

  /**
   * Starts the adapter (its log's end becomes the history's starting point)
   * and the generator loop (a no-op when `interval` is 0 and the source is a
   * function; with an adapter, it runs only while this instance holds the lease).
   */
  async start (): Promise<void> {
    const adapter = this.#adapter
    if (adapter !== undefined) {
      const context: AdapterContext = { deliver: this.#deliver, log: this.#log }
      const end = await adapter.start(context)
      const origin = parseEventId(end)
      if (origin === null) throw new FST_PUSH_STREAM_INVALID_OPTION('adapter', `a start() that resolved with ${describe(end)}`, 'one that resolves with the id of the log\'s newest event')
      this.#history = new History(this.#options.history, origin)
      this.#lastDelivered = origin
      if (this.#generator.timed) await this.#lease?.start()
    }
    this.#generator.start()
  }

  /**
   * Opens a client's stream: headers, an opening block (the `retry:` and, for
   * a fresh client, its starting id), then the events it missed or a `reset`,
   * then live events. From history this happens in one synchronous step, so
   * no event can fall between replay and live. With an adapter, an id older
   * than the local history is asked of the adapter first, and the stream goes
   * live once that answer and the local history have been written.
   */
  open (res: RawResponse, headers: OutgoingHttpHeaders, request: StreamRequest): void {
    // A client that left while the request was in hooks or authorize: its close event has already passed.
    if (isGone(res)) return
    const { channels, lastEventId, handshake } = request
    const parsed = lastEventId === undefined ? null : parseEventId(lastEventId)
    const missed = parsed === null ? null : this.#history.since(parsed, channels)
    // Only a well-formed id older than local history is worth asking the adapter about.
    const adapter = parsed !== null && missed === null ? this.#adapter : undefined
    const connection = new Connection(res, channels, this.#options.maxBufferedBytes, this.#onConnectionClose, request.address, request.log)
    request.log.debug({ channels: [...channels], lastEventId }, 'fastify-push-stream: stream opened')
    this.#perAddress.set(request.address, this.connectionsFrom(request.address) + 1)
    // Subscribed (or held as resuming) before the first write, so a write that ends it unsubscribes it again.
    if (adapter === undefined) this.#hub.add(connection)
    else this.#resuming.add(connection)
    connection.open(headers)
    const retry = this.#options.retry
    // A fresh client learns where it starts, so a reconnect before its first event still resumes.
    const startId = lastEventId === undefined ? formatEventId(this.#history.newest) : undefined
    // Only the handshake's opening block is an event a client dispatches.
    connection.write(handshake
      ? encodeEvent({ retry, id: startId, event: OPEN_EVENT, data: JSON.stringify({ retry, heartbeat: this.#options.heartbeat }) })
      : encodeControl({ retry, id: startId }), handshake ? 1 : 0)
    if (lastEventId === undefined) return
    if (adapter === undefined) {
      this.#writeFromHistory(connection, lastEventId, missed)
      return
    }
    const until = this.#history.newest
    // There is an adapter to ask only for a well-formed id.
    const resumeAfter = parsed as EventId
    adapter.replay(lastEventId, formatEventId(until), channels).then(
      (older) => this.#finishResume(connection, older, until, resumeAfter),
      (err: unknown) => {
        this.#log.warn({ err }, 'fastify-push-stream: the adapter could not replay; the client gets a reset')
        this.#finishResume(connection, null, until, resumeAfter)
      }
    )
  }

  /** Stops the generator and ends every stream, each with a jittered `retry:` so clients do not all return at once. */
  async close (): Promise<void> {
    this.#closed = true
    this.#flush()
    const retry = this.#options.retry
    const lastFrame = (): Buffer => encodeControl({ retry: retry + Math.floor(Math.random() * Math.max(retry, 1000)) })
    this.#hub.closeAll(lastFrame)
    for (const connection of [...this.#resuming]) connection.end(lastFrame())
    this.#lease?.stop()
    await this.#generator.stop()
    await this.#adapter?.close()
  }

  /** Validates and serializes what `publish` was given; throws the named error for bad input. */
  #prepare (data: unknown, options: PublishOptions = {}): Prepared {
    if (this.#closed) throw new FST_PUSH_STREAM_CLOSED()
    assertPublishOptions(options)
    const { event } = options
    if (event !== undefined) assertEventName(event)
    const channel = options.channel ?? DEFAULT_CHANNEL
    assertChannel(channel)
    return { event, channel, text: this.#serialize(data) }
  }

  /** `publish` through an adapter: the event reaches subscribers, here too, when the adapter delivers it back. */
  async #publishShared<T> (adapter: PushStreamAdapter, { event, channel, text }: Prepared, data: T): Promise<PublishedEvent<T>> {
    let id: string
    try {
      id = await adapter.publish({ channel, event, data: text })
    } catch (error) {
      if ((error as { code?: unknown }).code === 'FST_PUSH_STREAM_ADAPTER_UNAVAILABLE') throw error
      throw new FST_PUSH_STREAM_ADAPTER_UNAVAILABLE(errorMessage(error), { cause: error })
    }
    this.#published++
    return { id, event, channel, data }
  }

  /** The adapter's `deliver`: events from the shared log, in log order, encoded once here. */
  readonly #deliver = (events: readonly AdapterEvent[]): void => {
    for (const event of events) {
      const entry = this.#entryOf(event)
      // An adapter that hands over an event twice (or one from before start) cannot make a client see it twice.
      if (entry === undefined || compareEventIds(entry.id, this.#lastDelivered) <= 0) continue
      this.#lastDelivered = entry.id
      this.#enqueue(entry)
    }
  }

  /** An event of the shared log, checked and encoded; undefined (and logged) for one this plugin could not have written. */
  #entryOf ({ id: idText, channel, event, data }: AdapterEvent): HistoryEntry | undefined {
    try {
      const id = parseEventId(idText)
      if (id === null || !isValidChannel(channel)) throw new Error(`not an event of this plugin: id ${describe(idText)}, channel ${describe(channel)}`)
      return { id, idText, channel, frame: encodeEvent({ id: idText, event, data }) }
    } catch (err) {
      // Something else wrote to the log: skipped, never sent half-checked.
      this.#log.warn({ err }, 'fastify-push-stream: skipped an entry of the shared log')
      return undefined
    }
  }

  /** Queues an event for this tick's broadcast; the first one of a tick schedules it. */
  #enqueue (entry: HistoryEntry): void {
    this.#pending.push(entry)
    // A microtask runs before any I/O: nothing waits a tick when there is nothing to join.
    if (this.#pending.length === 1) queueMicrotask(this.#flush)
  }

  /** Records this tick's events in history and writes them out, joined per connection. */
  readonly #flush = (): void => {
    const entries = this.#pending
    if (entries.length === 0) return
    this.#pending = []
    this.#forgetReplays()
    for (const entry of entries) this.#history.append(entry)
    this.#hub.broadcast(entries)
    for (const [connection, lastId] of this.#waiting) {
      if (compareEventIds(lastId, this.#history.newest) > 0) continue
      this.#waiting.delete(connection)
      this.#resuming.delete(connection)
      this.#writeFromHistory(connection, formatEventId(lastId), this.#history.since(lastId, connection.channels))
      this.#goLive(connection)
    }
  }

  /**
   * The frames a client resuming after `lastId` missed, joined once: until
   * the next event is published, every client resuming from the same id on
   * the same channels shares the buffer.
   */
  #joinedReplay (lastId: string, channels: ReadonlySet<string>, missed: readonly HistoryEntry[]): { buffer: Buffer, count: number } {
    const key = `${lastId} ${groupKey(channels)}`
    let replay = this.#replays.get(key)
    if (replay === undefined) {
      replay = { buffer: Buffer.concat(missed.map((entry) => entry.frame)), count: missed.length }
      if (this.#replays.size === 0) setImmediate(this.#forgetReplays)
      this.#replays.set(key, replay)
    }
    return replay
  }

  readonly #forgetReplays = (): void => {
    this.#replays.clear()
  }

  /** Writes the events history holds after `lastId` (found by `since`), or a `reset` when it holds no answer. */
  #writeFromHistory (connection: Connection, lastId: string, missed: readonly HistoryEntry[] | null): void {
    this.#writeMissed(connection, missed === null ? null : this.#joinedReplay(lastId, connection.channels, missed))
  }

  /** Subscribes a connection that was resuming, unless writing its replay ended it. */
  #goLive (connection: Connection): void {
    if (!connection.closed) this.#hub.add(connection)
  }

  /** Writes what a resuming client missed, or a `reset` when that is unknown. */
  #writeMissed (connection: Connection, missed: { buffer: Buffer, count: number } | null): void {
    if (missed === null) {
      this.#resets++
      connection.write(encodeEvent({ id: formatEventId(this.#history.newest), event: RESET_EVENT, data: RESET_DATA }))
      return
    }
    connection.writeReplay(missed.buffer, missed.count)
    this.#replayed += missed.count
  }

  /**
   * The adapter answered for a client that local history could not serve:
   * its answer, then what history holds since `until`; then live. A client
   * ahead of this instance waits until this instance has caught up with it.
   */
  #finishResume (connection: Connection, older: AdapterEvent[] | null, until: EventId, lastId: EventId): void {
    // Closed (by the client or by close()) while the adapter was asked.
    if (!this.#resuming.has(connection)) return
    if (older !== null && compareEventIds(lastId, this.#history.newest) > 0) {
      this.#waiting.set(connection, lastId)
      return
    }
    this.#resuming.delete(connection)
    const newer = older === null ? null : this.#history.since(until, connection.channels)
    if (older === null || newer === null) {
      this.#writeMissed(connection, null)
    } else {
      const frames: Buffer[] = []
      for (const event of older) {
        const entry = this.#entryOf(event)
        if (entry !== undefined) frames.push(entry.frame)
      }
      for (const entry of newer) frames.push(entry.frame)
      this.#writeMissed(connection, { buffer: Buffer.concat(frames), count: frames.length })
    }
    this.#goLive(connection)
  }

  readonly #onConnectionClose = (connection: Connection, reason: CloseReason): void => {
    const left = this.connectionsFrom(connection.address) - 1
    if (left > 0) this.#perAddress.set(connection.address, left)
    else this.#perAddress.delete(connection.address)
    this.#resuming.delete(connection)
    this.#waiting.delete(connection)
    this.#hub.remove(connection, reason)
    connection.log.debug({
      reason: END_REASONS[reason],
      durationMs: Date.now() - connection.openedAt,
      bytes: connection.bytesWritten,
      events: connection.eventsWritten
    }, 'fastify-push-stream: stream ended')
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

  #publishFromSource (value: unknown): Promise<PublishedEvent> {
    if (!isSourceMessage(value)) return this.publish(value)
    return this.publish(value.data, { event: value.event, channel: value.channel })
  }
}

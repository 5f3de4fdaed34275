import type { OutgoingHttpHeaders } from 'node:http'
import type { AdapterLogger, LogGap } from './adapter.js'
import { isGone, type RawResponse, type StreamLog, type StreamOrigin } from './connection.js'
import { diagnostics } from './diagnostics.js'
import { createEngine, type Engine, type EngineLag } from './engine/engine.js'
import { FST_PUSH_STREAM_CLOSED, FST_PUSH_STREAM_INVALID_STREAM_OPTIONS, FST_PUSH_STREAM_TOO_MANY_CHANNELS, describe } from './errors.js'
import type { HistoryEntry } from './history.js'
import { Hub, resetFrame } from './hub.js'
import { withoutRepeatedCause } from './log.js'
import { prepareMessage, sourceMessage, type PublishOptions } from './message.js'
import type { ResolvedOptions } from './options.js'
import { Presence } from './presence.js'
import { Resume } from './resume.js'
import { SourceLoop } from './source-loop.js'
import { SourceStream, type StreamSource } from './source-stream.js'
import { RELEASE_GRACE_MS, SourceStreams } from './source-streams.js'
import { ResumableStreams } from './resumable/streams.js'
import { MemoryRecordings } from './resumable/store.js'
import { Subscription, type SubscribeOptions, type SubscriptionReader } from './subscription.js'
import { integer } from './validate.js'
import { encodeControl, encodeEvent } from './wire/encoder.js'
import { formatEventId, type EventId } from './wire/event-id.js'
import { OPEN_EVENT, assertChannel, assertKey } from './wire/protocol.js'
import type { FastifyRequest } from 'fastify'

export type { PublishOptions } from './message.js'

/** The channels of a per-request stream: none, it gets no broadcast. */
const NO_CHANNELS: ReadonlySet<string> = new Set()

/** What a stream request asks for. */
export interface StreamRequest {
  /** The channels to subscribe to. */
  channels: ReadonlySet<string>
  /** The id to resume after, as the client sent it; undefined for a fresh client. */
  lastEventId: string | undefined
  /** The client's address (`request.ip`). */
  address: string
  /** The request's logger (`request.log`, which carries its id): the stream's open and end are logged there at `debug`. */
  log: StreamLog
  /** The request's id and URL, for the diagnostics messages. */
  origin?: StreamOrigin
}

/** What a per-request stream is opened with, besides its source. */
export interface SourceRequest {
  request: FastifyRequest
  lastEventId: string | undefined
  handshake: boolean
  stallTimeout: number
  /** For a source of encoded frames (a resumable stream's follower): its last frame, from what it returned. */
  lastFrame?: ((returned: unknown) => Buffer) | undefined
}

/** A subscription's reader falls this many events behind before it ends with an error, unless `maxQueued` says otherwise. */
export const DEFAULT_MAX_QUEUED = 1000

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
  /** Per-request streams (`reply.sse(source)`) open now; `connections` counts them too. */
  streams: number
  /** Resumable streams (`reply.sse(source, { key })`) whose producer runs on this instance. */
  resumable: number
  /** Bytes written to every stream, the headers aside. */
  bytesWritten: number
  /**
   * With an adapter that can tell (Redis): how far this instance's reading is
   * behind the shared log, as of its last read: the newest id delivered here,
   * the log's newest, the entries between and their distance in milliseconds.
   */
  lag?: EngineLag
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
  /**
   * Follows `channels` (one name or a list, at most `maxChannels`, each
   * checked: a named error otherwise). Give the subscription to `reply.sse`
   * to stream those channels on a route of your own, with the built-in
   * route's replay and limits; or read it as an async iterable of the events
   * published on them from then on.
   */
  subscribe(channels: string | readonly string[], options?: SubscribeOptions): Subscription
  /**
   * Stops the producer of the resumable stream `key` (its signal aborts with
   * `FST_PUSH_STREAM_CANCELLED`), and every follower gets `push-stream:end`
   * with `{"reason":"cancelled"}`. A client that leaves cancels nothing: this
   * does, on whichever instance the producer runs (through the adapter's
   * engine). Resolves true when a producer was running. A bad key throws
   * `FST_PUSH_STREAM_INVALID_KEY` at once.
   */
  cancel(key: string): Promise<boolean>
  /**
   * Presence: the streams subscribed to `channel` now (the route's and
   * `reply.sse(subscription)`'s), kept as a count as streams subscribe and
   * end. On this instance, as a number; with an adapter that keeps presence
   * (Redis), a promise of the count across every instance (each reports its
   * own every second; one that stops drops out within three), rejecting with
   * `FST_PUSH_STREAM_ADAPTER_UNAVAILABLE` when it cannot be asked. A bad
   * channel name throws `FST_PUSH_STREAM_INVALID_CHANNEL`.
   */
  subscribers(channel: string): number | Promise<number>
}

/**
 * What `fastify.pushStream` stands on: checks each published message, has the
 * engine give it an id, and writes each tick's events out together (each
 * connection gets one write for all of them); opens client streams, with
 * their replay; runs the message source; closes everything.
 */
export class Broker implements PushStreamApi {
  readonly #options: ResolvedOptions
  readonly #engine: Engine
  readonly #hub: Hub
  readonly #resume: Resume
  readonly #presence: Presence
  readonly #loop: SourceLoop<PublishedEvent>
  readonly #streams = new SourceStreams()
  /** Resumable streams by key. */
  readonly resumable: ResumableStreams
  readonly #readers = new Set<SubscriptionReader>()
  readonly #log: AdapterLogger
  /** Events published but not yet written out. */
  #pending: HistoryEntry[] = []
  /** The scheduled write of `#pending` when `flushDelay` is set. */
  #flushTimer: NodeJS.Timeout | undefined
  /** Settled when `#pending` has been written, for the publishes that wait for it. */
  #written: Promise<void> | undefined
  #onWritten: (() => void) | undefined
  #closed = false

  /** `log` is told of every failure of the source loop (the loop goes on) and of the engine. */
  constructor (options: ResolvedOptions, log: AdapterLogger) {
    this.#options = options
    this.#log = log
    const recordings = options.adapter?.recordings
    this.resumable = recordings === undefined
      ? new ResumableStreams(options.resumable, options.serialize, new MemoryRecordings(options.resumable.ttl))
      : new ResumableStreams(options.resumable, options.serialize, recordings.store(options.resumable), recordings.renewEvery)
    this.#hub = new Hub({
      heartbeatMs: options.heartbeat,
      maxBufferedBytes: options.maxBufferedBytes,
      onEnd: (connection, reason) => {
        this.#resume.forget(connection)
        this.#streams.ended(connection, reason)
      }
    })
    this.#engine = createEngine(options, { deliver: this.#enqueue, lost: this.#lost }, log)
    this.#resume = new Resume(this.#hub, this.#engine)
    this.#presence = new Presence(this.#hub, options.adapter?.presence, log)
    const engine = this.#engine
    this.#loop = new SourceLoop({
      source: options.source,
      interval: options.interval,
      publish: (value) => {
        const { data, options } = sourceMessage(value)
        return this.#publish(data, options, this.#loop.timed)
      },
      onError: (err) => {
        if ((err as { code?: unknown }).code === 'FST_PUSH_STREAM_LEASE_LOST') {
          log.warn({ err }, 'fastify-push-stream: the generator\'s lease is no longer this instance\'s; it stops generating until it holds the lease again')
          return
        }
        log.error({ err: withoutRepeatedCause(err) }, 'fastify-push-stream: the generator could not publish a message; it goes on')
      },
      mayRun: () => engine.mayGenerate
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

  /** Open streams from one client address. */
  connectionsFrom (address: string): number {
    return this.#hub.connectionsFrom(address)
  }

  publish<T>(data: T, options?: PublishOptions): Promise<PublishedEvent<T>> {
    return this.#publish(data, options, false)
  }

  /** `publish`; a `generated` message (the timed source loop's) is stored only while this instance holds the generator's lease. */
  #publish<T>(data: T, options: PublishOptions | undefined, generated: boolean): Promise<PublishedEvent<T>> {
    if (this.#closed) throw new FST_PUSH_STREAM_CLOSED()
    // Checked before anything asynchronous, so bad input throws alike with every engine.
    const message = prepareMessage(data, options, this.#options.serialize)
    const queued = this.#pending.length
    const appended = this.#engine.append(message, generated)
    // An engine that delivers as it appends (the in-memory one) queued the event just now: its
    // promise resolves once the batch is written, so an awaited publish has gone out to this instance's streams.
    const written = this.#pending.length > queued ? this.#batchWritten() : undefined
    return appended.then((id) => {
      const published = { id, event: message.event, channel: message.channel, data }
      return written === undefined ? published : written.then(() => published)
    })
  }

  /** A promise of the pending batch's write, made when a publish first waits for it. */
  #batchWritten (): Promise<void> {
    this.#written ??= new Promise((resolve) => { this.#onWritten = resolve })
    return this.#written
  }

  async generate (): Promise<PublishedEvent | undefined> {
    if (this.#closed) throw new FST_PUSH_STREAM_CLOSED()
    const pulled = await this.#loop.pull()
    return pulled.done ? undefined : pulled.published
  }

  stats (): PushStreamStats {
    return {
      connections: this.#hub.size,
      published: this.#engine.published,
      replayed: this.#hub.replayed,
      resets: this.#hub.resets,
      slowDisconnects: this.#hub.slowDisconnects,
      streams: this.#streams.size,
      resumable: this.resumable.size,
      bytesWritten: this.#hub.bytesWritten,
      ...lagOf(this.#engine)
    }
  }

  subscribe (channels: string | readonly string[], options: SubscribeOptions = {}): Subscription {
    if (this.#closed) throw new FST_PUSH_STREAM_CLOSED()
    const names = typeof channels === 'string' ? [channels] : channels
    if (!Array.isArray(names) || names.length === 0) {
      throw new FST_PUSH_STREAM_INVALID_STREAM_OPTIONS('channels', describe(channels), 'a channel name or a non-empty array of them')
    }
    if (names.length > this.#options.maxChannels) throw new FST_PUSH_STREAM_TOO_MANY_CHANNELS(names.length, this.#options.maxChannels)
    for (const name of names) assertChannel(name)
    if (typeof options !== 'object' || options === null) {
      throw new FST_PUSH_STREAM_INVALID_STREAM_OPTIONS('options', describe(options), 'an object such as { maxQueued }')
    }
    for (const key of Object.keys(options)) {
      if (key !== 'maxQueued') throw new FST_PUSH_STREAM_INVALID_STREAM_OPTIONS(key, 'an unknown option', 'maxQueued')
    }
    const maxQueued = options.maxQueued === undefined
      ? DEFAULT_MAX_QUEUED
      : integer('maxQueued', options.maxQueued, 1, 10_000_000, FST_PUSH_STREAM_INVALID_STREAM_OPTIONS)
    return new Subscription(new Set(names), maxQueued, (reader) => {
      this.#readers.add(reader)
      return () => { this.#readers.delete(reader) }
    })
  }

  subscribers (channel: string): number | Promise<number> {
    assertChannel(channel)
    return this.#presence.count(channel)
  }

  cancel (key: string): Promise<boolean> {
    assertKey(key)
    return this.resumable.cancel(key)
  }

  /**
   * Opens one request's own stream on `res`: the opening block, then what
   * `source` yields as the client takes it, then how it ended.
   */
  stream (res: RawResponse, headers: OutgoingHttpHeaders, source: StreamSource, request: SourceRequest): void {
    if (isGone(res)) return
    const log = request.request.log
    const origin = { id: request.request.id, url: request.request.url }
    const connection = this.#hub.open(res, headers, { channels: NO_CHANNELS, address: request.request.ip, log, paced: true, origin })
    log.debug({ lastEventId: request.lastEventId }, 'fastify-push-stream: stream opened')
    if (diagnostics.open.hasSubscribers) {
      diagnostics.open.publish({ requestId: origin.id, kind: 'source', channels: [], url: origin.url, resumed: request.lastEventId !== undefined, replayed: 0 })
    }
    const { retry, heartbeat, maxBufferedBytes, serialize } = this.#options
    if (request.handshake) this.#hub.write(connection, encodeEvent({ retry, event: OPEN_EVENT, data: JSON.stringify({ retry, heartbeat }) }), 1)
    else this.#hub.write(connection, encodeControl({ retry }), 0)
    const stream = new SourceStream(connection, {
      request: request.request,
      lastEventId: request.lastEventId,
      serialize,
      maxBufferedBytes,
      stallTimeout: request.stallTimeout,
      lastFrame: request.lastFrame
    })
    this.#streams.add(stream)
    stream.start(source)
  }

  /** Starts the engine and the source loop (a no-op when `interval` is 0 and the source is a function). */
  async start (): Promise<void> {
    await this.#engine.start(this.#loop.timed)
    this.#presence.start()
    this.#loop.start()
  }

  /**
   * Opens a client's stream: headers, an opening block (the `retry:` and, for
   * a fresh client, its starting id), then, for a client that resumes, the
   * events it missed or a `reset`; then live events.
   */
  open (res: RawResponse, headers: OutgoingHttpHeaders, request: StreamRequest): void {
    // A client that left while the request was in hooks or authorize: its close event has already passed.
    if (isGone(res)) return
    const { lastEventId } = request
    const connection = this.#hub.open(res, headers, request)
    request.log.debug({ channels: [...request.channels], lastEventId }, 'fastify-push-stream: stream opened')
    const { retry, heartbeat } = this.#options
    // A fresh client learns where it starts, so a reconnect before its first event still resumes.
    const startId = lastEventId === undefined ? formatEventId(this.#engine.history.newest) : undefined
    // The opening block is an event with data for every client: some (the `eventsource` package,
    // `eventsource-client`) record no id from a block without data. Named, it reaches no `onmessage`.
    this.#hub.write(connection, encodeEvent({ retry, id: startId, event: OPEN_EVENT, data: JSON.stringify({ retry, heartbeat }) }), 1)
    if (lastEventId === undefined) this.#hub.subscribe(connection)
    else this.#resume.start(connection, lastEventId)
  }

  /** Stops the source loop and ends every stream, each with a jittered `retry:` so clients do not all return at once. */
  async close (): Promise<void> {
    this.#closed = true
    this.#flush()
    const retry = this.#options.retry
    this.#hub.closeAll(() => encodeControl({ retry: retry + Math.floor(Math.random() * Math.max(retry, 1000)) }))
    for (const reader of [...this.#readers]) reader.end()
    const [followed, produced] = await Promise.all([this.#streams.close(), this.resumable.close(RELEASE_GRACE_MS), this.#loop.stop()])
    const unreleased = followed + produced
    if (unreleased > 0) {
      this.#log.warn({ sources: unreleased }, 'fastify-push-stream: some stream sources did not finish after their signal aborted; closing without them')
    }
    await this.#presence.close()
    await this.#engine.close()
  }

  /**
   * The engine's `deliver`: queues an event; the first one of a batch
   * schedules the write. At the end of this turn of the event loop by default,
   * so that events arriving in separate callbacks of one turn (messages read
   * in one poll, timers due together) share one write per connection; after
   * `flushDelay` ms when set.
   */
  readonly #enqueue = (entry: HistoryEntry): void => {
    this.#pending.push(entry)
    if (this.#pending.length > 1) return
    const delay = this.#options.flushDelay
    if (delay === 0) setImmediate(this.#flush)
    else this.#flushTimer = setTimeout(this.#flush, delay).unref()
  }

  /**
   * The engine's `lost`: events after the last one delivered are gone from
   * the log. What was read before the gap goes out first; then history starts
   * again at the gap's head, and every client, live or about to be, gets a
   * `reset` there, so none of them misses events silently.
   */
  readonly #lost = (head: EventId, gap: LogGap): void => {
    this.#flush()
    this.#engine.history.restart(head)
    const reset = resetFrame(formatEventId(head), 'events-lost')
    const clients = this.#hub.resetLive(reset) + this.#resume.lost(reset)
    this.#log.warn({ ...gap, clients }, gap.reason === 'trimmed'
      ? 'fastify-push-stream: events were trimmed from the shared log before this instance read them; its clients get a reset'
      : 'fastify-push-stream: the shared log lost events this instance had not read (its data was flushed, lost in a restart or restored from an older copy); its clients get a reset')
  }

  /** Records the batch's events in history and writes them out, joined per connection; then resumes whom they catch up with. */
  readonly #flush = (): void => {
    const entries = this.#pending
    if (entries.length === 0) return
    // Written early (a close, a gap): the delay's timer has nothing left to write.
    clearTimeout(this.#flushTimer)
    this.#pending = []
    const onWritten = this.#onWritten
    this.#written = undefined
    this.#onWritten = undefined
    const history = this.#engine.history
    for (const entry of entries) history.append(entry)
    this.#hub.broadcast(entries)
    if (diagnostics.publish.hasSubscribers) {
      for (const { idText, channel, event, frame } of entries) {
        diagnostics.publish.publish({ id: idText, channel, event, bytes: frame.length, subscribers: this.#hub.subscribers(channel) })
      }
    }
    for (const reader of this.#readers) reader.deliver(entries)
    this.#resume.afterTick()
    onWritten?.()
  }
}

/** The engine's lag as a field of `stats()`, absent when it cannot tell. */
function lagOf (engine: Engine): { lag?: EngineLag } {
  const lag = engine.lag
  return lag === undefined ? {} : { lag }
}

/**
 * The engine that carries events between instances of an app. Without one
 * (the default), events live in this process only: ids come from a local
 * clock and replay comes from the in-memory history. With one, every
 * instance appends to a shared log and tails it, so a client may connect to
 * any instance, and reconnect to another, and miss nothing.
 *
 * An adapter is one object with the five methods below (and, optionally, a
 * recorder of resumable streams); `lib/redis/` is
 * the one this package ships. Another engine (NATS JetStream, Kafka…) fits
 * the same shape.
 */
import type { RecordingStore } from './resumable/store.js'

/** An event as the shared log holds it: the id the log gave it and what the plugin needs to encode it. */
export interface AdapterEvent {
  /** The log's id for the event, in the form `<ms>-<seq>`, increasing in log order. */
  id: string
  channel: string
  /** The SSE event name, or undefined for the client's `message` event. */
  event: string | undefined
  /** The `data:` text, already serialized. */
  data: string
}

/** What the plugin asks an adapter to append. */
export type AdapterMessage = Omit<AdapterEvent, 'id'>

/** How an append is shaped beyond its message. */
export interface PublishFence {
  /**
   * Append only while this instance holds the lease of this name (as `lease`
   * took it), decided by the engine in the same step as the append; otherwise
   * append nothing and reject with `FST_PUSH_STREAM_LEASE_LOST`. The plugin
   * fences what its generator publishes with the generator's lease.
   */
  lease?: string
  /**
   * Store the message once per key within `idempotencyWindow` ms: a publish
   * with a key already used resolves with the id the first one got and
   * appends nothing, decided by the engine in the same step as the append.
   */
  idempotencyKey?: string
  /** How long, in milliseconds, an `idempotencyKey` is remembered (given with it). */
  idempotencyWindow?: number
}

/** The logger an adapter reports through (Fastify's). */
export interface AdapterLogger {
  info: (obj: object, msg: string) => void
  warn: (obj: object, msg: string) => void
  error: (obj: object, msg: string) => void
}

/**
 * Events that left the log before this instance read them: the entries
 * after `after` up to and including `head` are gone, and reading goes on
 * after `head`.
 */
export interface LogGap {
  /** The id of the last event this instance was handed before the gap. */
  after: string
  /** The newest id the gap covers: the next events handed over are the log's events after it (it may be older than `after` when the log went back). */
  head: string
  /** `trimmed`: the log dropped them to stay within its length; `lost`: the engine lost its data (restarted without it, flushed, restored from an older copy). */
  reason: 'trimmed' | 'lost'
}

/** What the plugin gives an adapter when it starts it. */
export interface AdapterContext {
  /**
   * Hands events read from the log to this instance's subscribers. Called
   * with each event exactly once, in log order, including the ones this
   * instance published itself.
   */
  deliver: (events: readonly AdapterEvent[]) => void
  /**
   * Says that events this instance never handed over are gone from the log:
   * its live clients get a `reset` at `gap.head`, its history starts again
   * there, and `deliver` goes on with the events after it. An adapter that
   * cannot tell never calls it.
   */
  lost: (gap: LogGap) => void
  log: AdapterLogger
}

/** The interface a cross-instance engine implements. */
export interface PushStreamAdapter {
  /**
   * Connects and starts tailing the log after its current end. Resolves with
   * the id of the newest event already in the log (`'0-0'` when it is empty):
   * a fresh client is told that id as its starting point.
   */
  start: (context: AdapterContext) => Promise<string>
  /**
   * Appends one event to the log and resolves with its id once it is stored.
   * The event reaches subscribers (on every instance, this one included)
   * through `deliver`, not through this call. Rejects with
   * `FST_PUSH_STREAM_ADAPTER_UNAVAILABLE` when the message was not sent (the
   * engine cannot be reached), and with `FST_PUSH_STREAM_PUBLISH_UNCONFIRMED`
   * when it was sent and not answered in time (it may have been stored).
   */
  publish: (message: AdapterMessage, fence?: PublishFence) => Promise<string>
  /**
   * The events after `lastId` up to and including `until`, oldest first, on
   * `channels` only; `null` when `lastId` is not an id the log can answer
   * for (never issued, or already trimmed), so the client gets a `reset`.
   * A rejection (`FST_PUSH_STREAM_ADAPTER_UNAVAILABLE`) is logged, and the
   * client gets a `reset` too.
   */
  replay: (lastId: string, until: string, channels: ReadonlySet<string>) => Promise<AdapterEvent[] | null>
  /**
   * Takes or renews the lease called `name` for `ttlMs` milliseconds. True
   * while this instance holds it; only the holder runs the generator. An
   * engine that cannot be asked answers false rather than rejecting.
   */
  lease: (name: string, ttlMs: number) => Promise<boolean>
  /** Gives up held leases and closes the connections the adapter itself opened. */
  close: () => Promise<void>
  /**
   * Optional: records resumable streams (`reply.sse(source, { key })`) in
   * the engine, so that any instance can follow them. Without it, they are
   * recorded in the memory of the instance that runs their producer.
   */
  recordings?: AdapterRecordings
  /** Optional: how far this instance's reading is behind the log, as last seen. */
  lag?: () => AdapterLag | undefined
  /**
   * Optional: presence across instances, so that `subscribers(channel)`
   * counts every instance's streams. Without it, it counts this instance's.
   */
  presence?: AdapterPresence
}

/** How far an instance's reading is behind the log. */
export interface AdapterLag {
  /** The newest id in the log when last seen. */
  newestId: string
  /** Entries of the log not yet read. */
  behind: number
}

/**
 * An adapter's presence counts: each instance reports its own (channel to
 * subscribed streams, no client's identity) every `reportEvery` ms, and an
 * instance that stops reporting drops out within a few of them.
 */
export interface AdapterPresence {
  /** How often, in milliseconds, the plugin reports this instance's counts. */
  readonly reportEvery: number
  /** Replaces this instance's counts with `counts` (the channels with streams). */
  report: (counts: ReadonlyMap<string, number>) => Promise<void>
  /** The streams on `channel` across every instance still reporting. */
  count: (channel: string) => Promise<number>
  /** Takes this instance's counts out at once; called at close, before `close()`. */
  leave: () => Promise<void>
}

/** An adapter's recorder of resumable streams. */
export interface AdapterRecordings {
  /** How often a producer renews its claim on its key, in milliseconds; a claim not renewed lapses, and followers learn the producer is lost. */
  readonly renewEvery: number
  /** The store, made once the plugin knows the limits (`ttl`, `maxDuration`); used after `start`. */
  store: (limits: { ttl: number, maxDuration: number }) => RecordingStore
}

/**
 * The plugin's `node:diagnostics_channel` channels: what a team wires into
 * its tracing and metrics without the plugin knowing about either. A message
 * is built only when its channel has a subscriber, so a channel nobody
 * listens to costs one property read.
 */
import diagnosticsChannel from 'node:diagnostics_channel'

/** A stream went live: after its replay or `reset` for a client that resumed; at once for a fresh one. */
export interface StreamOpenMessage {
  /** Fastify's `request.id`. */
  requestId: string
  /** `broadcast`: the route or `reply.sse(subscription)`; `source`: `reply.sse(source)`. */
  kind: 'broadcast' | 'source'
  /** The channels of a broadcast stream; empty for a source. */
  channels: string[]
  /** The request's URL (the route of a per-request stream). */
  url: string
  /** True when the client came with a `Last-Event-ID`. */
  resumed: boolean
  /** Events replayed to it (0 when fresh, reset, or a source). */
  replayed: number
}

/** Why a stream ended, as its end log line says it. */
export type StreamEndReason = 'client-closed' | 'write-failed' | 'too-slow' | 'stalled' | 'server-closing' | 'done' | 'source-failed'

/** A stream ended. */
export interface StreamEndMessage {
  requestId: string
  reason: StreamEndReason
  durationMs: number
  /** Bytes written after the headers. */
  bytes: number
  /** Events written (live and replayed, `reset` and the opening event; no heartbeats). */
  events: number
}

/** An event went out to this instance's subscribers (with an adapter, whichever instance published it). */
export interface EventPublishMessage {
  id: string
  channel: string
  /** The event name; undefined for `message`. */
  event: string | undefined
  /** The encoded frame's size. */
  bytes: number
  /** Streams on this instance it was written to. */
  subscribers: number
}

/** A `reset` event was written. */
export interface ResetMessage {
  requestId: string
  /** `unknown-last-event-id` (a resume history could not answer) or `events-lost` (a gap in the shared log). */
  reason: 'unknown-last-event-id' | 'events-lost'
  /** The id the reset carries; undefined for a resumable stream's, which carries none (its key is unknown). */
  id: string | undefined
}

/** A client was cut off for falling more than `maxBufferedBytes` behind. */
export interface SlowClientMessage {
  requestId: string
  /** Bytes that were waiting for it. */
  bufferedBytes: number
  maxBufferedBytes: number
}

/** The adapter lost its connection to its engine (Redis). */
export interface AdapterOutageMessage {
  /** The stream's key. */
  key: string
  /** Which connection dropped first. */
  connection: string
  /** The error's code, or `CONNECTION_CLOSED` when the engine closed it. */
  code: string
  cause: string
}

/** The adapter is connected again. */
export interface AdapterRecoveryMessage {
  key: string
  /** How long the outage lasted. */
  outageMs: number
}

/** A channel whose messages have the type `T`. */
export interface TypedChannel<T> extends diagnosticsChannel.Channel {
  publish: (message: T) => void
}

const channel = <T>(name: string): TypedChannel<T> => diagnosticsChannel.channel(name) as TypedChannel<T>

/** The channels, by what they tell; their names are `fastify-push-stream:<name>`. */
export const diagnostics = Object.freeze({
  open: channel<StreamOpenMessage>('fastify-push-stream:open'),
  end: channel<StreamEndMessage>('fastify-push-stream:end'),
  publish: channel<EventPublishMessage>('fastify-push-stream:publish'),
  reset: channel<ResetMessage>('fastify-push-stream:reset'),
  slow: channel<SlowClientMessage>('fastify-push-stream:slow'),
  adapterOutage: channel<AdapterOutageMessage>('fastify-push-stream:adapter-outage'),
  adapterRecovery: channel<AdapterRecoveryMessage>('fastify-push-stream:adapter-recovery')
})

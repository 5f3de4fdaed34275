import createError from '@fastify/error'
import type { FastifyError } from 'fastify'

/**
 * Every error the plugin throws, returns or logs. Each is a named constructor
 * with a stable `code`, so callers can test `err.code` or `instanceof`.
 */

/** An error made by one of the constructors below: a `FastifyError` with a fixed `code` and `statusCode`. */
export type PushStreamError<C extends string, S extends number> = FastifyError & { code: C, statusCode: S }

/**
 * The type of every error constructor of the plugin, callable with or without
 * `new`. Declared here rather than taken from `@fastify/error`, whose
 * namespace-style types do not resolve under every `moduleResolution`.
 */
export interface PushStreamErrorConstructor<C extends string, S extends number> {
  new (...args: unknown[]): PushStreamError<C, S>
  (...args: unknown[]): PushStreamError<C, S>
  readonly prototype: PushStreamError<C, S>
}

function define<C extends string, S extends number> (code: C, message: string, statusCode: S, Base?: ErrorConstructor): PushStreamErrorConstructor<C, S> {
  return createError(code, message, statusCode, Base)
}

/** A plugin option has a value outside what is allowed. Thrown by `register`. */
export const FST_PUSH_STREAM_INVALID_OPTION = define(
  'FST_PUSH_STREAM_INVALID_OPTION',
  'Invalid option "%s": got %s, expected %s',
  500,
  TypeError
)

/**
 * The plugin was registered again in an encapsulation context that already
 * has it, itself or through a parent (children inherit the decorator).
 * Sibling contexts may each register their own.
 */
export const FST_PUSH_STREAM_ALREADY_REGISTERED = define(
  'FST_PUSH_STREAM_ALREADY_REGISTERED',
  'fastify-push-stream is already registered in this encapsulation context or in one of its parents, ' +
    'whose "pushStream" decorator this context inherits: register it once per context, in sibling contexts for separate streams',
  500
)

/** An `event` name is not a non-empty string free of CR, LF and NUL. */
export const FST_PUSH_STREAM_INVALID_EVENT_NAME = define(
  'FST_PUSH_STREAM_INVALID_EVENT_NAME',
  'Invalid event name %s: it must be a non-empty string without CR, LF or NUL',
  500,
  TypeError
)

/** An `id` or `retry` field given to the encoder would not survive the trip: a multi-line or NUL id, a retry that is not a whole number of milliseconds. */
export const FST_PUSH_STREAM_INVALID_FIELD = define(
  'FST_PUSH_STREAM_INVALID_FIELD',
  'Invalid "%s" field %s: expected %s',
  500,
  TypeError
)

/** A channel name is outside the safe set: 1 to 64 of `A-Z a-z 0-9 _ - . :`. */
export const FST_PUSH_STREAM_INVALID_CHANNEL = define(
  'FST_PUSH_STREAM_INVALID_CHANNEL',
  'Invalid channel %s: a channel is 1 to 64 characters from A-Z a-z 0-9 _ - . :',
  400,
  TypeError
)

/** A request asked for more channels than `maxChannels`. */
export const FST_PUSH_STREAM_TOO_MANY_CHANNELS = define(
  'FST_PUSH_STREAM_TOO_MANY_CHANNELS',
  'Too many channels: %s requested, at most %s allowed',
  400
)

/** The `serialize` function threw, or did not return a string. Nothing was sent. */
export const FST_PUSH_STREAM_SERIALIZE_FAILED = define(
  'FST_PUSH_STREAM_SERIALIZE_FAILED',
  'Could not serialize the event data: %s',
  500
)

/** `publish` or `generate` was called after the plugin closed. */
export const FST_PUSH_STREAM_CLOSED = define(
  'FST_PUSH_STREAM_CLOSED',
  'The push stream is closed',
  503
)

/**
 * A source threw, rejected or yielded an item that cannot be sent. For the
 * `source` option: logged, and the generator goes on. For `reply.sse`: logged
 * with the request's id, and the stream ends with a `push-stream:error` event
 * that carries this code only.
 */
export const FST_PUSH_STREAM_SOURCE_FAILED = define(
  'FST_PUSH_STREAM_SOURCE_FAILED',
  'The message source failed: %s',
  500
)

/** The `authorize` option threw or rejected; the request is answered 500. */
export const FST_PUSH_STREAM_AUTHORIZE_FAILED = define(
  'FST_PUSH_STREAM_AUTHORIZE_FAILED',
  'The authorize function failed: %s',
  500
)

/** `authorize` returned false: the request is answered 403. */
export const FST_PUSH_STREAM_FORBIDDEN = define(
  'FST_PUSH_STREAM_FORBIDDEN',
  'Not allowed to subscribe to these channels',
  403
)

/** `maxConnections` streams are open: the request is answered 503 with Retry-After. */
export const FST_PUSH_STREAM_TOO_MANY_CONNECTIONS = define(
  'FST_PUSH_STREAM_TOO_MANY_CONNECTIONS',
  'Too many open streams (maxConnections is %s)',
  503
)

/** The server is closing: new streams are answered 503 with Retry-After. */
export const FST_PUSH_STREAM_SHUTTING_DOWN = define(
  'FST_PUSH_STREAM_SHUTTING_DOWN',
  'The server is shutting down',
  503
)

/** More streams from one client address than `maxConnectionsPerIp`: the request is answered 503 with Retry-After. */
export const FST_PUSH_STREAM_TOO_MANY_CONNECTIONS_PER_IP = define(
  'FST_PUSH_STREAM_TOO_MANY_CONNECTIONS_PER_IP',
  'Too many open streams from this address (maxConnectionsPerIp is %s)',
  503
)

/** The adapter's engine (Redis) cannot be reached: nothing was published, or the adapter could not start. */
export const FST_PUSH_STREAM_ADAPTER_UNAVAILABLE = define(
  'FST_PUSH_STREAM_ADAPTER_UNAVAILABLE',
  'The adapter\'s engine cannot be reached: %s',
  503
)

/** `client: true` was given but the built browser client was not found (the package was not built). */
export const FST_PUSH_STREAM_CLIENT_MISSING = define(
  'FST_PUSH_STREAM_CLIENT_MISSING',
  'The browser client is not built: none of %s exists (run `npm run build`)',
  500
)

/** The options argument of `publish` is not an object (for example an event name given as a string). */
export const FST_PUSH_STREAM_INVALID_PUBLISH_OPTIONS = define(
  'FST_PUSH_STREAM_INVALID_PUBLISH_OPTIONS',
  'Invalid publish options: got %s, expected an object such as { event, channel }',
  500,
  TypeError
)

/** The `signal.reason` of a `reply.sse` source whose client left: the socket closed or was reset, the HTTP/2 stream was reset, the request was aborted. */
export const FST_PUSH_STREAM_CLIENT_CLOSED = define(
  'FST_PUSH_STREAM_CLIENT_CLOSED',
  'The client closed the stream',
  499
)

/**
 * The `signal.reason` of a `reply.sse` source whose connection failed under
 * it, other than by the client leaving (`cause`: the socket's or stream's
 * error, such as ETIMEDOUT or a TLS error).
 */
export const FST_PUSH_STREAM_WRITE_FAILED = define(
  'FST_PUSH_STREAM_WRITE_FAILED',
  'The stream\'s connection failed: %s',
  500
)

/** The `signal.reason` of a `reply.sse` source whose client took no byte of what was waiting for `stallTimeout` ms. */
export const FST_PUSH_STREAM_STALLED = define(
  'FST_PUSH_STREAM_STALLED',
  'The client took nothing of the stream for %s ms (stallTimeout)',
  408
)

/** The `signal.reason` of a `reply.sse` source whose stream was ended because the server is closing. */
export const FST_PUSH_STREAM_SERVER_CLOSING = define(
  'FST_PUSH_STREAM_SERVER_CLOSING',
  'The server is closing',
  503
)

/** `reply.sse` was given something that is no source: not an (async) iterable, a function returning one, nor a subscription. */
export const FST_PUSH_STREAM_INVALID_SOURCE = define(
  'FST_PUSH_STREAM_INVALID_SOURCE',
  'Invalid stream source: got %s, expected an async iterable, an iterable, a function returning one, or fastify.pushStream.subscribe(...)',
  500,
  TypeError
)

/** The options of `reply.sse` or `subscribe` hold an unknown key or a bad value. */
export const FST_PUSH_STREAM_INVALID_STREAM_OPTIONS = define(
  'FST_PUSH_STREAM_INVALID_STREAM_OPTIONS',
  'Invalid stream option "%s": got %s, expected %s',
  500,
  TypeError
)

/** A subscription read as an async iterable fell more than its `maxQueued` events behind: it ends with this error. */
export const FST_PUSH_STREAM_SUBSCRIPTION_OVERFLOW = define(
  'FST_PUSH_STREAM_SUBSCRIPTION_OVERFLOW',
  'The subscription\'s reader fell more than %s events behind',
  500
)

/** A subscription is streamed or read once: it was given to `reply.sse` or iterated before. */
export const FST_PUSH_STREAM_SUBSCRIPTION_USED = define(
  'FST_PUSH_STREAM_SUBSCRIPTION_USED',
  'This subscription was already used: call fastify.pushStream.subscribe() for each stream or reader',
  500
)

/** A resumable stream's `key` is not 1 to 128 of `A-Z a-z 0-9 _ - . :`. */
export const FST_PUSH_STREAM_INVALID_KEY = define(
  'FST_PUSH_STREAM_INVALID_KEY',
  'Invalid stream key %s: it must be 1 to 128 of A-Z a-z 0-9 _ - . :',
  400,
  TypeError
)

/** The `signal.reason` of a resumable stream's producer that `fastify.pushStream.cancel(key)` stopped. */
export const FST_PUSH_STREAM_CANCELLED = define(
  'FST_PUSH_STREAM_CANCELLED',
  'The stream %s was cancelled',
  499
)

/** `resumable.maxStreams` resumable streams are running: a new key is answered 503 with Retry-After. */
export const FST_PUSH_STREAM_TOO_MANY_STREAMS = define(
  'FST_PUSH_STREAM_TOO_MANY_STREAMS',
  'Too many resumable streams running (resumable.maxStreams is %s)',
  503
)

/** A resumable stream recorded `resumable.maxEvents` events: its producer is stopped with this reason, and its followers get `push-stream:error` with this code. */
export const FST_PUSH_STREAM_TOO_MANY_EVENTS = define(
  'FST_PUSH_STREAM_TOO_MANY_EVENTS',
  'The stream %s recorded its most events (resumable.maxEvents is %s)',
  500
)

/** A resumable stream's events passed `resumable.maxBytes`: its producer is stopped with this reason, and its followers get `push-stream:error` with this code. */
export const FST_PUSH_STREAM_STREAM_TOO_LARGE = define(
  'FST_PUSH_STREAM_STREAM_TOO_LARGE',
  'The stream %s passed its most bytes (resumable.maxBytes is %s)',
  500
)

/** A resumable stream's producer ran `resumable.maxDuration` ms: it is stopped with this reason, and its followers get `push-stream:error` with this code. */
export const FST_PUSH_STREAM_STREAM_TOO_LONG = define(
  'FST_PUSH_STREAM_STREAM_TOO_LONG',
  'The stream %s ran its longest (resumable.maxDuration is %s ms)',
  500
)

/**
 * The instance running a resumable stream's producer is gone (its claim
 * expired): its followers get `push-stream:error` with this code. Also the
 * `signal.reason` of a producer whose instance lost its claim to the key.
 */
export const FST_PUSH_STREAM_PRODUCER_LOST = define(
  'FST_PUSH_STREAM_PRODUCER_LOST',
  'The producer of the stream %s is gone',
  503
)

/**
 * A publish fenced by a lease (the generator's) found that lease no longer this
 * instance's: taken by another, or gone from the engine (a flush, a restart).
 * Nothing was appended.
 */
export const FST_PUSH_STREAM_LEASE_LOST = define(
  'FST_PUSH_STREAM_LEASE_LOST',
  'The lease %s is no longer this instance\'s: nothing was appended',
  503
)

/**
 * A publish was sent to the engine and not answered in time (Redis frozen,
 * overloaded, or the connection lost with the command in flight): it may have
 * been stored, and then every client gets it. Not `ADAPTER_UNAVAILABLE`, which
 * means nothing was sent: retry this one with the same `idempotencyKey`.
 */
export const FST_PUSH_STREAM_PUBLISH_UNCONFIRMED = define(
  'FST_PUSH_STREAM_PUBLISH_UNCONFIRMED',
  'The event was sent to the engine but not confirmed (%s): it may have been stored. Publish it again with the same idempotencyKey to have it stored once',
  503
)

/** A short text for an error message: the value's type and a bounded preview. */
export function describe (value: unknown): string {
  if (typeof value === 'string') {
    const shown = value.length > 40 ? `${value.slice(0, 40)}…` : value
    return JSON.stringify(shown)
  }
  if (typeof value === 'function') return 'a function'
  if (value === null || value === undefined) return String(value)
  if (Array.isArray(value)) return 'an array'
  if (typeof value === 'object') return 'an object'
  return `${typeof value} ${String(value)}`
}

/** The message of an error, or a description of a thrown non-error. */
export function errorMessage (error: unknown): string {
  return error instanceof Error ? error.message : describe(error)
}

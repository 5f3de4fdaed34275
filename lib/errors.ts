import createError from '@fastify/error'

/**
 * Every error the plugin throws, returns or logs. Each is a named constructor
 * with a stable `code`, so callers can test `err.code` or `instanceof`.
 */

/** A plugin option has a value outside what is allowed. Thrown by `register`. */
export const FST_PUSH_STREAM_INVALID_OPTION = createError(
  'FST_PUSH_STREAM_INVALID_OPTION',
  'Invalid option "%s": got %s, expected %s',
  500,
  TypeError
)

/** The plugin was registered twice on the same Fastify instance. */
export const FST_PUSH_STREAM_ALREADY_REGISTERED = createError(
  'FST_PUSH_STREAM_ALREADY_REGISTERED',
  'fastify-push-stream is already registered on this instance (the "pushStream" decorator exists)',
  500
)

/** An `event` name is not a non-empty string free of CR, LF and NUL. */
export const FST_PUSH_STREAM_INVALID_EVENT_NAME = createError(
  'FST_PUSH_STREAM_INVALID_EVENT_NAME',
  'Invalid event name %s: it must be a non-empty string without CR, LF or NUL',
  500,
  TypeError
)

/** An `id` or `retry` field given to the encoder would not survive the trip: a multi-line or NUL id, a retry that is not a whole number of milliseconds. */
export const FST_PUSH_STREAM_INVALID_FIELD = createError(
  'FST_PUSH_STREAM_INVALID_FIELD',
  'Invalid "%s" field %s: expected %s',
  500,
  TypeError
)

/** A channel name is outside the safe set: 1 to 64 of `A-Z a-z 0-9 _ - . :`. */
export const FST_PUSH_STREAM_INVALID_CHANNEL = createError(
  'FST_PUSH_STREAM_INVALID_CHANNEL',
  'Invalid channel %s: a channel is 1 to 64 characters from A-Z a-z 0-9 _ - . :',
  400,
  TypeError
)

/** A request asked for more channels than `maxChannels`. */
export const FST_PUSH_STREAM_TOO_MANY_CHANNELS = createError(
  'FST_PUSH_STREAM_TOO_MANY_CHANNELS',
  'Too many channels: %s requested, at most %s allowed',
  400
)

/** The `serialize` function threw, or did not return a string. Nothing was sent. */
export const FST_PUSH_STREAM_SERIALIZE_FAILED = createError(
  'FST_PUSH_STREAM_SERIALIZE_FAILED',
  'Could not serialize the event data: %s',
  500
)

/** `publish` or `generate` was called after the plugin closed. */
export const FST_PUSH_STREAM_CLOSED = createError(
  'FST_PUSH_STREAM_CLOSED',
  'The push stream is closed',
  503
)

/** The `source` threw or rejected; logged, and the generator goes on. */
export const FST_PUSH_STREAM_SOURCE_FAILED = createError(
  'FST_PUSH_STREAM_SOURCE_FAILED',
  'The message source failed: %s',
  500
)

/** The `authorize` option threw or rejected; the request is answered 500. */
export const FST_PUSH_STREAM_AUTHORIZE_FAILED = createError(
  'FST_PUSH_STREAM_AUTHORIZE_FAILED',
  'The authorize function failed: %s',
  500
)

/** `authorize` returned false: the request is answered 403. */
export const FST_PUSH_STREAM_FORBIDDEN = createError(
  'FST_PUSH_STREAM_FORBIDDEN',
  'Not allowed to subscribe to these channels',
  403
)

/** `maxConnections` streams are open: the request is answered 503 with Retry-After. */
export const FST_PUSH_STREAM_TOO_MANY_CONNECTIONS = createError(
  'FST_PUSH_STREAM_TOO_MANY_CONNECTIONS',
  'Too many open streams (maxConnections is %s)',
  503
)

/** The server is closing: new streams are answered 503 with Retry-After. */
export const FST_PUSH_STREAM_SHUTTING_DOWN = createError(
  'FST_PUSH_STREAM_SHUTTING_DOWN',
  'The server is shutting down',
  503
)

/** More streams from one client address than `maxConnectionsPerIp`: the request is answered 503 with Retry-After. */
export const FST_PUSH_STREAM_TOO_MANY_CONNECTIONS_PER_IP = createError(
  'FST_PUSH_STREAM_TOO_MANY_CONNECTIONS_PER_IP',
  'Too many open streams from this address (maxConnectionsPerIp is %s)',
  503
)

/** The adapter's engine (Redis) cannot be reached: nothing was published, or the adapter could not start. */
export const FST_PUSH_STREAM_ADAPTER_UNAVAILABLE = createError(
  'FST_PUSH_STREAM_ADAPTER_UNAVAILABLE',
  'The adapter\'s engine cannot be reached: %s',
  503
)

/** `client: true` was given but the built browser client was not found (the package was not built). */
export const FST_PUSH_STREAM_CLIENT_MISSING = createError(
  'FST_PUSH_STREAM_CLIENT_MISSING',
  'The browser client is not built: none of %s exists (run `npm run build`)',
  500
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

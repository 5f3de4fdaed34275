import { FST_PUSH_STREAM_INVALID_CHANNEL, FST_PUSH_STREAM_INVALID_KEY, describe } from '../errors.js'

/**
 * The plugin's own protocol on top of SSE: the names of the events it sends
 * besides the app's, what they carry, and which channel names a request may
 * use. The browser client keeps copies of these names (it ships alone); a
 * test pins them to this file.
 */

/** The channel of a client that names none, and of an event published without one. */
export const DEFAULT_CHANNEL = 'default'

/** The name of the event a client gets when its `Last-Event-ID` cannot be replayed. */
export const RESET_EVENT = 'reset'

/** The first event of a stream opened with `?handshake=1` (the browser client): data `{ retry, heartbeat }`. */
export const OPEN_EVENT = 'push-stream:open'

/** The event that tells the browser client to come back later (instead of a 503, which a browser treats as final): data `{ after, reason }`. */
export const RETRY_EVENT = 'push-stream:retry'

/** Why a client got a `reset`: its id is not one history can answer for. */
export const RESET_REASON = 'unknown-last-event-id'

/** The data of a `reset` event. */
export const RESET_DATA = JSON.stringify({ reason: RESET_REASON })

/** Why live clients got a `reset`: events they never got left the shared log (trimmed unread, or lost with its data). */
export const LOST_RESET_REASON = 'events-lost'

/** The data of that `reset` event. */
export const LOST_RESET_DATA = JSON.stringify({ reason: LOST_RESET_REASON })

/** The channel rule: 1 to 64 of `A-Z a-z 0-9 _ - . :`. */
export const CHANNEL_PATTERN = /^[A-Za-z0-9_.:-]{1,64}$/

/** True when `name` is in the safe channel character set (1 to 64 of `A-Z a-z 0-9 _ - . :`). */
export function isValidChannel (name: unknown): name is string {
  return typeof name === 'string' && CHANNEL_PATTERN.test(name)
}

/** Throws `FST_PUSH_STREAM_INVALID_CHANNEL` unless `name` is a valid channel name. */
export function assertChannel (name: unknown): asserts name is string {
  if (!isValidChannel(name)) throw new FST_PUSH_STREAM_INVALID_CHANNEL(describe(name))
}

/** The last event of a per-request stream whose source completed: data `{ reason }`, `"done"`. */
export const END_EVENT = 'push-stream:end'

/** The data of `END_EVENT` when the source completed. */
export const END_DONE_DATA = JSON.stringify({ reason: 'done' })

/** The last event of a per-request stream whose source failed: data `{ code }`, never the error's message. */
export const ERROR_EVENT = 'push-stream:error'

/** The rule for a resumable stream's key: 1 to 128 of `A-Z a-z 0-9 _ - . :`. */
export const KEY_PATTERN = /^[A-Za-z0-9_.:-]{1,128}$/

/** Throws `FST_PUSH_STREAM_INVALID_KEY` unless `key` is a valid resumable stream key. */
export function assertKey (key: unknown): asserts key is string {
  if (typeof key !== 'string' || !KEY_PATTERN.test(key)) throw new FST_PUSH_STREAM_INVALID_KEY(describe(key))
}

import { dataText } from './message.js'
import { encodeEvent } from './wire/encoder.js'

/**
 * What a `reply.sse` source yields, turned into the bytes of one event. An
 * item is the data itself, or `{ data, event?, id?, retry? }`: an object with
 * `data` and no keys beyond those four (any other object is data).
 */

/** An item that sets the event's fields as well as its data. */
export interface StreamEvent<T = unknown> {
  data: T
  /** The SSE event name; the client's `message` event when absent. No CR, LF or NUL. */
  event?: string
  /** The event's id, which the client sends back as `Last-Event-ID`. No CR, LF or NUL. */
  id?: string
  /** The client's reconnection delay from now on, in milliseconds. */
  retry?: number
}

const FIELDS: ReadonlySet<string> = new Set<keyof StreamEvent>(['data', 'event', 'id', 'retry'])

/** True for `{ data, event?, id?, retry? }`; false for any other value, which is data. */
function isStreamEvent (item: unknown): item is StreamEvent {
  if (typeof item !== 'object' || item === null || Array.isArray(item) || !('data' in item)) return false
  for (const key in item) if (!FIELDS.has(key)) return false
  return true
}

/**
 * The bytes of one item; `id`, when given, is written instead of the item's own. Throws a named error, encoding nothing, for an
 * `event` or `id` holding CR, LF or NUL, a `retry` that is not a whole number
 * of milliseconds, or data `serialize` cannot turn into text.
 */
export function encodeItem (item: unknown, serialize: (data: unknown) => string, id?: string): Buffer {
  if (!isStreamEvent(item)) return encodeEvent({ data: dataText(item, serialize), id })
  return encodeEvent({ data: dataText(item.data, serialize), event: item.event, id: id ?? item.id, retry: item.retry })
}

import { FST_PUSH_STREAM_INVALID_EVENT_NAME, FST_PUSH_STREAM_INVALID_FIELD, describe } from '../errors.js'

/**
 * The SSE wire format, and nothing else: turns one event into the exact bytes
 * a client parses. Pure functions, no I/O, so each rule can be tested alone.
 */

/** One event as it goes on the wire. `data` is already a string. */
export interface WireEvent {
  id?: string
  event?: string
  data: string
  retry?: number
}

// The spec ends a line at CRLF, a lone LF or a lone CR: split on all three.
const LINE_BREAK = /\r\n|\r|\n/
const UNSAFE_FIELD = /[\r\n\0]/

/** True when `name` may be sent as an `event:` field. */
export function isValidEventName (name: unknown): name is string {
  return typeof name === 'string' && name.length > 0 && !UNSAFE_FIELD.test(name)
}

/** Throws `FST_PUSH_STREAM_INVALID_EVENT_NAME` unless `name` is a valid event name. */
export function assertEventName (name: unknown): asserts name is string {
  if (!isValidEventName(name)) throw new FST_PUSH_STREAM_INVALID_EVENT_NAME(describe(name))
}

/** Throws `FST_PUSH_STREAM_INVALID_FIELD` unless `id` and `retry` can be written as the spec reads them. */
function assertControlFields (fields: { id?: string, retry?: number }): void {
  const { id, retry } = fields
  if (id !== undefined && (typeof id !== 'string' || UNSAFE_FIELD.test(id))) {
    throw new FST_PUSH_STREAM_INVALID_FIELD('id', describe(id), 'a string without CR, LF or NUL')
  }
  // A client ignores a retry that is not plain ASCII digits.
  if (retry !== undefined && (!Number.isSafeInteger(retry) || retry < 0)) {
    throw new FST_PUSH_STREAM_INVALID_FIELD('retry', describe(retry), 'a whole number of milliseconds, 0 or more')
  }
}

/** Encodes `data` as `data:` lines, one per line of the payload. */
export function encodeData (data: string): string {
  let out = ''
  for (const line of data.split(LINE_BREAK)) out += `data: ${line}\n`
  return out
}

/**
 * Encodes one whole event, ending with the blank line that dispatches it.
 * `retry` and `id` are written whenever defined, including `0`. Throws a
 * named error, writing nothing, for an `event` or `id` holding CR, LF or NUL
 * and for a `retry` that is not a whole number of milliseconds.
 */
export function encodeEvent (event: WireEvent): Buffer {
  if (event.event !== undefined) assertEventName(event.event)
  assertControlFields(event)
  let out = ''
  if (event.retry !== undefined) out += `retry: ${event.retry}\n`
  if (event.id !== undefined) out += `id: ${event.id}\n`
  if (event.event !== undefined) out += `event: ${event.event}\n`
  out += encodeData(event.data)
  return Buffer.from(out + '\n', 'utf8')
}

/**
 * A block with no `data:` line: the client records `id` and `retry` but
 * dispatches no event. Used to hand a fresh client its starting point.
 */
export function encodeControl (fields: { id?: string, retry?: number }): Buffer {
  assertControlFields(fields)
  let out = ''
  if (fields.retry !== undefined) out += `retry: ${fields.retry}\n`
  if (fields.id !== undefined) out += `id: ${fields.id}\n`
  return Buffer.from(out + '\n', 'utf8')
}

/** A comment line (ignored by clients; keeps proxies from closing idle streams). */
export function encodeComment (text = ''): Buffer {
  const line = text === '' ? ':' : `: ${text.replace(/[\r\n\0]+/g, ' ')}`
  return Buffer.from(line + '\n\n', 'utf8')
}

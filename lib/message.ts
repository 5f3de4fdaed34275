import {
  FST_PUSH_STREAM_INVALID_PUBLISH_OPTIONS,
  FST_PUSH_STREAM_SERIALIZE_FAILED,
  describe,
  errorMessage
} from './errors.js'
import { assertEventName } from './wire/encoder.js'
import { DEFAULT_CHANNEL, assertChannel } from './wire/protocol.js'

/**
 * What `publish` is given, checked and turned into the text that goes on the
 * wire: the event name, the channel and the data. Every check throws its
 * named error before anything is stored or sent.
 */

/** Options of `publish`. */
export interface PublishOptions {
  /** The SSE event name; the client's `message` event when absent. No CR, LF or NUL. */
  event?: string
  /** The channel to publish on. Default `'default'`. */
  channel?: string
  /**
   * Makes a retry safe: a publish with a key already used within
   * `IDEMPOTENCY_WINDOW_MS` (10 minutes) stores nothing and resolves with the
   * id the first one got. Decided by the engine as it stores (in Redis, in the
   * script that appends). 1 to 200 characters.
   */
  idempotencyKey?: string
}

/** How long an `idempotencyKey` is remembered after the publish that first used it. */
export const IDEMPOTENCY_WINDOW_MS = 10 * 60 * 1000

/** The longest `idempotencyKey`. */
const MAX_IDEMPOTENCY_KEY = 200

/** An event checked and serialized, ready for an engine to give it an id. */
export interface OutgoingMessage {
  event: string | undefined
  channel: string
  /** The `data:` text. */
  text: string
  /** Given: a publish with the same key within `IDEMPOTENCY_WINDOW_MS` is stored once. */
  idempotencyKey?: string | undefined
}

/** The keys `publish` accepts in its options. */
const PUBLISH_OPTION_KEYS: ReadonlySet<string> = new Set<keyof PublishOptions>(['event', 'channel', 'idempotencyKey'])

const UTF8 = new TextDecoder()

/** Throws `FST_PUSH_STREAM_INVALID_PUBLISH_OPTIONS` unless `options` is an object with only known keys. */
function assertPublishOptions (options: unknown): asserts options is PublishOptions {
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new FST_PUSH_STREAM_INVALID_PUBLISH_OPTIONS(describe(options))
  }
  for (const key of Object.keys(options)) {
    if (!PUBLISH_OPTION_KEYS.has(key)) throw new FST_PUSH_STREAM_INVALID_PUBLISH_OPTIONS(`an object with the unknown key ${describe(key)}`)
  }
  const { idempotencyKey } = options as PublishOptions
  if (idempotencyKey !== undefined && (typeof idempotencyKey !== 'string' || idempotencyKey.length === 0 || idempotencyKey.length > MAX_IDEMPOTENCY_KEY)) {
    throw new FST_PUSH_STREAM_INVALID_PUBLISH_OPTIONS(`an idempotencyKey of ${describe(idempotencyKey)}, not a string of 1 to ${MAX_IDEMPOTENCY_KEY} characters`)
  }
}

/** The `data:` text of `data`: strings as they are, bytes as UTF-8, anything else through `serialize`. */
export function dataText (data: unknown, serialize: (data: unknown) => string): string {
  if (typeof data === 'string') return data
  // Decoded whole, so a multi-byte character is never split.
  if (data instanceof Uint8Array) return UTF8.decode(data)
  let text: unknown
  try {
    text = serialize(data)
  } catch (error) {
    throw new FST_PUSH_STREAM_SERIALIZE_FAILED(errorMessage(error), { cause: error })
  }
  if (typeof text !== 'string') {
    throw new FST_PUSH_STREAM_SERIALIZE_FAILED(`serialize returned ${describe(text)}, not a string`)
  }
  return text
}

/** Checks and serializes what `publish` was given; throws the named error for bad input. */
export function prepareMessage (data: unknown, options: PublishOptions = {}, serialize: (data: unknown) => string): OutgoingMessage {
  assertPublishOptions(options)
  const { event } = options
  if (event !== undefined) assertEventName(event)
  const channel = options.channel ?? DEFAULT_CHANNEL
  assertChannel(channel)
  return { event, channel, text: dataText(data, serialize), idempotencyKey: options.idempotencyKey }
}

/**
 * What a source's value asks to publish: `{ data, event?, channel? }` (an
 * object with `data` and no other keys) sets the name and channel; any other
 * value is the data itself.
 */
export function sourceMessage (value: unknown): { data: unknown, options: PublishOptions } {
  if (typeof value !== 'object' || value === null || Array.isArray(value) || !('data' in value)) return { data: value, options: {} }
  if (!Object.keys(value).every((key) => key === 'data' || key === 'event' || key === 'channel')) return { data: value, options: {} }
  const { data, event, channel } = value as { data: unknown, event?: string, channel?: string }
  return { data, options: { event, channel } }
}

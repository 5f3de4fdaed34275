import { STATUS_CODES, type OutgoingHttpHeaders } from 'node:http'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import type { Broker } from './broker.js'
import { Connection } from './connection.js'
import {
  FST_PUSH_STREAM_INVALID_SOURCE,
  FST_PUSH_STREAM_INVALID_STREAM_OPTIONS,
  FST_PUSH_STREAM_SHUTTING_DOWN,
  FST_PUSH_STREAM_TOO_MANY_CONNECTIONS,
  FST_PUSH_STREAM_TOO_MANY_CONNECTIONS_PER_IP,
  describe
} from './errors.js'
import { RefusalLog } from './log.js'
import type { ResolvedOptions } from './options.js'
import { isStreamSource, type StreamSource } from './source-stream.js'
import { Subscription } from './subscription.js'
import { endingFrame, type Ending } from './resumable/recording.js'
import { MAX_DELAY, integer } from './validate.js'
import { encodeEvent } from './wire/encoder.js'
import { RETRY_EVENT, assertKey } from './wire/protocol.js'

/** Options of `reply.sse`. */
export interface StreamOptions {
  /** Overrides the plugin's `stallTimeout` for this stream (milliseconds; `0` never). Not for a subscription, which `maxBufferedBytes` bounds. */
  stallTimeout?: number
  /**
   * Makes the stream resumable under this key (1 to 128 of `A-Z a-z 0-9 _ - . :`):
   * the first request starts `source`, detached, and every request for the
   * key follows what it records. Not with a subscription.
   */
  key?: string
}

/** A follower's last frame: how its resumable stream ended; a follower that stopped early has none to write. */
function followerLastFrame (returned: unknown): Buffer {
  return endingFrame(returned as Ending)
}

// Never sent on a stream: hop-by-hop headers are forbidden over HTTP/2, and a length would end it.
const DROPPED_HEADERS = ['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'content-encoding']

const STREAM_HEADERS: OutgoingHttpHeaders = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no'
}

/** The headers of a stream: those already set on the reply (CORS, custom), then the SSE ones. */
function streamHeaders (reply: FastifyReply): OutgoingHttpHeaders {
  const headers = { ...reply.getHeaders(), ...STREAM_HEADERS } as OutgoingHttpHeaders
  for (const name of DROPPED_HEADERS) delete headers[name]
  return headers
}

/** The id a client resumes from: the `Last-Event-ID` header, else the `lastEventId` query; undefined when neither is given. */
export function requestedLastEventId (request: FastifyRequest): string | undefined {
  const header = request.headers['last-event-id']
  if (typeof header === 'string' && header !== '') return header
  const query = (request.query as Record<string, unknown> | undefined)?.lastEventId
  // Named twice: the first one counts.
  const value = Array.isArray(query) ? query[0] : query
  if (value === undefined || value === '') return undefined
  // Whatever a custom query parser made of it, a non-id is then answered with a reset.
  return String(value)
}

/** True when the request comes from the browser client (`?handshake=1`). */
export function isHandshake (query: unknown): boolean {
  return (query as Record<string, unknown> | undefined)?.handshake === '1'
}

const STREAM_OPTION_NAMES: ReadonlySet<string> = new Set<keyof StreamOptions>(['stallTimeout', 'key'])

/** The checked options of `reply.sse`: a named error for an unknown key or a bad value. */
function streamOptions (options: unknown, defaults: ResolvedOptions): { stallTimeout: number, key: string | undefined } {
  if (options === undefined) return { stallTimeout: defaults.stallTimeout, key: undefined }
  if (typeof options !== 'object' || options === null || Array.isArray(options)) {
    throw new FST_PUSH_STREAM_INVALID_STREAM_OPTIONS('options', describe(options), 'an object such as { stallTimeout, key }')
  }
  for (const name of Object.keys(options)) {
    if (!STREAM_OPTION_NAMES.has(name)) throw new FST_PUSH_STREAM_INVALID_STREAM_OPTIONS(name, 'an unknown option', 'stallTimeout or key')
  }
  const { stallTimeout, key } = options as StreamOptions
  if (key !== undefined) assertKey(key)
  return {
    stallTimeout: stallTimeout === undefined
      ? defaults.stallTimeout
      : integer('stallTimeout', stallTimeout, 0, MAX_DELAY, FST_PUSH_STREAM_INVALID_STREAM_OPTIONS),
    key
  }
}

/**
 * Turns replies into streams, for the built-in route and for `reply.sse`:
 * refuses for now when no stream may open (full, or closing), else sends the
 * stream's headers and hands the response to the broker.
 */
export class StreamReplies {
  readonly #broker: Broker
  readonly #options: ResolvedOptions
  readonly #retryAfter: string
  readonly #refusals = new RefusalLog()

  constructor (broker: Broker, options: ResolvedOptions) {
    this.#broker = broker
    this.#options = options
    this.#retryAfter = String(Math.max(1, Math.ceil(options.retry / 1000)))
  }

  /** The error to answer with when no stream can open now; undefined when one can. */
  unavailable (address: string): FastifyError | undefined {
    const broker = this.#broker
    const options = this.#options
    if (broker.closing) return new FST_PUSH_STREAM_SHUTTING_DOWN()
    if (broker.connections >= options.maxConnections) return new FST_PUSH_STREAM_TOO_MANY_CONNECTIONS(options.maxConnections)
    const perIp = options.maxConnectionsPerIp
    if (perIp > 0 && broker.connectionsFrom(address) >= perIp) return new FST_PUSH_STREAM_TOO_MANY_CONNECTIONS_PER_IP(perIp)
    return undefined
  }

  /**
   * Refuses for now: a 503 with Retry-After, or, for the browser client, a
   * stream with one RETRY_EVENT that then ends, since a browser's EventSource
   * never retries after a 503. Logged in batches (a full server is warned
   * of, the rest is info), not as a server error per request.
   */
  refuse (request: FastifyRequest, reply: FastifyReply, error: FastifyError): FastifyReply {
    const options = this.#options
    this.#refusals.note(request.server.log, error.code === 'FST_PUSH_STREAM_TOO_MANY_CONNECTIONS' ? 'warn' : 'info', error.code)
    if (!isHandshake(request.query)) {
      // The body Fastify's error handler would send, without its error line for each request.
      return reply.code(error.statusCode as number).header('retry-after', this.#retryAfter).send({
        statusCode: error.statusCode,
        code: error.code,
        error: STATUS_CODES[error.statusCode as number],
        message: error.message
      })
    }
    const headers = streamHeaders(reply)
    reply.hijack()
    const connection = new Connection(reply.raw, new Set(), options.maxBufferedBytes, () => {}, request.ip, undefined)
    connection.open(headers)
    connection.end(encodeEvent({
      retry: options.retry,
      event: RETRY_EVENT,
      data: JSON.stringify({ after: options.retry, reason: error.code })
    }))
    return reply
  }

  /**
   * `reply.sse(source, options)`: checks its arguments (a named error,
   * through Fastify's error handling, before anything is sent), then streams
   * the subscription or the source, or refuses for now.
   */
  sse (reply: FastifyReply, source: unknown, options?: unknown): FastifyReply {
    const isSubscription = source instanceof Subscription
    if (!isSubscription && !isStreamSource(source)) throw new FST_PUSH_STREAM_INVALID_SOURCE(describe(source))
    const { stallTimeout, key } = streamOptions(options, this.#options)
    if (isSubscription && key !== undefined) throw new FST_PUSH_STREAM_INVALID_STREAM_OPTIONS('key', describe(key), 'no key with a subscription, which resumes by itself')
    const request = reply.request
    const refused = this.unavailable(request.ip)
    if (refused !== undefined) return this.refuse(request, reply, refused)
    const lastEventId = requestedLastEventId(request)
    const handshake = isHandshake(request.query)
    if (isSubscription) {
      source.take()
      const headers = streamHeaders(reply)
      reply.hijack()
      this.#broker.open(reply.raw, headers, { channels: source.channels, lastEventId, address: request.ip, log: request.log, origin: { id: request.id, url: request.url } })
      return reply
    }
    let streamed = source as StreamSource
    let lastFrame: ((returned: unknown) => Buffer) | undefined
    if (key !== undefined) {
      const full = this.#broker.resumable.refusal(key)
      if (full !== undefined) return this.refuse(request, reply, full)
      streamed = this.#broker.resumable.follow(key, lastEventId, streamed, request)
      lastFrame = followerLastFrame
    }
    const headers = streamHeaders(reply)
    reply.hijack()
    this.#broker.stream(reply.raw, headers, streamed, { request, lastEventId, handshake, stallTimeout, lastFrame })
    return reply
  }
}

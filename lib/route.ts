import { STATUS_CODES, type OutgoingHttpHeaders } from 'node:http'
import type { FastifyError, FastifyReply, FastifyRequest } from 'fastify'
import {
  FST_PUSH_STREAM_AUTHORIZE_FAILED,
  FST_PUSH_STREAM_FORBIDDEN,
  FST_PUSH_STREAM_SHUTTING_DOWN,
  FST_PUSH_STREAM_TOO_MANY_CHANNELS,
  FST_PUSH_STREAM_TOO_MANY_CONNECTIONS,
  FST_PUSH_STREAM_TOO_MANY_CONNECTIONS_PER_IP,
  errorMessage
} from './errors.js'
import { Connection } from './connection.js'
import { encodeEvent } from './wire/encoder.js'
import { RefusalLog, withoutRepeatedCause } from './log.js'
import type { ResolvedOptions } from './options.js'
import type { Broker } from './broker.js'
import { DEFAULT_CHANNEL, RETRY_EVENT, assertChannel } from './wire/protocol.js'

// Never sent on a stream: hop-by-hop headers are forbidden over HTTP/2, and a length would end it.
const DROPPED_HEADERS = ['connection', 'keep-alive', 'transfer-encoding', 'content-length', 'content-encoding']

const STREAM_HEADERS: OutgoingHttpHeaders = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no'
}

/** The channels a request asks for (`?channel=a&channel=b`), validated; the default channel when none. */
export function requestedChannels (query: unknown, maxChannels: number): Set<string> {
  const raw = (query as Record<string, unknown>).channel
  const names = raw === undefined ? [DEFAULT_CHANNEL] : Array.isArray(raw) ? raw : [raw]
  if (names.length > maxChannels) throw new FST_PUSH_STREAM_TOO_MANY_CHANNELS(names.length, maxChannels)
  for (const name of names) assertChannel(name)
  return new Set(names as string[])
}

/** The id a client resumes from: the `Last-Event-ID` header, else the `lastEventId` query; undefined when neither is given. */
export function requestedLastEventId (request: FastifyRequest): string | undefined {
  const header = request.headers['last-event-id']
  if (typeof header === 'string' && header !== '') return header
  const query = (request.query as Record<string, unknown>).lastEventId
  // Named twice: the first one counts.
  const value = Array.isArray(query) ? query[0] : query
  if (value === undefined || value === '') return undefined
  // Whatever a custom query parser made of it, a non-id is then answered with a reset.
  return String(value)
}

/** True for an error that carries a 4xx `statusCode`: the client's fault, answered as it is. */
function isClientError (error: unknown): boolean {
  const status = (error as { statusCode?: unknown } | null)?.statusCode
  return typeof status === 'number' && status >= 400 && status < 500
}

/** True when the request comes from the browser client (`?handshake=1`). */
export function isHandshake (query: unknown): boolean {
  return (query as Record<string, unknown>).handshake === '1'
}

/** The headers of a stream: those already set on the reply (CORS, custom), then the SSE ones. */
function streamHeaders (reply: FastifyReply): OutgoingHttpHeaders {
  const headers = { ...reply.getHeaders(), ...STREAM_HEADERS } as OutgoingHttpHeaders
  for (const name of DROPPED_HEADERS) delete headers[name]
  return headers
}

/** The GET handler that turns a request into a stream. */
export function streamHandler (pushStream: Broker, options: ResolvedOptions) {
  const retryAfter = String(Math.max(1, Math.ceil(options.retry / 1000)))
  const refusals = new RefusalLog()

  /** The error to answer with when no stream can open now; undefined when one can. */
  function unavailable (address: string): FastifyError | undefined {
    if (pushStream.closing) return new FST_PUSH_STREAM_SHUTTING_DOWN()
    if (pushStream.connections >= options.maxConnections) return new FST_PUSH_STREAM_TOO_MANY_CONNECTIONS(options.maxConnections)
    const perIp = options.maxConnectionsPerIp
    if (perIp > 0 && pushStream.connectionsFrom(address) >= perIp) return new FST_PUSH_STREAM_TOO_MANY_CONNECTIONS_PER_IP(perIp)
    return undefined
  }

  /**
   * Refuses for now: a 503 with Retry-After, or, for the browser client, a
   * stream with one RETRY_EVENT that then ends, since a browser's EventSource
   * never retries after a 503. Logged in batches (a full server is warned
   * of, the rest is info), not as a server error per request.
   */
  function refuse (request: FastifyRequest, reply: FastifyReply, error: FastifyError): FastifyReply {
    refusals.note(request.server.log, error.code === 'FST_PUSH_STREAM_TOO_MANY_CONNECTIONS' ? 'warn' : 'info', error.code)
    if (!isHandshake(request.query)) {
      // The body Fastify's error handler would send, without its error line for each request.
      return reply.code(error.statusCode as number).header('retry-after', retryAfter).send({
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

  return async function stream (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const before = unavailable(request.ip)
    if (before !== undefined) return refuse(request, reply, before)
    const channels = requestedChannels(request.query, options.maxChannels)
    if (options.authorize !== undefined) {
      let allowed: boolean
      try {
        allowed = await options.authorize(request, [...channels])
      } catch (error) {
        // A refusal such as @fastify/jwt's 401 is answered as it is, and Fastify logs it as a client error.
        if (isClientError(error)) throw error
        throw withoutRepeatedCause(new FST_PUSH_STREAM_AUTHORIZE_FAILED(errorMessage(error), { cause: error }))
      }
      if (allowed !== true) throw new FST_PUSH_STREAM_FORBIDDEN()
      // The server may have begun closing, or filled up, while authorize ran.
      const after = unavailable(request.ip)
      if (after !== undefined) return refuse(request, reply, after)
    }
    const headers = streamHeaders(reply)
    reply.hijack()
    pushStream.open(reply.raw, headers, {
      channels,
      lastEventId: requestedLastEventId(request),
      handshake: isHandshake(request.query),
      address: request.ip,
      log: request.log
    })
    return reply
  }
}

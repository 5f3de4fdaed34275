import type { FastifyReply, FastifyRequest } from 'fastify'
import {
  FST_PUSH_STREAM_AUTHORIZE_FAILED,
  FST_PUSH_STREAM_FORBIDDEN,
  FST_PUSH_STREAM_TOO_MANY_CHANNELS,
  errorMessage
} from './errors.js'
import { withoutRepeatedCause } from './log.js'
import type { ResolvedOptions } from './options.js'
import type { Broker } from './broker.js'
import type { StreamReplies } from './sse-reply.js'
import { DEFAULT_CHANNEL, assertChannel } from './wire/protocol.js'

/** The channels a request asks for (`?channel=a&channel=b`), validated; the default channel when none. */
export function requestedChannels (query: unknown, maxChannels: number): Set<string> {
  const raw = (query as Record<string, unknown>).channel
  const names = raw === undefined ? [DEFAULT_CHANNEL] : Array.isArray(raw) ? raw : [raw]
  if (names.length > maxChannels) throw new FST_PUSH_STREAM_TOO_MANY_CHANNELS(names.length, maxChannels)
  for (const name of names) assertChannel(name)
  return new Set(names as string[])
}

/** True for an error that carries a 4xx `statusCode`: the client's fault, answered as it is. */
function isClientError (error: unknown): boolean {
  const status = (error as { statusCode?: unknown } | null)?.statusCode
  return typeof status === 'number' && status >= 400 && status < 500
}

/**
 * The GET handler of the built-in route: checks the channels asked for and
 * `authorize`, then streams a subscription to them, as `reply.sse` does for a
 * route of the app's own.
 */
export function streamHandler (pushStream: Broker, replies: StreamReplies, options: ResolvedOptions) {
  return async function stream (request: FastifyRequest, reply: FastifyReply): Promise<FastifyReply> {
    const before = replies.unavailable(request.ip)
    if (before !== undefined) return replies.refuse(request, reply, before)
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
      const after = replies.unavailable(request.ip)
      if (after !== undefined) return replies.refuse(request, reply, after)
    }
    return replies.sse(reply, pushStream.subscribe([...channels]))
  }
}

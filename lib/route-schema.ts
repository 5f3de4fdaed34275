import type { FastifySchema, FastifySchemaCompiler } from 'fastify'
import { CHANNEL_PATTERN } from './wire/protocol.js'

/** A JSON schema as a route holds it. */
type JsonSchema = Record<string, unknown>

/** A route schema with the keys `@fastify/swagger` reads besides Fastify's own (`summary`, `tags`, …). */
export type DocumentedSchema = FastifySchema & JsonSchema

/**
 * The body of an error answer, as Fastify's default error handler writes it.
 * Other fields are kept, so an app's own error handler answers as before.
 */
function errorAnswer (description: string, extra: JsonSchema = {}): JsonSchema {
  return {
    description,
    ...extra,
    type: 'object',
    properties: {
      statusCode: { type: 'integer' },
      code: { type: 'string' },
      error: { type: 'string' },
      message: { type: 'string' }
    },
    additionalProperties: true
  }
}

/**
 * The stream route's default schema: what `@fastify/swagger` documents. Its
 * request parts are documentation only (see `acceptEveryRequest`); its
 * response parts leave the stream alone, since a hijacked reply is never
 * serialized, and keep every field of an error answer.
 */
export function defaultStreamSchema (maxChannels: number): DocumentedSchema {
  return {
    summary: 'Server-Sent Events stream',
    description: 'Opens a text/event-stream of the events published on the channels named; ' +
      'a client that sends the id of the last event it received first gets every event it missed.',
    querystring: {
      type: 'object',
      properties: {
        channel: {
          description: 'A channel to subscribe to; repeat it for several (`?channel=a&channel=b`). Default: the channel "default".',
          type: 'array',
          items: { type: 'string', pattern: CHANNEL_PATTERN.source },
          maxItems: maxChannels
        },
        lastEventId: {
          description: 'The id of the last event received, for clients that cannot send the Last-Event-ID header (the header wins).',
          type: 'string'
        },
        handshake: {
          description: 'Sent by the browser client: opens with a push-stream:open event, and refuses for now with a push-stream:retry event instead of a 503.',
          type: 'string',
          enum: ['1']
        }
      }
    },
    headers: {
      type: 'object',
      properties: {
        'last-event-id': {
          description: 'The id of the last event received: the missed events are sent first, or a reset event when they are no longer held.',
          type: 'string'
        }
      }
    },
    response: {
      200: {
        description: 'The event stream; it stays open until the client or the server closes it.',
        content: { 'text/event-stream': { schema: { type: 'string' } } }
      },
      400: errorAnswer('A channel name is invalid (FST_PUSH_STREAM_INVALID_CHANNEL), or more channels than allowed were named (FST_PUSH_STREAM_TOO_MANY_CHANNELS).'),
      403: errorAnswer('The authorize option refused these channels (FST_PUSH_STREAM_FORBIDDEN).'),
      503: errorAnswer(
        'Too many open streams (FST_PUSH_STREAM_TOO_MANY_CONNECTIONS, FST_PUSH_STREAM_TOO_MANY_CONNECTIONS_PER_IP), or the server is shutting down (FST_PUSH_STREAM_SHUTTING_DOWN): come back after Retry-After.',
        { headers: { 'retry-after': { type: 'integer', description: 'Seconds to wait before trying again.' } } }
      )
    }
  }
}

/** `given`'s properties added to `base`'s, and its other keywords over `base`'s; `base` when nothing is given. */
function mergeObjectSchema (base: unknown, given: unknown): unknown {
  if (given === undefined) return base
  const ours = base as JsonSchema
  const theirs = given as JsonSchema
  return {
    ...ours,
    ...theirs,
    properties: { ...(ours.properties as JsonSchema), ...(theirs.properties as JsonSchema | undefined) }
  }
}

/**
 * The stream route's schema: the default one with `given` added. Its
 * `querystring` and `headers` properties join the default ones, its
 * `response` entries replace the default one for the same status, and its
 * other keys (`tags`, `summary`, `security`, …) are taken as they are.
 */
export function streamRouteSchema (maxChannels: number, given: FastifySchema = {}): DocumentedSchema {
  const base = defaultStreamSchema(maxChannels)
  return {
    ...base,
    ...given,
    querystring: mergeObjectSchema(base.querystring, given.querystring),
    headers: mergeObjectSchema(base.headers, given.headers),
    response: { ...(base.response as JsonSchema), ...(given.response as JsonSchema | undefined) }
  }
}

/**
 * The stream route's validator compiler: every request passes. The handler
 * checks the query itself and answers with the plugin's named errors; a
 * validating schema would answer other codes and coerce the values.
 */
export const acceptEveryRequest: FastifySchemaCompiler<unknown> = () => () => true

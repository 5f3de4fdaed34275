import type { FastifyInstance, FastifyPluginAsync, FastifyReply, RegisterOptions, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { clientScriptHandler, loadClientScript } from './client-script.js'
import { FST_PUSH_STREAM_ALREADY_REGISTERED } from './errors.js'
import { resolveOptions, resolveRegisterOptions, type PushStreamOptions } from './options.js'
import { Broker, type PushStreamApi } from './broker.js'
import { streamHandler } from './route.js'
import { StreamReplies, type StreamOptions } from './sse-reply.js'
import type { StreamSource } from './source-stream.js'
import type { StreamEvent } from './stream-item.js'
import type { Subscription } from './subscription.js'
import { acceptEveryRequest, streamRouteSchema } from './route-schema.js'

/**
 * What a stream's source may yield, typed by an event map: for each name, an
 * item `{ event: name, data, id?, retry? }` with that name's data; and, for
 * the map's `message` entry, its data alone or `{ data, id?, retry? }`.
 */
export type StreamItem<Events extends object = Record<string, unknown>> =
  | { [K in keyof Events & string]: { event: K, data: Events[K], id?: string, retry?: number } }[keyof Events & string]
  | ('message' extends keyof Events ? Events['message'] | { data: Events['message'], event?: undefined, id?: string, retry?: number } : never)

declare module 'fastify' {
  interface FastifyInstance {
    /** Publish events, pull from the source, read the counters, subscribe. Added by fastify-push-stream. */
    pushStream: PushStreamApi
  }
  interface FastifyReply {
    /**
     * Answers this request with a stream, and returns the reply (so
     * `return reply.sse(...)` works in an async handler). `source` is what the
     * stream sends: an (async) iterable of items, a function of
     * `{ signal, lastEventId, request }` returning one, or
     * `fastify.pushStream.subscribe(channels)`. Added by fastify-push-stream.
     */
    sse<Events extends object = Record<string, unknown>>(source: StreamSource<StreamItem<NoInfer<Events>>> | Subscription, options?: StreamOptions): FastifyReply
  }
}

const pushStreamPlugin: FastifyPluginAsync<PushStreamOptions> = async function pushStreamPlugin (fastify: FastifyInstance, opts: PushStreamOptions & RegisterOptions) {
  if (fastify.hasDecorator('pushStream')) throw new FST_PUSH_STREAM_ALREADY_REGISTERED()
  const options = resolveOptions(opts)
  const register = resolveRegisterOptions(opts)
  const core = new Broker(options, fastify.log)

  const api: PushStreamApi = Object.freeze({
    publish: core.publish.bind(core),
    generate: core.generate.bind(core),
    stats: core.stats.bind(core),
    subscribe: core.subscribe.bind(core),
    cancel: core.cancel.bind(core),
    subscribers: core.subscribers.bind(core)
  })
  fastify.decorate('pushStream', api)
  const replies = new StreamReplies(core, options)
  fastify.decorateReply('sse', function sse (this: FastifyReply, source: unknown, streamOptions?: StreamOptions): FastifyReply {
    return replies.sse(this, source, streamOptions)
  })

  // In a child context, since Fastify applies `prefix` (and `logLevel`) to a plugin's own routes only, not to an fp-wrapped one's.
  fastify.register(async function pushStreamRoutes (routes) {
    routes.route({
      ...options.route,
      method: 'GET',
      url: options.path,
      exposeHeadRoute: false,
      schema: streamRouteSchema(options.maxChannels, options.route?.schema),
      validatorCompiler: acceptEveryRequest,
      handler: streamHandler(core, replies, options)
    } as RouteOptions)
    if (options.client) {
      // Hidden from OpenAPI documents, as a static file is: it is no API.
      routes.get(`${options.path.replace(/\/$/, '')}/client.js`, { schema: { hide: true } as object }, clientScriptHandler(loadClientScript()))
    }
  }, register)

  fastify.addHook('onReady', async () => core.start())
  // Open streams would keep server.close() waiting forever: end them first.
  fastify.addHook('preClose', async () => core.close())
}

/**
 * The plugin: `fastify.register(pushStream, options)` adds the SSE route at
 * `options.path`, under the context's prefix and the `prefix` option, and the
 * `fastify.pushStream` decorator to the instance registered on. Once per
 * encapsulation context: not again in the same context or below it.
 */
export const pushStream = fp(pushStreamPlugin, { fastify: '5.x', name: 'fastify-push-stream' })
export default pushStream

export * from './errors.js'
export { encodeComment, encodeEvent, encodeData, isValidEventName, type WireEvent } from './wire/encoder.js'
export { parseEventId, formatEventId, compareEventIds, type EventId } from './wire/event-id.js'
export { DEFAULT_CHANNEL, END_EVENT, ERROR_EVENT, OPEN_EVENT, RESET_EVENT, RETRY_EVENT, isValidChannel } from './wire/protocol.js'
export type { PushStreamAdapter, AdapterContext, AdapterEvent, AdapterMessage, AdapterLag, AdapterLogger, AdapterPresence, AdapterRecordings, LogGap, PublishFence } from './adapter.js'
export type { RecordingStore, Claim, Outcome } from './resumable/store.js'
export type { Ending } from './resumable/recording.js'
export { defaults, resumableDefaults, type ResumableOptions, type PushStreamOptions, type PushStreamRouteOptions, type MessageSource, type SourceMessage, type Authorize } from './options.js'
export type {
  PublishOptions,
  Published,
  PublishedEvent,
  PushStreamApi,
  PushStreamStats
} from './broker.js'
export { randomMessages, type RandomMessage } from './random-source.js'
export { IDEMPOTENCY_WINDOW_MS } from './message.js'
export type { EngineLag } from './engine/engine.js'
export {
  diagnostics,
  type AdapterOutageMessage,
  type AdapterRecoveryMessage,
  type EventPublishMessage,
  type ResetMessage,
  type SlowClientMessage,
  type StreamEndMessage,
  type StreamEndReason,
  type StreamOpenMessage,
  type TypedChannel
} from './diagnostics.js'
export type { SourceContext, SourceIterable, StreamSource } from './source-stream.js'
export type { StreamEvent }
export type { StreamOptions }
export type { Subscription }
export type { SubscribedEvent, SubscribeOptions } from './subscription.js'

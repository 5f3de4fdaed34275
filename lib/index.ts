import type { FastifyInstance, FastifyPluginAsync, RegisterOptions, RouteOptions } from 'fastify'
import fp from 'fastify-plugin'
import { clientScriptHandler, loadClientScript } from './client-script.js'
import { FST_PUSH_STREAM_ALREADY_REGISTERED } from './errors.js'
import { resolveOptions, resolveRegisterOptions, type PushStreamOptions } from './options.js'
import { Broker, type PushStreamApi } from './broker.js'
import { streamHandler } from './route.js'
import { acceptEveryRequest, streamRouteSchema } from './route-schema.js'

declare module 'fastify' {
  interface FastifyInstance {
    /** Publish events, pull from the source, read the counters. Added by fastify-push-stream. */
    pushStream: PushStreamApi
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
    stats: core.stats.bind(core)
  })
  fastify.decorate('pushStream', api)

  // In a child context, since Fastify applies `prefix` (and `logLevel`) to a plugin's own routes only, not to an fp-wrapped one's.
  fastify.register(async function pushStreamRoutes (routes) {
    routes.route({
      ...options.route,
      method: 'GET',
      url: options.path,
      exposeHeadRoute: false,
      schema: streamRouteSchema(options.maxChannels, options.route?.schema),
      validatorCompiler: acceptEveryRequest,
      handler: streamHandler(core, options)
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
export { DEFAULT_CHANNEL, OPEN_EVENT, RESET_EVENT, RETRY_EVENT, isValidChannel } from './wire/protocol.js'
export type { PushStreamAdapter, AdapterContext, AdapterEvent, AdapterMessage, AdapterLogger } from './adapter.js'
export { defaults, type PushStreamOptions, type PushStreamRouteOptions, type MessageSource, type SourceMessage, type Authorize } from './options.js'
export type {
  PublishOptions,
  Published,
  PublishedEvent,
  PushStreamApi,
  PushStreamStats
} from './broker.js'
export { randomMessages, type RandomMessage } from './random-source.js'

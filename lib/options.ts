import type { FastifyRequest, RegisterOptions, RouteShorthandOptions } from 'fastify'
import type { PushStreamAdapter } from './adapter.js'
import { FST_PUSH_STREAM_INVALID_OPTION, describe } from './errors.js'
import { nearestName } from './nearest-name.js'
import { randomMessages } from './random-source.js'
import { MAX_DELAY, integer, stripUndefined } from './validate.js'

/** What `source` may return or yield to set the event name and channel as well as the data. */
export interface SourceMessage<T = unknown> {
  data: T
  event?: string
  channel?: string
}

/**
 * The message generator: a function (sync or async) called every `interval`,
 * or an iterable (sync or async) consumed in order.
 */
export type MessageSource =
  | (() => unknown)
  | AsyncIterable<unknown>
  | Iterable<unknown>

/** Decides whether a request may subscribe to `channels`; false answers 403. */
export type Authorize = (request: FastifyRequest, channels: string[]) => boolean | Promise<boolean>

/**
 * Fastify route options for the stream route: hooks (`onRequest`,
 * `preHandler`, …), `config`, `logLevel`, `constraints`, `schema` additions
 * and the like. Not `method`, `url`, `path` or `handler`, which the plugin
 * sets, nor what would change how the request is checked.
 */
export type PushStreamRouteOptions = Omit<RouteShorthandOptions, 'exposeHeadRoute' | 'validatorCompiler' | 'attachValidation' | 'schemaErrorFormatter'> & {
  /** Only `false`: a HEAD request would open a stream. */
  exposeHeadRoute?: false
}

/** The options of `fastify.register(pushStream, options)`. */
export interface PushStreamOptions {
  /** GET route that streams `text/event-stream`. Default `'/events'`. */
  path?: string
  /** Milliseconds between generated messages; `0` turns a function source off (an iterable is then read as fast as it yields). Default `3000`. */
  interval?: number
  /** The message generator. Default: random JSON messages `{ id, text, time }`. */
  source?: MessageSource
  /** Milliseconds between comment lines on idle connections; `0` turns them off. Default `15000`. */
  heartbeat?: number
  /** Reconnection delay in milliseconds sent to clients as `retry:`. Default `3000`. */
  retry?: number
  /** How many events are kept for `Last-Event-ID` replay; `0` keeps none. Default `1000`. */
  history?: number
  /** Per connection: a client with more bytes than this waiting to be sent is disconnected. Default `1048576` (1 MiB). */
  maxBufferedBytes?: number
  /** Open streams allowed at once; beyond it, 503 with `Retry-After`. Default `10000`. */
  maxConnections?: number
  /** Open streams allowed at once from one client address (`request.ip`); beyond it, 503 with `Retry-After`. `0` is no limit. Default `0`. */
  maxConnectionsPerIp?: number
  /** Channels one request may subscribe to. Default `32`. */
  maxChannels?: number
  /**
   * Per-request streams (`reply.sse(source)`): milliseconds a stream may keep
   * bytes waiting without the client taking any before it is ended and its
   * source's signal aborted (noticed within 1.25 times this); `0` never.
   * Below a proxy's read timeout (nginx: 60 s). Default `30000`.
   */
  stallTimeout?: number
  /**
   * Milliseconds a broadcast event may wait so that the events published
   * close together go out in one write per connection. `0` adds no timer: the
   * events of one turn of the event loop (say, every message read from the
   * network in one poll) go out together at its end. Above `0`, the first
   * event of a batch waits at most this long: latency traded for capacity
   * under sustained load. Default `0`.
   */
  flushDelay?: number
  /** Turns non-string data into the `data:` text. Default `JSON.stringify`. */
  serialize?: (data: unknown) => string
  /** Called before a stream opens; false answers 403. Default: everyone may subscribe. */
  authorize?: Authorize
  /** Limits of resumable streams (`reply.sse(source, { key })`). */
  resumable?: ResumableOptions
  /** Serve the browser client at `<path>/client.js`. Default `false`. */
  client?: boolean
  /** The engine that carries events between instances, e.g. `redisAdapter(...)`. Default: this process only. */
  adapter?: PushStreamAdapter
  /** Fastify route options added to the stream route's definition (its schema is added to the default one). Default `{}`. */
  route?: PushStreamRouteOptions
}

/** The limits of resumable streams (`reply.sse(source, { key })`), each with its default. */
export interface ResumableOptions {
  /** Milliseconds a producer may run before it is stopped (`FST_PUSH_STREAM_STREAM_TOO_LONG`). Default `600000` (10 minutes). */
  maxDuration?: number
  /** Milliseconds a stream's events are kept after it ended, for followers that come back. Default `300000` (5 minutes). */
  ttl?: number
  /** Events one stream may record (`FST_PUSH_STREAM_TOO_MANY_EVENTS` past it). Default `10000`. */
  maxEvents?: number
  /** Bytes one stream's events may hold (`FST_PUSH_STREAM_STREAM_TOO_LARGE` past it). Default `1048576` (1 MiB). */
  maxBytes?: number
  /** Producers running at once; a new key past it is answered 503 (`FST_PUSH_STREAM_TOO_MANY_STREAMS`). Default `1000`. */
  maxStreams?: number
}

/** The defaults of the `resumable` option, as documented. */
export const resumableDefaults = Object.freeze({
  maxDuration: 10 * 60 * 1000,
  ttl: 5 * 60 * 1000,
  maxEvents: 10_000,
  maxBytes: 1024 * 1024,
  maxStreams: 1000
})

/** Options after defaults and validation. */
export interface ResolvedOptions extends Required<Omit<PushStreamOptions, 'authorize' | 'adapter' | 'route' | 'resumable'>> {
  resumable: Required<ResumableOptions>
  authorize: Authorize | undefined
  adapter: PushStreamAdapter | undefined
  route: PushStreamRouteOptions | undefined
}

/** The defaults, as documented. */
export const defaults = Object.freeze({
  path: '/events',
  interval: 3000,
  heartbeat: 15000,
  retry: 3000,
  history: 1000,
  maxBufferedBytes: 1024 * 1024,
  maxConnections: 10000,
  maxConnectionsPerIp: 0,
  maxChannels: 32,
  stallTimeout: 30000,
  flushDelay: 0,
  client: false
})

function boolean (name: string, value: unknown): boolean {
  if (typeof value !== 'boolean') throw new FST_PUSH_STREAM_INVALID_OPTION(name, describe(value), 'true or false')
  return value
}

function isIterable (value: unknown): value is MessageSource {
  return typeof value === 'object' && value !== null &&
    (Symbol.asyncIterator in value || Symbol.iterator in value)
}

/** The options Fastify itself reads from `register`'s options, which reach the plugin too. */
export const REGISTER_OPTION_NAMES: readonly string[] = Object.freeze(['prefix', 'logLevel', 'logSerializers'])

/** Every option the plugin accepts, in the order they are listed when a key is unknown. */
export const OPTION_NAMES: readonly string[] = Object.freeze([
  ...Object.keys(defaults), 'source', 'serialize', 'authorize', 'adapter', 'route', 'resumable', ...REGISTER_OPTION_NAMES
])

/** Throws `FST_PUSH_STREAM_INVALID_OPTION` for a key that is no option, naming the one most likely meant. */
function assertKnownOptions (options: object): void {
  for (const key of Object.keys(options)) {
    if (OPTION_NAMES.includes(key)) continue
    const meant = nearestName(key, OPTION_NAMES)
    throw new FST_PUSH_STREAM_INVALID_OPTION(key, 'an unknown option', meant === undefined
      ? `one of ${OPTION_NAMES.join(', ')}`
      : `a known option (did you mean "${meant}"?)`)
  }
}

/** Applies the defaults and throws `FST_PUSH_STREAM_INVALID_OPTION` for an unknown key or the first bad value. */
export function resolveOptions (options: PushStreamOptions = {}): ResolvedOptions {
  assertKnownOptions(options)
  const given = { ...defaults, ...stripUndefined(options) }
  if (typeof given.path !== 'string' || !given.path.startsWith('/')) {
    throw new FST_PUSH_STREAM_INVALID_OPTION('path', describe(given.path), 'a string starting with "/"')
  }
  const source = options.source === undefined ? randomMessages : options.source
  if (typeof source !== 'function' && !isIterable(source)) {
    throw new FST_PUSH_STREAM_INVALID_OPTION('source', describe(source), 'a function or an (async) iterable')
  }
  const serialize = options.serialize === undefined ? JSON.stringify : options.serialize
  if (typeof serialize !== 'function') {
    throw new FST_PUSH_STREAM_INVALID_OPTION('serialize', describe(serialize), 'a function')
  }
  if (options.authorize !== undefined && typeof options.authorize !== 'function') {
    throw new FST_PUSH_STREAM_INVALID_OPTION('authorize', describe(options.authorize), 'a function')
  }
  if (options.adapter !== undefined && !isAdapter(options.adapter)) {
    throw new FST_PUSH_STREAM_INVALID_OPTION('adapter', describe(options.adapter), `an object with the methods ${ADAPTER_METHODS.join(', ')}`)
  }
  return {
    path: given.path,
    interval: integer('interval', given.interval, 0, MAX_DELAY),
    heartbeat: integer('heartbeat', given.heartbeat, 0, MAX_DELAY),
    retry: integer('retry', given.retry, 0, MAX_DELAY),
    history: integer('history', given.history, 0, 10_000_000),
    maxBufferedBytes: integer('maxBufferedBytes', given.maxBufferedBytes, 1, Number.MAX_SAFE_INTEGER),
    maxConnections: integer('maxConnections', given.maxConnections, 1, Number.MAX_SAFE_INTEGER),
    maxConnectionsPerIp: integer('maxConnectionsPerIp', given.maxConnectionsPerIp, 0, Number.MAX_SAFE_INTEGER),
    maxChannels: integer('maxChannels', given.maxChannels, 1, 1024),
    stallTimeout: integer('stallTimeout', given.stallTimeout, 0, MAX_DELAY),
    flushDelay: integer('flushDelay', given.flushDelay, 0, 1000),
    client: boolean('client', given.client),
    source,
    serialize,
    authorize: options.authorize,
    adapter: options.adapter,
    route: routeOptions(options.route),
    resumable: resumableOptions(options.resumable)
  }
}

/** The `resumable` option, checked, with its defaults. */
function resumableOptions (value: unknown): Required<ResumableOptions> {
  if (value === undefined) return { ...resumableDefaults }
  if (!isPlainObject(value)) throw new FST_PUSH_STREAM_INVALID_OPTION('resumable', describe(value), 'a plain object of limits')
  for (const key of Object.keys(value)) {
    if (!Object.hasOwn(resumableDefaults, key)) {
      throw new FST_PUSH_STREAM_INVALID_OPTION(`resumable.${key}`, 'an unknown option', `one of ${Object.keys(resumableDefaults).join(', ')}`)
    }
  }
  const given = { ...resumableDefaults, ...stripUndefined(value) }
  return {
    maxDuration: integer('resumable.maxDuration', given.maxDuration, 1, MAX_DELAY),
    ttl: integer('resumable.ttl', given.ttl, 0, MAX_DELAY),
    maxEvents: integer('resumable.maxEvents', given.maxEvents, 1, 10_000_000),
    maxBytes: integer('resumable.maxBytes', given.maxBytes, 1, Number.MAX_SAFE_INTEGER),
    maxStreams: integer('resumable.maxStreams', given.maxStreams, 1, 10_000_000)
  }
}

const ADAPTER_METHODS = ['start', 'publish', 'replay', 'lease', 'close'] as const

function isAdapter (value: unknown): value is PushStreamAdapter {
  return typeof value === 'object' && value !== null &&
    ADAPTER_METHODS.every((name) => typeof (value as Record<string, unknown>)[name] === 'function')
}

/** Why a route option the plugin sets itself cannot be given. */
const REFUSED_ROUTE_OPTIONS: Readonly<Record<string, string>> = Object.freeze({
  method: 'the stream route is always GET',
  url: 'the "path" option sets the URL',
  path: 'the "path" option sets the URL',
  handler: 'the plugin answers the stream route itself',
  exposeHeadRoute: 'false or nothing, since a HEAD request would open a stream',
  validatorCompiler: 'the plugin checks the query itself, and the route\'s request schema is documentation only',
  attachValidation: 'the plugin checks the query itself, and the route\'s request schema is documentation only',
  schemaErrorFormatter: 'the plugin checks the query itself, and the route\'s request schema is documentation only'
})

/** Fastify's route options: a key close to one of these but not one of them is taken for a misspelling. */
const ROUTE_OPTION_NAMES: readonly string[] = Object.freeze([
  ...Object.keys(REFUSED_ROUTE_OPTIONS), 'schema', 'serializerCompiler', 'bodyLimit', 'handlerTimeout',
  'logLevel', 'logSerializers', 'config', 'constraints', 'prefixTrailingSlash', 'errorHandler', 'childLoggerFactory',
  'onRequest', 'preParsing', 'preValidation', 'preHandler', 'preSerialization', 'onSend', 'onResponse',
  'onTimeout', 'onError', 'onRequestAbort'
])

/** The schema parts the plugin merges with its own: each must be an object. */
const MERGED_SCHEMA_PARTS = ['querystring', 'headers', 'response'] as const

function isPlainObject (value: unknown): value is Record<string, unknown> {
  if (typeof value !== 'object' || value === null) return false
  const prototype = Object.getPrototypeOf(value)
  return prototype === Object.prototype || prototype === null
}

/** The `route` option, checked: a plain object without the keys the plugin sets, nor a misspelt Fastify route option. */
function routeOptions (value: unknown): PushStreamRouteOptions | undefined {
  if (value === undefined) return undefined
  if (!isPlainObject(value)) throw new FST_PUSH_STREAM_INVALID_OPTION('route', describe(value), 'a plain object of Fastify route options')
  for (const [key, given] of Object.entries(stripUndefined(value))) {
    if (Object.hasOwn(REFUSED_ROUTE_OPTIONS, key) && !(key === 'exposeHeadRoute' && given === false)) {
      throw new FST_PUSH_STREAM_INVALID_OPTION(`route.${key}`, describe(given), `it left out: ${REFUSED_ROUTE_OPTIONS[key]}`)
    }
    // Far from every Fastify option, a key may be another plugin's route option: it is passed on.
    const meant = ROUTE_OPTION_NAMES.includes(key) ? undefined : nearestName(key, ROUTE_OPTION_NAMES)
    if (meant !== undefined) {
      throw new FST_PUSH_STREAM_INVALID_OPTION(`route.${key}`, 'an unknown route option', `a Fastify route option (did you mean "${meant}"?)`)
    }
  }
  const schema = value.schema
  if (schema === undefined) return value
  if (!isPlainObject(schema)) throw new FST_PUSH_STREAM_INVALID_OPTION('route.schema', describe(schema), 'a plain object')
  for (const part of MERGED_SCHEMA_PARTS) {
    if (schema[part] !== undefined && !isPlainObject(schema[part])) {
      throw new FST_PUSH_STREAM_INVALID_OPTION(`route.schema.${part}`, describe(schema[part]), 'a plain object')
    }
  }
  return value
}

/**
 * Fastify's own register options (`prefix`, `logLevel`, `logSerializers`),
 * checked, to add the plugin's routes under as Fastify would for any plugin;
 * throws `FST_PUSH_STREAM_INVALID_OPTION` for the first bad value.
 */
export function resolveRegisterOptions (options: RegisterOptions = {}): RegisterOptions {
  const { prefix, logLevel, logSerializers } = options
  if (prefix !== undefined && typeof prefix !== 'string') {
    throw new FST_PUSH_STREAM_INVALID_OPTION('prefix', describe(prefix), 'a string')
  }
  if (logLevel !== undefined && typeof logLevel !== 'string') {
    throw new FST_PUSH_STREAM_INVALID_OPTION('logLevel', describe(logLevel), 'a log level name')
  }
  if (logSerializers !== undefined && !isPlainObject(logSerializers)) {
    throw new FST_PUSH_STREAM_INVALID_OPTION('logSerializers', describe(logSerializers), 'a plain object of functions')
  }
  return stripUndefined({ prefix, logLevel, logSerializers })
}

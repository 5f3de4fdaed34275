import { execFileSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join, resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Http2SecureServer } from 'node:http2'
import Fastify, { type FastifyHttp2SecureOptions, type FastifyInstance, type FastifyServerOptions } from 'fastify'
import fastifyStatic from '@fastify/static'
import { nanoid } from 'nanoid'
import pushStream, { type PublishedEvent, type PushStreamApi, type ResumableOptions, type SourceMessage } from '../lib/index.js'
import { askRoutes } from './ask.js'
import { serveMetrics } from './metrics.js'

/** The channels the demo publishes on; the page offers the same ones. */
export const CHANNELS = ['default', 'news', 'alerts'] as const
export type DemoChannel = typeof CHANNELS[number]

/** The event name of messages posted through `POST /messages`; generated ones are unnamed (`message`). */
export const CHAT_EVENT = 'chat'

/**
 * The JSON every demo event carries. The channel is in the data because an SSE
 * event does not carry it; `time` is when the server published it.
 */
export interface DemoMessage {
  id: string
  text: string
  time: string
  channel: DemoChannel
}

export interface BuildOptions {
  logger?: FastifyServerOptions['logger']
  /** Milliseconds between messages; `0` sends none on its own (call `app.pushStream.generate()`). Default `3000`. */
  interval?: number
  /** Events kept for replay after a reconnect. Default `1000`. */
  history?: number
  /** Reconnection delay (ms) sent to clients, the base of their backoff. Default `3000`. */
  retry?: number
  /** The one other origin allowed to use the app (`https://host[:port]`), for a page served elsewhere. Default: none. */
  cors?: string
  /** Serve over HTTP/2 with TLS (HTTP/1.1 over TLS still answered). */
  http2?: { key: string | Buffer, cert: string | Buffer }
  /** Share events with every other instance started with the same Redis (`redis://host:port`). Default: this process only. */
  redisUrl?: string
  /** The Redis stream the instances share. Default `'push-stream:demo'`. */
  redisKey?: string
  /** Milliseconds before each word of an answer on the Ask panel. Default `80`. */
  answerDelay?: number
  /** The limits of the Ask panel's resumable answers (the plugin's `resumable` option: `ttl`, `maxStreams`, …). Default: the plugin's. */
  resumable?: ResumableOptions
}

const TEXTS = [
  'Hello from the server',
  'Every open tab reads the same broadcast',
  'Pause, wait a little, resume: nothing is lost',
  'Stop the server and start it again to see the page reconnect',
  'A heartbeat keeps idle proxies from closing the stream',
  'Pick a channel: the page reconnects and keeps its place',
  'Open a second window and post a message to it'
]

/** A message as the demo publishes it, stamped now. */
export function demoMessage (text: string, channel: DemoChannel = 'default'): DemoMessage {
  return { id: nanoid(), text, time: new Date().toISOString(), channel }
}

/** Publishes `text` on `channel` as the form does: a `chat` event. */
export async function publishChat (api: PushStreamApi, text: string, channel: DemoChannel = 'default'): Promise<PublishedEvent<DemoMessage>> {
  return await api.publish(demoMessage(text, channel), { event: CHAT_EVENT, channel })
}

/**
 * A source that cycles through TEXTS and, at its own pace, through CHANNELS:
 * seven texts over three channels, so every text comes on every channel in turn.
 */
export function rotatingMessages (): () => SourceMessage<DemoMessage> {
  let next = 0
  return () => {
    const n = next++
    const channel = CHANNELS[n % CHANNELS.length] as DemoChannel
    return { data: demoMessage(TEXTS[n % TEXTS.length] as string, channel), channel }
  }
}

const MESSAGE_BODY = {
  type: 'object',
  required: ['text'],
  additionalProperties: false,
  properties: {
    // At least one character that is not white space.
    text: { type: 'string', minLength: 1, maxLength: 500, pattern: '\\S' },
    channel: { type: 'string', enum: CHANNELS }
  }
} as const

interface SchemaError {
  instancePath: string
  keyword: string
  params: Record<string, unknown>
}

/** What a person reads when the form was refused: one sentence on the first problem. */
export function describeInvalidMessage (errors: SchemaError[]): string {
  const [error] = errors
  const field = error?.keyword === 'required' ? String(error.params.missingProperty) : error?.instancePath.slice(1)
  if (field === 'text') {
    if (error?.keyword === 'maxLength') return 'The text is too long: 500 characters at most.'
    return 'Write a text: 1 to 500 characters, not only spaces.'
  }
  if (field === 'channel') return `Unknown channel: pick one of ${CHANNELS.join(', ')}.`
  return 'Send a JSON object { "text": "…", "channel": "…" }.'
}

function assertOrigin (origin: string): void {
  let parsed: URL | undefined
  try {
    parsed = new URL(origin)
  } catch {}
  if (parsed === undefined || parsed.origin !== origin || !/^https?:$/.test(parsed.protocol)) {
    throw new TypeError(`cors must be one origin such as https://other.example (scheme, host and port, no path, no "*"), not ${JSON.stringify(origin)}`)
  }
}

/** The demo app, configured but not listening. */
export async function build (options: BuildOptions = {}): Promise<FastifyInstance> {
  const logger = options.logger ?? false
  const app = (options.http2 === undefined
    ? Fastify({ logger })
    // allowHTTP1: a client without HTTP/2 (curl --http1.1, an old proxy) is still served.
    : Fastify({ logger: logger as FastifyHttp2SecureOptions<Http2SecureServer>['logger'], http2: true, https: { key: options.http2.key, cert: options.http2.cert, allowHTTP1: true } })
  ) as unknown as FastifyInstance

  if (options.cors !== undefined) {
    const allowed = options.cors
    assertOrigin(allowed)
    // By hand: one allowed origin, never `*`. Set before the stream starts, so the plugin keeps them.
    app.addHook('onRequest', async (request, reply) => {
      reply.header('vary', 'origin')
      if (request.headers.origin === allowed) reply.header('access-control-allow-origin', allowed)
    })
    // The preflight of a JSON POST from the other origin.
    app.options('/messages', async (_request, reply) => {
      reply
        .header('access-control-allow-methods', 'POST')
        .header('access-control-allow-headers', 'content-type')
        .header('access-control-max-age', '600')
        .code(204)
      return reply.send()
    })
  }

  await app.register(fastifyStatic, {
    root: fileURLToPath(new URL('./public/', import.meta.url)),
    prefix: '/'
  })

  // Loaded only when asked for: a demo without Redis never needs ioredis.
  const adapter = options.redisUrl === undefined
    ? undefined
    : (await import('../lib/redis/index.js')).redisAdapter({ url: options.redisUrl }, { key: options.redisKey ?? 'push-stream:demo' })

  await app.register(pushStream, {
    adapter,
    interval: options.interval ?? 3000,
    source: rotatingMessages(),
    heartbeat: 15000,
    history: options.history ?? 1000,
    retry: options.retry ?? 3000,
    resumable: options.resumable,
    // The browser client at /events/client.js, which the page imports.
    client: true
  })

  app.post('/messages', {
    bodyLimit: 4096,
    schema: { body: MESSAGE_BODY },
    schemaErrorFormatter: (errors) => new Error(describeInvalidMessage(errors as SchemaError[]))
  }, async (request, reply) => {
    const { text, channel } = request.body as { text: string, channel?: DemoChannel }
    const published = await publishChat(app.pushStream, text, channel)
    reply.code(201)
    return { id: published.id, event: published.event, channel: published.channel, data: published.data }
  })

  // The Ask panel: resumable answers streamed by reply.sse, their cancel, and the count of released answer sources.
  askRoutes(app, { delay: options.answerDelay ?? 80 })

  // Prometheus metrics at /metrics, from the plugin's diagnostics channels, stats() and subscribers().
  serveMetrics(app, { channels: CHANNELS })

  return app
}

/**
 * A certificate for localhost and 127.0.0.1, valid 30 days, made by `openssl`
 * in a temporary directory (removed again): node:crypto alone cannot sign one.
 */
export function selfSignedCertificate (openssl = 'openssl'): { key: Buffer, cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'push-stream-demo-'))
  const keyFile = join(dir, 'key.pem')
  const certFile = join(dir, 'cert.pem')
  try {
    execFileSync(openssl, [
      'req', '-x509', '-newkey', 'rsa:2048', '-nodes',
      '-subj', '/CN=localhost',
      '-addext', 'subjectAltName=DNS:localhost,IP:127.0.0.1',
      '-days', '30',
      '-keyout', keyFile,
      '-out', certFile
    ], { stdio: ['ignore', 'ignore', 'pipe'] })
    return { key: readFileSync(keyFile), cert: readFileSync(certFile) }
  } catch (error) {
    if ((error as NodeJS.ErrnoException).code === 'ENOENT') {
      throw new Error(`DEMO_HTTP2=1 needs a TLS certificate and "${openssl}" was not found to make one: ` +
        'set DEMO_TLS_KEY and DEMO_TLS_CERT to the paths of a PEM key and certificate, or install openssl', { cause: error })
    }
    throw error
  } finally {
    rmSync(dir, { recursive: true, force: true })
  }
}

/** The key and certificate named by DEMO_TLS_KEY and DEMO_TLS_CERT, or a self-signed pair when neither is set. */
export function certificateFromEnv (env: NodeJS.ProcessEnv = process.env): { key: Buffer, cert: Buffer, generated: boolean } {
  const keyFile = env.DEMO_TLS_KEY || undefined
  const certFile = env.DEMO_TLS_CERT || undefined
  if (keyFile === undefined && certFile === undefined) return { ...selfSignedCertificate(), generated: true }
  if (keyFile === undefined || certFile === undefined) {
    throw new Error('Set both DEMO_TLS_KEY and DEMO_TLS_CERT (PEM files), or neither to have a self-signed certificate made')
  }
  return { key: readFileSync(keyFile), cert: readFileSync(certFile), generated: false }
}

async function main (): Promise<void> {
  const tls = process.env.DEMO_HTTP2 === '1' ? certificateFromEnv() : undefined
  const app = await build({
    logger: true,
    cors: process.env.DEMO_CORS_ORIGIN || undefined,
    http2: tls,
    redisUrl: process.env.REDIS_URL || undefined
  })

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      app.log.info({ signal }, 'closing')
      // On Node 24, Fastify's HTTP/2-over-TLS server can wait on a session a client already closed: do not wait forever.
      setTimeout(() => {
        app.log.warn('close is taking more than 3 s: exiting anyway')
        process.exit()
      }, 3000).unref()
      // Closing ends the open streams first, so the process can exit on its own.
      app.close().catch((err: unknown) => {
        app.log.error({ err }, 'close failed')
        process.exitCode = 1
      })
    })
  }

  let address: string
  try {
    address = await app.listen({
      port: Number(process.env.PORT ?? 3000),
      host: process.env.HOST ?? '127.0.0.1'
    })
  } catch (error) {
    // A busy port, say: the generator started with ready() and would keep the process alive.
    await app.close()
    throw error
  }
  if (process.env.REDIS_URL) app.log.info('Redis: every instance started with this REDIS_URL shares the same events; start another with PORT=3001')
  if (process.env.DEMO_CORS_ORIGIN) app.log.info(`CORS: pages from ${process.env.DEMO_CORS_ORIGIN} may use this server`)
  if (tls !== undefined) {
    app.log.info('HTTP/2: the streams of all tabs now share one connection, free of the six-connections-per-host limit of HTTP/1.1')
    if (tls.generated) app.log.info('The certificate is self-signed for localhost: the browser asks once whether to trust it')
  }
  app.log.info(`Open ${address}/ in a browser`)
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)

if (isMain) {
  try {
    await main()
  } catch (error) {
    console.error(error instanceof Error ? error.message : error)
    process.exitCode = 1
  }
}

import { resolve } from 'node:path'
import { fileURLToPath } from 'node:url'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import fastifyStatic from '@fastify/static'
import { nanoid } from 'nanoid'
import pushStream, { type SourceMessage } from '../lib/index.js'

/** The JSON every demo event carries. */
export interface DemoMessage {
  id: string
  text: string
  time: string
}

export interface BuildOptions {
  logger?: FastifyServerOptions['logger']
  /** Milliseconds between messages; `0` sends none on its own (call `app.pushStream.generate()`). Default `3000`. */
  interval?: number
}

const TEXTS = [
  'Hello from the server',
  'Every open tab reads the same broadcast',
  'Pause, wait a little, resume: nothing is lost',
  'Stop the server and start it again to see a reset',
  'A heartbeat keeps idle proxies from closing the stream',
  'Reload the page to start again from now'
]

/** A source that cycles through TEXTS, one message per call. */
export function rotatingMessages (): () => SourceMessage<DemoMessage> {
  let next = 0
  return () => {
    const text = TEXTS[next++ % TEXTS.length] as string
    return { data: { id: nanoid(), text, time: new Date().toISOString() }, channel: 'default' }
  }
}

/** The demo app, configured but not listening. */
export async function build (options: BuildOptions = {}): Promise<FastifyInstance> {
  const app = Fastify({ logger: options.logger ?? false })

  await app.register(fastifyStatic, {
    root: fileURLToPath(new URL('./public/', import.meta.url)),
    prefix: '/'
  })

  await app.register(pushStream, {
    interval: options.interval ?? 3000,
    source: rotatingMessages(),
    heartbeat: 15000,
    history: 1000
  })

  return app
}

const isMain = process.argv[1] !== undefined && resolve(process.argv[1]) === fileURLToPath(import.meta.url)

if (isMain) {
  const app = await build({ logger: true })

  for (const signal of ['SIGINT', 'SIGTERM'] as const) {
    process.once(signal, () => {
      app.log.info({ signal }, 'closing')
      // Closing ends the open streams first, so the process can exit on its own.
      app.close().catch((err: unknown) => {
        app.log.error({ err }, 'close failed')
        process.exitCode = 1
      })
    })
  }

  const address = await app.listen({
    port: Number(process.env.PORT ?? 3000),
    host: process.env.HOST ?? '127.0.0.1'
  })
  app.log.info(`Open ${address}/ in a browser`)
}

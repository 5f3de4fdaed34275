// A push-stream app in a process of its own, so that a test can freeze it (SIGSTOP) or
// stop it and start another. Environment: PORT (0: any), HEARTBEAT, RETRY, and
// REDIS_URL with REDIS_KEY for history that outlives the process. Over IPC it says
// { type: 'ready' } once registered, listens when told { type: 'listen' } (so a test
// can time a restart without the start-up's own delay), says { type: 'listening', port }, and answers { type: 'publish', data, channel? } with
// { type: 'published', id } and { type: 'close' } by closing and exiting.
import { readFile } from 'node:fs/promises'
import Fastify from 'fastify'
import pushStream, { type PushStreamOptions } from '../../lib/index.js'

const env = process.env
const options: PushStreamOptions = {
  interval: 0,
  client: true,
  heartbeat: Number(env.HEARTBEAT ?? 15000),
  retry: Number(env.RETRY ?? 3000)
}
if (env.REDIS_URL !== undefined) {
  const { redisAdapter } = await import('../../lib/redis/index.js')
  options.adapter = redisAdapter({ url: env.REDIS_URL }, { key: env.REDIS_KEY ?? 'push-stream-proxy-test' })
}

const app = Fastify()
const page = await readFile(new URL('../browser/fixtures/index.html', import.meta.url), 'utf8')
app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(page))
await app.register(pushStream, options)
await app.ready()
await new Promise<void>((resolve) => {
  process.on('message', (message: { type: string }) => { if (message.type === 'listen') resolve() })
  process.send?.({ type: 'ready' })
})
await app.listen({ port: Number(env.PORT ?? 0), host: '127.0.0.1' })
const address = app.server.address()
process.send?.({ type: 'listening', port: typeof address === 'object' && address !== null ? address.port : 0 })

process.on('message', (message: { type: string, data?: unknown, channel?: string }) => {
  if (message.type === 'publish') {
    app.pushStream.publish(message.data, message.channel === undefined ? {} : { channel: message.channel })
      .then((event) => process.send?.({ type: 'published', id: event.id }), (err: unknown) => { throw err })
  } else if (message.type === 'close') {
    app.close().then(() => process.exit(0), (err: unknown) => { throw err })
  }
})

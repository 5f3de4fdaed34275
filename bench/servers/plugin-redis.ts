// fastify-push-stream with the Redis Streams adapter: every event goes through Redis and back.
import { randomBytes } from 'node:crypto'
import Fastify from 'fastify'
import { Redis } from 'ioredis'
import pushStream, { type PushStreamAdapter } from '../../dist/index.js'
import { portOf, runServer } from './harness.js'

const REDIS_URL = 'redis://127.0.0.1:6379'

interface RedisModule {
  redisAdapter: (connection: { url: string }, options: { key: string, maxLength: number }) => PushStreamAdapter
}

await runServer(async () => {
  // Loaded by path so this file typechecks before the adapter is built.
  const modulePath = '../../dist/redis/index.js'
  const { redisAdapter } = await import(modulePath) as RedisModule
  const key = `bench:${randomBytes(6).toString('hex')}`
  const app = Fastify()
  await app.register(pushStream, {
    interval: 0,
    maxConnections: 20_000,
    adapter: redisAdapter({ url: REDIS_URL }, { key, maxLength: 10_000 })
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return {
    port: portOf(app.server),
    publish: (event) => app.pushStream.publish(event),
    connections: () => app.pushStream.stats().connections,
    // The adapter does not delete its stream: a benchmark leaves no key behind.
    cleanup: async () => {
      const redis = new Redis(REDIS_URL)
      try {
        await redis.del(key)
      } finally {
        redis.disconnect()
      }
    }
  }
})

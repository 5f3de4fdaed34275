// Presence with the Redis adapter: subscribers(channel) counts the streams on a channel across every instance.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { StreamClient, startApp } from '../helpers/sse.js'
import { waitFor } from '../helpers/wait.js'
import type { Teardown } from '../helpers/teardown.js'
import { loadRedisAdapter, redisUrl, skipUnlessRedis, testClient, testKey } from '../helpers/redis.js'

async function instance (t: Teardown, key: string): Promise<{ app: FastifyInstance, url: string }> {
  const { redisAdapter } = await loadRedisAdapter()
  return await startApp(t, { adapter: redisAdapter({ url: redisUrl }, { key }) })
}

async function stream (t: Teardown, url: string): Promise<StreamClient> {
  const client = new StreamClient(url)
  t.teardown(() => client.close())
  return await client.opened()
}

/** Resolves once `count()` answers `expected`, asking again after each answer; fails after `ms`. */
async function until (count: () => Promise<number>, expected: number, what: string, ms = 10_000): Promise<void> {
  const deadline = performance.now() + ms
  let last: number | undefined
  while (performance.now() < deadline) {
    last = await count()
    if (last === expected) return
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  throw new Error(`timed out waiting for ${what}: ${expected} wanted, ${last} counted`)
}

t.test('subscribers(channel) counts the streams on a channel across three instances, and follows them as they come and go', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const [a, b, c] = [await instance(t, key), await instance(t, key), await instance(t, key)] as [{ app: FastifyInstance, url: string }, { app: FastifyInstance, url: string }, { app: FastifyInstance, url: string }]
  const news = [await stream(t, `${a.url}/events?channel=news`), await stream(t, `${b.url}/events?channel=news&channel=sport`), await stream(t, `${c.url}/events?channel=news`)]
  await stream(t, `${c.url}/events?channel=sport`)
  for (const { app } of [a, b, c]) {
    await until(async () => await app.pushStream.subscribers('news'), 3, 'news on every instance')
    await until(async () => await app.pushStream.subscribers('sport'), 2, 'sport on every instance')
  }
  t.equal(await a.app.pushStream.subscribers('nobody'), 0)
  // Each instance's lag behind the stream, as stats() tells it: none once it has read what was published.
  const { id } = await b.app.pushStream.publish('x', { channel: 'news' })
  await news[0]?.take(1)
  await waitFor(() => a.app.pushStream.stats().lag?.newestId === id, 'A to have seen the stream\'s newest')
  t.same(a.app.pushStream.stats().lag, { deliveredId: id, newestId: id, behind: 0, ms: 0 })
  await t.rejects(async () => await a.app.pushStream.subscribers('no spaces'), { code: 'FST_PUSH_STREAM_INVALID_CHANNEL' })
  news[1]?.close()
  await until(async () => await a.app.pushStream.subscribers('news'), 2, 'one news stream less')
  await until(async () => await a.app.pushStream.subscribers('sport'), 1, 'one sport stream less')
  // An instance that closes takes its counts with it at once.
  await c.app.close()
  await until(async () => await a.app.pushStream.subscribers('news'), 1, 'the closed instance gone')
  // No client's identity is kept: one small hash per instance with streams, channel to count, and the set of instances.
  const redis = testClient(t)
  const keys = await redis.keys(`${key}:presence*`)
  const hashes = await Promise.all(keys.filter((name) => name !== `${key}:presence`).map(async (name) => await redis.hgetall(name)))
  t.same(hashes, [{ news: '1' }], 'A\'s one news stream; B has none left, C is gone')
  t.equal(await redis.zcard(`${key}:presence`), 2, 'two live instances')
})

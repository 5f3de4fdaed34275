// Presence across instances when one dies without closing (kill -9): its counts drop out within seconds.
import t from 'tap'
import { spawnInstance } from './fixtures/spawn.js'
import { StreamClient, startApp } from '../helpers/sse.js'
import { loadRedisAdapter, redisUrl, skipUnlessRedis, testKey } from '../helpers/redis.js'

// The instance that dies runs in a child process under tsx: this file records no coverage (test/coverage-map.js).

t.test('kill -9 of an instance: the streams it held drop out of the count within seconds', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const { child, port } = await spawnInstance(t, 'instance.ts', key, redisUrl)
  const { redisAdapter } = await loadRedisAdapter()
  const { app, url } = await startApp(t, { adapter: redisAdapter({ url: redisUrl }, { key }) })
  const clients = [new StreamClient(`http://127.0.0.1:${port}/events?channel=room`), new StreamClient(`http://127.0.0.1:${port}/events?channel=room`), new StreamClient(`${url}/events?channel=room`)]
  for (const client of clients) {
    t.teardown(() => client.close())
    await client.opened()
  }
  const counted = async (expected: number, ms: number): Promise<number> => {
    const from = performance.now()
    while (performance.now() - from < ms) {
      if (await app.pushStream.subscribers('room') === expected) return performance.now() - from
      await new Promise((resolve) => setTimeout(resolve, 50))
    }
    throw new Error(`the count never came to ${expected} (it is ${await app.pushStream.subscribers('room')})`)
  }
  await counted(3, 10_000)
  child.kill('SIGKILL')
  const took = await counted(1, 10_000)
  t.ok(took < 5000, `the killed instance dropped out ${Math.round(took)} ms after the kill`)
})

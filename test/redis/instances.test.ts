import t from 'tap'
import type { FastifyInstance } from 'fastify'
import type { PushStreamOptions } from '../../lib/index.js'
import { LogCapture } from '../helpers/log.js'
import { StreamClient, openStream, startApp } from '../helpers/sse.js'
import type { Teardown } from '../helpers/teardown.js'
import { waitFor } from '../helpers/wait.js'
import { RedisProxy, loadRedisAdapter, redisUrl, skipUnlessRedis, testKey } from '../helpers/redis.js'

/** `count` apps, each on its own port, sharing the stream `key`. */
async function instances (t: Teardown, key: string, count: number, options: PushStreamOptions = {}): Promise<Array<{ app: FastifyInstance, url: string }>> {
  const { redisAdapter } = await loadRedisAdapter()
  const apps: Array<{ app: FastifyInstance, url: string }> = []
  for (let n = 0; n < count; n++) apps.push(await startApp(t, { ...options, adapter: redisAdapter({ url: redisUrl }, { key }) }))
  return apps
}

function stream (t: Teardown, url: string, headers: Record<string, string> = {}): Promise<StreamClient> {
  const client = new StreamClient(url, headers)
  t.teardown(() => client.close())
  return client.opened()
}

const dataOf = (client: StreamClient): string[] => client.events.map((event) => event.data)

t.test('an event published on one instance reaches the clients of every instance, with the same id, on its channels', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const [a, b, c] = await instances(t, key, 3) as [{ app: FastifyInstance, url: string }, { app: FastifyInstance, url: string }, { app: FastifyInstance, url: string }]
  const clients = await Promise.all([a, b, c].map(async ({ url }) => await stream(t, `${url}/events`)))
  const news = await stream(t, `${b.url}/events?channel=news`)
  const published = []
  for (let n = 0; n < 10; n++) {
    const from = [a, b, c][n % 3] as { app: FastifyInstance }
    published.push(await from.app.pushStream.publish(`m${n}`, n % 4 === 0 ? { channel: 'news', event: 'headline' } : {}))
  }
  const defaults = published.filter((event) => event.channel === 'default')
  for (const client of clients) {
    await client.take(defaults.length)
    t.same(client.events.map((event) => [event.id, event.data]), defaults.map((event) => [event.id, event.data]))
  }
  const headlines = published.filter((event) => event.channel === 'news')
  await news.take(headlines.length)
  t.same(news.events.map((event) => [event.id, event.event, event.data]), headlines.map((event) => [event.id, 'headline', event.data]))
  t.same([a, b, c].map(({ app }) => app.pushStream.stats().published), [4, 3, 3], 'each instance counts what it published')
})

t.test('a client that leaves A and comes back on B with its last id gets exactly what it missed, then live events', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const [a, b] = await instances(t, key, 2)
  if (a === undefined || b === undefined) throw new Error('two instances')
  const first = await stream(t, `${a.url}/events`)
  for (let n = 1; n <= 3; n++) await a.app.pushStream.publish(`e${n}`)
  await first.take(3)
  const lastId = first.events[2]?.id as string
  first.close()
  await waitFor(() => a.app.pushStream.stats().connections === 0, 'the client to leave A')
  // A client of B shows when B has the next events in its own history.
  const watcher = await stream(t, `${b.url}/events`)
  for (let n = 4; n <= 6; n++) await a.app.pushStream.publish(`e${n}`)
  await watcher.take(3)
  const again = await stream(t, `${b.url}/events`, { 'last-event-id': lastId })
  await b.app.pushStream.publish('e7')
  await again.take(4)
  t.same(dataOf(again), ['e4', 'e5', 'e6', 'e7'])
  t.equal(again.raw.includes('event: reset'), false)

  // An instance started after those events has none of them in its history: it asks Redis.
  const [late] = await instances(t, key, 1)
  if (late === undefined) throw new Error('a late instance')
  const resumed = await stream(t, `${late.url}/events`, { 'last-event-id': lastId })
  await resumed.take(4)
  t.same(dataOf(resumed), ['e4', 'e5', 'e6', 'e7'])
  t.equal(resumed.raw.includes('event: reset'), false)
  await a.app.pushStream.publish('e8')
  await resumed.take(5)
  t.same(dataOf(resumed).slice(4), ['e8'])
  t.match(late.app.pushStream.stats(), { replayed: 4, resets: 0 })

  // An id Redis no longer holds (or never issued) gets a reset on any instance.
  const stale = await stream(t, `${late.url}/events`, { 'last-event-id': '1-0' })
  await stale.until(() => stale.raw.includes('event: reset'), 'a reset')
  t.same(stale.events.map((event) => event.event), ['reset'])
})

t.test('the generator runs on one instance of three, one message per interval, and moves when its holder closes', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const { redisAdapter } = await loadRedisAdapter()
  const apps: Array<{ app: FastifyInstance, url: string, name: string }> = []
  for (const name of ['a', 'b', 'c']) {
    let n = 0
    const source = (): unknown => ({ from: name, n: n++ })
    const { app, url } = await startApp(t, { interval: 300, source, adapter: redisAdapter({ url: redisUrl }, { key }) })
    apps.push({ app, url, name })
  }
  const clients = await Promise.all(apps.map(async ({ url }) => await stream(t, `${url}/events`)))
  const [watch] = clients as [StreamClient]
  const from = (client: StreamClient, start = 0): string[] => client.events.slice(start).map((event) => (JSON.parse(event.data) as { from: string }).from)
  await watch.take(10)
  const holder = from(watch)[9] as string
  t.same(new Set(from(watch, 2)), new Set([holder]), `one instance (${holder}) generates`)
  const times = await timesOf(watch, 10, 10)
  const span = (times.at(-1) as number) - (times[0] as number)
  t.ok(span >= 9 * 300 * 0.8 && span <= 9 * 300 * 1.6, `10 messages took ${span} ms: one per interval across three instances`)

  // The holder closes: it gives the lease back, and another instance takes it within a few seconds.
  const gone = apps.find(({ name }) => name === holder) as { app: FastifyInstance }
  const others = clients.filter((_client, index) => apps[index]?.name !== holder)
  const other = others[0] as StreamClient
  const before = other.events.length
  const closedAt = Date.now()
  await gone.app.close()
  await other.until(() => from(other, before).some((name) => name !== holder), 'another instance to generate')
  const tookOver = Date.now() - closedAt
  t.ok(tookOver < 3000, `taken over ${tookOver} ms after the holder closed`)
  const next = from(other, before).find((name) => name !== holder) as string
  const start = other.events.length
  await other.take(start + 6)
  t.same(new Set(from(other, start)), new Set([next]), 'and only one instance generates again')
  for (const client of others) {
    await client.take(start + 6)
  }
  t.same(others[1]?.events.slice(0, start + 6).map((event) => event.id), other.events.slice(0, start + 6).map((event) => event.id), 'both remaining instances sent the same events')
})

/** The arrival times of `count` more events after the first `skip`. */
async function timesOf (client: StreamClient, skip: number, count: number): Promise<number[]> {
  const times: number[] = []
  for (let n = skip; n < skip + count; n++) {
    await client.take(n + 1)
    times.push(Date.now())
  }
  return times
}

t.test('an app whose Redis cannot be reached fails to start with the named error', skipUnlessRedis, async (t) => {
  const { redisAdapter } = await loadRedisAdapter()
  await t.rejects(startApp(t, { adapter: redisAdapter({ url: 'redis://127.0.0.1:1' }) }), { code: 'FST_PUSH_STREAM_ADAPTER_UNAVAILABLE' })
})

t.test('publish while Redis is away rejects with the named error; the streams stay open', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const proxy = await RedisProxy.start(t)
  const { redisAdapter } = await loadRedisAdapter()
  const log = new LogCapture()
  const { app, url } = await startApp(t, { adapter: redisAdapter({ url: proxy.url }, { key }) }, undefined, { logger: log.logger })
  const client = await openStream(`${url}/events`)
  t.teardown(() => client.close())
  await app.pushStream.publish('before')
  await client.take(1)
  proxy.cut()
  // Sent in the same moment, before the adapter knows: its answer can no longer come, so its outcome is unknown.
  await t.rejects(Promise.resolve(app.pushStream.publish('cut')), { code: 'FST_PUSH_STREAM_PUBLISH_UNCONFIRMED', message: /max retries/ })
  // Once the adapter knows Redis is away, nothing is sent: the publish is refused as not stored.
  await waitFor(() => log.lines.some((line) => /lost the connection to Redis/.test(line.msg)), 'the outage to be noticed')
  await t.rejects(Promise.resolve(app.pushStream.publish('during')), { code: 'FST_PUSH_STREAM_ADAPTER_UNAVAILABLE' })
  t.equal(client.isEnded, false, 'the stream is still open')
  proxy.restore()
  // Reconnecting takes a moment (backoff): publish is retried, as an app would, a bounded number of times.
  for (let attempt = 0; attempt < 50; attempt++) {
    const ok = await Promise.resolve(app.pushStream.publish('after')).then(() => true, () => false)
    if (ok) break
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  await client.until(() => dataOf(client).includes('after'), 'the event after the outage')
  t.equal(dataOf(client)[0], 'before')
  t.equal(dataOf(client).includes('during'), false)
})

// Events that leave the Redis stream before an instance read them: trimmed while it was cut off, lost in a
// restart without persistence, flushed. Its clients get a reset where the gap is, then every event after it.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import { Redis } from 'ioredis'
import { diagnostics } from '../../lib/diagnostics.js'
import { LogCapture } from '../helpers/log.js'
import { StreamClient, startApp } from '../helpers/sse.js'
import type { Teardown } from '../helpers/teardown.js'
import { waitFor } from '../helpers/wait.js'
import { OwnRedis, RedisProxy, loadRedisAdapter, redisUrl, skipUnlessRedis, testKey } from '../helpers/redis.js'

const LOST = '{"reason":"events-lost"}'

interface Instance { app: FastifyInstance, url: string, log: LogCapture }

/** An app on the stream `key` of the Redis at `url`, with its log kept. */
async function instance (t: Teardown, url: string, key: string, maxLength?: number): Promise<Instance> {
  const { redisAdapter } = await loadRedisAdapter()
  const log = new LogCapture()
  const { app, url: origin } = await startApp(t, { adapter: redisAdapter({ url }, { key, maxLength }) }, undefined, { logger: log.logger })
  return { app, url: origin, log }
}

async function stream (t: Teardown, url: string): Promise<StreamClient> {
  const client = new StreamClient(`${url}/events`)
  t.teardown(() => client.close())
  return await client.opened()
}

/** Waits until the instance's log says its connection to Redis dropped. */
async function noticedOutage (instance: Instance): Promise<void> {
  await waitFor(() => instance.log.lines.some((line) => /lost the connection to Redis/.test(line.msg)), 'the outage to be noticed')
}

/**
 * Two instances on the stream `key` of the Redis at `url`: A behind a proxy the test can cut, B on it
 * directly; a client on each, and one event both clients have.
 */
async function apart (t: Teardown, url: string, key: string, maxLength?: number): Promise<{ proxy: RedisProxy, a: Instance, b: Instance, onA: StreamClient, onB: StreamClient }> {
  const proxy = await RedisProxy.start(t, new URL(url))
  const a = await instance(t, proxy.url, key, maxLength)
  const b = await instance(t, url, key, maxLength)
  const onA = await stream(t, a.url)
  const onB = await stream(t, b.url)
  await b.app.pushStream.publish('before')
  await onA.take(1)
  await onB.take(1)
  return { proxy, a, b, onA, onB }
}

/** The same on a redis-server of the test's own, which it may restart or flush. */
async function onOwnRedis (t: Teardown): Promise<{ redis: OwnRedis, proxy: RedisProxy, a: Instance, b: Instance, onA: StreamClient, onB: StreamClient }> {
  const redis = await OwnRedis.start(t)
  return { redis, ...await apart(t, redis.url, 'gaps') }
}

const dataOf = (client: StreamClient): string[] => client.events.map((event) => event.event === 'reset' ? `reset ${event.data}` : event.data)

t.test('entries trimmed while an instance was cut off: its clients get a reset where the gap is, then every entry kept after it', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const { proxy, a, b, onA, onB } = await apart(t, redisUrl, key, 10)
  proxy.cut()
  await noticedOutage(a)
  // Far more than maxLength: the stream is trimmed past everything A has not read.
  for (let n = 0; n < 400; n++) await b.app.pushStream.publish(`away ${n}`)
  await onB.take(401)
  const inspect = new Redis(redisUrl)
  t.teardown(() => inspect.disconnect())
  const entries = await inspect.xrange(key, '-', '+')
  const kept = entries.map(([, fields]) => fields[fields.indexOf('data') + 1])
  const [ms, seq] = (entries[0]?.[0] as string).split('-').map(Number) as [number, number]
  t.ok(kept.length < 400 && kept.length > 0 && kept[0] !== 'away 0', `the stream kept the last ${kept.length} of the 400`)
  proxy.restore()
  await b.app.pushStream.publish('live')
  await onA.take(3 + kept.length)
  t.same(dataOf(onA), ['before', `reset ${LOST}`, ...kept, 'live'], 'before, the reset, what the stream still holds, live: nothing twice')
  t.equal(onA.events[1]?.id, seq > 0 ? `${ms}-${seq - 1}` : `${ms - 1}-999999999`, 'the reset carries an id just before the first entry kept, which no event had')
  t.same(dataOf(onB), ['before', ...Array.from({ length: 400 }, (_, n) => `away ${n}`), 'live'], 'the instance that read them got every one, and no reset')
  t.match(a.app.pushStream.stats(), { resets: 1 })
  const line = a.log.lines.find((line) => /trimmed from the shared log/.test(line.msg))
  t.match(line, { level: 40, reason: 'trimmed', after: onA.events[0]?.id, clients: 1 }, 'logged once, with the gap and how many clients got the reset')

  // A client that comes back with an id from before the gap cannot be given a replay that skips it.
  const back = new StreamClient(`${a.url}/events`, { 'last-event-id': onA.events[0]?.id as string })
  t.teardown(() => back.close())
  await back.take(1)
  t.equal(back.events[0]?.event, 'reset')
})

t.test('an instance that reconnects with nothing lost gets no reset; the outage and the recovery reach diagnostics_channel', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const outages: unknown[] = []
  const recoveries: unknown[] = []
  const onOutage = (message: unknown): void => { outages.push(message) }
  const onRecovery = (message: unknown): void => { recoveries.push(message) }
  diagnostics.adapterOutage.subscribe(onOutage)
  diagnostics.adapterRecovery.subscribe(onRecovery)
  t.teardown(() => {
    diagnostics.adapterOutage.unsubscribe(onOutage)
    diagnostics.adapterRecovery.unsubscribe(onRecovery)
  })
  const { proxy, a, b, onA } = await apart(t, redisUrl, key)
  proxy.cut()
  await noticedOutage(a)
  for (let n = 0; n < 5; n++) await b.app.pushStream.publish(`away ${n}`)
  proxy.restore()
  await onA.take(6)
  await b.app.pushStream.publish('live')
  await onA.take(7)
  t.same(dataOf(onA), ['before', 'away 0', 'away 1', 'away 2', 'away 3', 'away 4', 'live'])
  t.match(a.app.pushStream.stats(), { resets: 0 })
  await waitFor(() => recoveries.length === 1, 'the recovery')
  t.match(outages, [{ key, connection: /^(commands|reader)$/, code: String, cause: String }])
  t.match(recoveries, [{ key, outageMs: Number }])
})

t.test('Redis restarted without persistence while an instance was away: a reset, then what was published after the restart', skipUnlessRedis, async (t) => {
  const { redis, proxy, a, b, onA, onB } = await onOwnRedis(t)
  proxy.cut()
  await noticedOutage(a)
  await b.app.pushStream.publish('lost with the restart')
  await onB.take(2)
  await redis.restart()
  await waitFor(() => b.log.lines.some((line) => /reconnected to Redis/.test(line.msg)), 'B to reconnect to the new Redis')
  await b.app.pushStream.publish('after the restart')
  proxy.restore()
  await b.app.pushStream.publish('live')
  await onA.take(4)
  t.same(dataOf(onA), ['before', `reset ${LOST}`, 'after the restart', 'live'], 'A missed one event: a reset takes its place')
  t.match(a.log.lines.find((line) => /lost events this instance had not read/.test(line.msg)), { level: 40, reason: 'lost', clients: 1 })
  // A client that left after the first event, back with the id it held: told, not given a replay across the gap.
  const back = new StreamClient(`${a.url}/events`, { 'last-event-id': onA.events[0]?.id as string })
  t.teardown(() => back.close())
  await back.take(1)
  t.same(dataOf(back), ['reset {"reason":"unknown-last-event-id"}'])
  // B read what it published before the restart; the restart still lost the history its clients could resume from.
  await onB.take(5)
  t.same(dataOf(onB), ['before', 'lost with the restart', `reset ${LOST}`, 'after the restart', 'live'])
})

t.test('Redis flushed, while an instance was away and while it was connected: a reset, and nothing read twice', skipUnlessRedis, async (t) => {
  const { redis, proxy, a, b, onA, onB } = await onOwnRedis(t)

  proxy.cut()
  await noticedOutage(a)
  await b.app.pushStream.publish('flushed')
  await onB.take(2)
  await redis.flushAll()
  await b.app.pushStream.publish('after the flush')
  await onB.take(4)
  t.same(dataOf(onB).slice(0, 2), ['before', 'flushed'])
  // B was reading when the flush came: it finds it at its next read, which may come after the event that followed.
  t.same(dataOf(onB).slice(2).sort(), [`reset ${LOST}`, 'after the flush'].sort(), 'B: the event after the flush, and a reset')
  proxy.restore()
  await onA.take(3)
  t.same(dataOf(onA), ['before', `reset ${LOST}`, 'after the flush'], 'A: a reset where the flushed event was')

  // Connected this time: the flush is found at the next read, and the event after it comes once.
  await redis.flushAll()
  await b.app.pushStream.publish('after the second flush')
  await onA.take(5)
  await onB.take(6)
  for (const [name, client] of [['A', onA], ['B', onB]] as const) {
    t.same(dataOf(client).slice(-2).sort(), [`reset ${LOST}`, 'after the second flush'].sort(), `${name}: the event after the flush once, and a reset`)
  }
  await b.app.pushStream.publish('live')
  await onA.take(6)
  await onB.take(7)
  t.equal(dataOf(onA).at(-1), 'live')
  t.equal(dataOf(onB).at(-1), 'live')
  t.equal(dataOf(onA).filter((data) => data === 'after the second flush').length, 1, 'nothing twice')
})

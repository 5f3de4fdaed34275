import t from 'tap'
import type { PushStreamAdapter } from '../../lib/adapter.js'
import type { Teardown } from '../helpers/teardown.js'
import {
  RecordingContext, RedisProxy, killClients, loadRedisAdapter, redisUrl, skipUnlessRedis, testClient, testKey
} from '../helpers/redis.js'

const sleep = async (ms: number): Promise<void> => { await new Promise((resolve) => setTimeout(resolve, ms)) }

async function started (t: Teardown, url: string, key: string, options = {}): Promise<{ adapter: PushStreamAdapter, context: RecordingContext }> {
  const { redisAdapter } = await loadRedisAdapter()
  const adapter = redisAdapter({ url }, { key, ...options })
  t.teardown(() => adapter.close())
  const context = new RecordingContext()
  await adapter.start(context)
  return { adapter, context }
}

t.test('CLIENT KILL of the adapters\' connections while events are published at a steady rate: every event delivered once, in order', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const redis = testClient(t)
  const publisher = testClient(t)
  const a = await started(t, redisUrl, key)
  const b = await started(t, redisUrl, key)
  // Another instance publishes every 5 ms; `a` publishes too, every 20 ms, and may be refused while its connection is down.
  const published: string[] = []
  const steady = (async () => {
    for (let n = 0; n < 600; n++) {
      published.push(await publisher.xadd(key, '*', 'channel', 'default', 'data', `p${n}`) as string)
      await sleep(5)
    }
  })()
  let ownOk = 0
  let ownRefused = 0
  const own = (async () => {
    for (let n = 0; n < 150; n++) {
      try {
        await a.adapter.publish({ channel: 'news', event: 'own', data: `a${n}` })
        ownOk++
      } catch (error) {
        // Not sent (the adapter knew the connection was down), or sent as it was killed (the outcome unknown).
        t.match((error as { code?: string }).code, /^FST_PUSH_STREAM_(ADAPTER_UNAVAILABLE|PUBLISH_UNCONFIRMED)$/)
        ownRefused++
      }
      await sleep(20)
    }
  })()
  let kills = 0
  for (let round = 0; round < 3; round++) {
    await sleep(600)
    kills += await killClients(redis, `push-stream:${key}:reader`)
    kills += await killClients(redis, `push-stream:${key}:commands`)
  }
  t.equal(kills, 12, 'two connections of two adapters killed three times')
  await Promise.all([steady, own])
  const truth = (await redis.xrange(key, '-', '+')).map(([id]) => id)
  t.ok(truth.length >= 600 + ownOk, 'the stream holds every event stored (a refused XADD may have been stored too)')
  for (const { context } of [a, b]) {
    await context.until(() => context.events.length >= truth.length, 'every event', 20_000)
    t.same(context.ids, truth, 'every entry delivered once, in stream order')
    t.ok(published.every((id) => context.ids.includes(id)), 'including every event the other instance published')
    t.equal(context.logged('warn').length, 3, 'one warning per outage')
    t.equal(context.logged('info').length, 3, 'one recovery per outage')
    t.match(context.logged('warn')[0], { obj: { key }, msg: /lost the connection to Redis; reconnecting/ })
    t.match(context.logged('warn')[0], { obj: { code: /^[A-Z_]+$/, cause: /./ } }, 'the warning names its cause')
    t.ok(context.logged('info').every((line) => typeof (line.obj as { outageMs?: unknown }).outageMs === 'number'), 'each recovery says how long the outage lasted')
  }
  t.comment(`own publishes: ${ownOk} stored, ${ownRefused} refused while the connection was down`)
})

t.test('an outage (Redis unreachable for a while): publish and replay reject with the named error, lease is false, then everything published meanwhile arrives', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const redis = testClient(t)
  const proxy = await RedisProxy.start(t)
  const { adapter, context } = await started(t, proxy.url, key)
  const before = await adapter.publish({ channel: 'default', event: undefined, data: 'before' })
  await context.until(() => context.events.length === 1, 'the first event')
  t.equal(await adapter.lease('generator', 5000), true)

  proxy.cut()
  await context.until(() => context.logged('warn').length === 1, 'the outage to be logged')
  const asked = Date.now()
  await t.rejects(adapter.publish({ channel: 'default', event: undefined, data: 'refused' }), { code: 'FST_PUSH_STREAM_ADAPTER_UNAVAILABLE', statusCode: 503 })
  t.ok(Date.now() - asked < 100, 'publish fails fast')
  await t.rejects(adapter.replay(before, before, new Set(['default'])), { code: 'FST_PUSH_STREAM_ADAPTER_UNAVAILABLE' })
  t.equal(await adapter.lease('generator', 5000), false)
  // Other instances go on publishing straight to Redis meanwhile.
  const meanwhile: string[] = []
  for (let n = 0; n < 20; n++) meanwhile.push(await redis.xadd(key, '*', 'channel', 'default', 'data', `m${n}`) as string)
  await sleep(700)
  t.equal(context.logged('warn').length, 1, 'several failed reconnects, one warning')

  proxy.restore()
  await context.until(() => context.events.length === 21, 'what was published during the outage', 10_000)
  t.same(context.ids, [before, ...meanwhile])
  await context.until(() => context.logged('info').length === 1, 'the recovery to be logged')
  t.match(context.logged('info')[0], { obj: { key }, msg: /reconnected to Redis/ })
  const outage = context.logged('info')[0]?.obj as { outageMs: number }
  t.ok(outage.outageMs >= 700, `the recovery says how long the outage lasted (${outage.outageMs} ms)`)
  const lost = context.logged('warn')[0]?.obj as { code: string, cause: string }
  t.match(lost, { code: /^[A-Z_]+$/, cause: /./ }, `the warning names its cause (${lost.code}: ${lost.cause})`)
  const after = await adapter.publish({ channel: 'default', event: undefined, data: 'after' })
  await context.until(() => context.events.length === 22, 'the event after the outage')
  t.equal(context.ids.at(-1), after)
  t.equal(context.logged('warn').length, 1)
})

t.test('Redis that stops answering: commands fail after commandTimeout; close does not hang', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const proxy = await RedisProxy.start(t)
  const { adapter, context } = await started(t, proxy.url, key, { commandTimeout: 300 })
  proxy.hold()
  const asked = Date.now()
  // Sent and not answered: not said to be lost, since Redis may still store it (and here it does).
  await t.rejects(adapter.publish({ channel: 'default', event: undefined, data: 'late' }), {
    code: 'FST_PUSH_STREAM_PUBLISH_UNCONFIRMED',
    message: /no answer from Redis within 300 ms/
  })
  t.ok(Date.now() - asked < 1000)
  t.equal(await adapter.lease('generator', 5000), false)
  // The XADD reached Redis: once its answer comes, the event is delivered like any other.
  proxy.release()
  await context.until(() => context.events.length === 1, 'the late event')
  t.equal(context.events[0]?.data, 'late')
  proxy.hold()
  const closing = Date.now()
  await adapter.close()
  t.ok(Date.now() - closing < 1000, 'close did not wait for Redis')
})

t.test('close during an outage returns at once', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const proxy = await RedisProxy.start(t)
  const { adapter, context } = await started(t, proxy.url, key)
  proxy.cut()
  await context.until(() => context.logged('warn').length === 1, 'the outage')
  const closing = Date.now()
  await adapter.close()
  t.ok(Date.now() - closing < 500, 'closed without waiting for Redis')
  t.equal(context.logged('info').length, 0)
})

t.test('a Redis that cannot be reached: start and publish reject with the named error; lease is false', skipUnlessRedis, async (t) => {
  const { redisAdapter } = await loadRedisAdapter()
  const adapter = redisAdapter({ url: 'redis://127.0.0.1:1' }, { key: 'never-used' })
  const context = new RecordingContext()
  await t.rejects(adapter.start(context), { code: 'FST_PUSH_STREAM_ADAPTER_UNAVAILABLE', message: /Redis did not answer: .*ECONNREFUSED/ })
  await t.rejects(adapter.publish({ channel: 'default', event: undefined, data: 'x' }), { code: 'FST_PUSH_STREAM_ADAPTER_UNAVAILABLE' })
  t.equal(await adapter.lease('generator', 1000), false)
  await adapter.close()
  t.same(context.lines, [], 'a failed start is reported by its rejection, not logged')
})

import t from 'tap'
import type { PushStreamAdapter } from '../../lib/adapter.js'
import type { Teardown } from '../helpers/teardown.js'
import { RecordingContext, loadRedisAdapter, redisUrl, skipUnlessRedis, testClient, testKey } from '../helpers/redis.js'

const all = new Set(['default', 'news', 'alerts'])

async function started (t: Teardown, key: string, options = {}): Promise<{ adapter: PushStreamAdapter, context: RecordingContext, startId: string }> {
  const { redisAdapter } = await loadRedisAdapter()
  const adapter = redisAdapter({ url: redisUrl }, { key, ...options })
  t.teardown(() => adapter.close())
  const context = new RecordingContext()
  const startId = await adapter.start(context)
  return { adapter, context, startId }
}

t.test('options are checked when the adapter is made, with the named error', skipUnlessRedis, async (t) => {
  const { redisAdapter, redisDefaults } = await loadRedisAdapter()
  t.same(redisDefaults, { key: 'push-stream', maxLength: 10000, commandTimeout: 5000 })
  const bad: Array<[unknown, unknown, RegExp]> = [
    [undefined, {}, /"connection": got undefined, expected \{ url/],
    [{ url: 'http://127.0.0.1:6379' }, {}, /"connection": got an object/],
    [{ client: {} }, {}, /"connection"/],
    [{ url: redisUrl }, { key: '' }, /"key": got "", expected a non-empty string/],
    [{ url: redisUrl }, { key: 7 }, /"key": got number 7/],
    [{ url: redisUrl }, { maxLength: 0 }, /"maxLength": got number 0, expected an integer from 1 to 1000000000/],
    [{ url: redisUrl }, { maxLength: 1.5 }, /"maxLength"/],
    [{ url: redisUrl }, { commandTimeout: '5' }, /"commandTimeout": got "5"/]
  ]
  for (const [connection, options, message] of bad) {
    t.throws(() => redisAdapter(connection as { url: string }, options as object), { code: 'FST_PUSH_STREAM_INVALID_OPTION', message })
  }
  // Undefined options fall back to the defaults; nothing connects until start().
  const adapter = redisAdapter({ url: 'rediss://127.0.0.1:1' }, { key: undefined, maxLength: undefined })
  await adapter.close()
  await adapter.close()
})

t.test('start answers the end of the stream; published events are delivered in order, exactly once, with their ids', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const redis = testClient(t)
  const a = await started(t, key)
  t.equal(a.startId, '0-0', 'an empty (absent) stream starts at 0-0')
  const ids: string[] = []
  for (let n = 0; n < 50; n++) {
    ids.push(await a.adapter.publish({ channel: n % 2 === 0 ? 'default' : 'news', event: n % 5 === 0 ? 'tick' : undefined, data: `m${n}` }))
  }
  await a.context.until(() => a.context.events.length >= 50, '50 events')
  t.same(a.context.ids, ids)
  t.same(a.context.events[0], { id: ids[0], channel: 'default', event: 'tick', data: 'm0' })
  t.same(a.context.events[1], { id: ids[1], channel: 'news', event: undefined, data: 'm1' })
  // On the stream, an unnamed event has no event field at all.
  t.same(await redis.xrange(key, ids[1] as string, ids[1] as string), [[ids[1], ['channel', 'news', 'data', 'm1']]])

  // A second instance starts at the current end and sees only what comes after.
  const b = await started(t, key)
  t.equal(b.startId, ids.at(-1))
  const next = await b.adapter.publish({ channel: 'alerts', event: undefined, data: 'from b' })
  await a.context.until(() => a.context.events.length === 51, 'the 51st event on a')
  await b.context.until(() => b.context.events.length === 1, 'the event on b')
  t.same(b.context.ids, [next])
  t.equal(a.context.ids.at(-1), next)
})

t.test('MAXLEN ~ keeps the stream near maxLength', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const redis = testClient(t)
  const { adapter, context } = await started(t, key, { maxLength: 100 })
  for (let n = 0; n < 1000; n++) await adapter.publish({ channel: 'default', event: undefined, data: String(n) })
  await context.until(() => context.events.length === 1000, '1000 events')
  const length = await redis.xlen(key)
  t.ok(length >= 100 && length < 300, `length ${length} is near 100`)
})

t.test('replay: after a held id, channels filtered; null for trimmed, never issued, future and malformed ids', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const redis = testClient(t)
  const { adapter, context } = await started(t, key)
  const ids: string[] = []
  for (const [channel, data] of [['default', 'a'], ['news', 'b'], ['default', 'c'], ['alerts', 'd'], ['default', 'e']]) {
    ids.push(await adapter.publish({ channel: channel as string, event: undefined, data: data as string }))
  }
  await context.until(() => context.events.length === 5, '5 events')
  const [first, second, third, , fifth] = ids as [string, string, string, string, string]
  t.same((await adapter.replay(first, fifth, all))?.map((e) => e.data), ['b', 'c', 'd', 'e'])
  t.same((await adapter.replay(first, fifth, new Set(['default'])))?.map((e) => e.data), ['c', 'e'])
  t.same((await adapter.replay(second, third, all))?.map((e) => e.data), ['c'], 'up to and including until')
  t.same(await adapter.replay(fifth, fifth, all), [], 'up to date: nothing to replay')
  const [ms, seq] = second.split('-') as [string, string]
  t.equal(await adapter.replay(`${ms}-${Number(seq) + 1000}`, fifth, all), null, 'an id the stream never issued')
  t.equal(await adapter.replay(`${Number(fifth.split('-')[0]) + 60_000}-0`, fifth, all), null, 'an id from the future')
  for (const malformed of ['', 'abc', '1-2-3', '-', '+', `${'9'.repeat(16)}-0`, '1-0\n']) {
    t.equal(await adapter.replay(malformed, fifth, all), null, `malformed ${JSON.stringify(malformed)}`)
  }
  // A client ahead of this instance's history (it came from a quicker instance) is valid: nothing to replay up to `until`.
  t.same(await adapter.replay(fifth, third, all), [])
  t.equal(await adapter.replay(`${ms}-${Number(seq) + 1000}`, first, all), null, 'ahead, but never issued')

  // '0-0' (a fresh client of an empty stream) replays everything while nothing was ever trimmed.
  t.same((await adapter.replay('0-0', fifth, all))?.map((e) => e.data), ['a', 'b', 'c', 'd', 'e'])
  t.same((await adapter.replay('0-0', third, new Set(['news'])))?.map((e) => e.data), ['b'])
  await redis.xtrim(key, 'MAXLEN', 3)
  t.equal(await adapter.replay('0-0', fifth, all), null, 'after a trim, 0-0 cannot be answered for')
  t.equal(await adapter.replay(first, fifth, all), null, 'a trimmed id')
  t.same((await adapter.replay(third, fifth, all))?.map((e) => e.data), ['d', 'e'], 'the oldest id still held')
})

t.test('replay of 0-0 when the stream does not exist yet; entries written by someone else are skipped', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const redis = testClient(t)
  const { adapter, context } = await started(t, key)
  t.same(await adapter.replay('0-0', '0-0', all), [])
  const foreign = await redis.xadd(key, '*', 'other', 'thing') as string
  const half = await redis.xadd(key, '*', 'channel', 'default') as string
  const own = await adapter.publish({ channel: 'default', event: 'e', data: 'mine' })
  await context.until(() => context.events.length === 1, 'the own event')
  t.same(context.ids, [own], 'only the entry the adapter can read is delivered')
  t.same((await adapter.replay('0-0', own, all))?.map((e) => e.id), [own])
  t.same((await adapter.replay(foreign, own, all))?.map((e) => e.id), [own])
  t.same(await adapter.replay(foreign, half, all), [])
})

t.test('a fresh stream that other writers already filled: start answers its newest id', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const redis = testClient(t)
  await redis.xadd(key, '*', 'channel', 'default', 'data', 'old 1')
  const newest = await redis.xadd(key, '*', 'channel', 'default', 'data', 'old 2') as string
  const { adapter, context, startId } = await started(t, key)
  t.equal(startId, newest)
  const id = await adapter.publish({ channel: 'default', event: undefined, data: 'new' })
  await context.until(() => context.events.length === 1, 'the new event')
  t.same(context.ids, [id], 'what was there before start is not delivered')
  t.same((await adapter.replay(startId, id, all))?.map((e) => e.data), ['new'])
})

t.test('a deliver that throws is logged; the events are not delivered again and the next ones follow', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const { adapter, context } = await started(t, key)
  let failures = 1
  context.onDeliver = () => {
    if (failures-- > 0) throw new Error('subscriber broke')
  }
  await adapter.publish({ channel: 'default', event: undefined, data: 'lost' })
  await context.until(() => context.logged('error').length === 1, 'the error to be logged')
  t.match(context.logged('error')[0], { obj: { err: { message: 'subscriber broke' } }, msg: /delivering events from Redis failed/ })
  const id = await adapter.publish({ channel: 'default', event: undefined, data: 'next' })
  await context.until(() => context.events.length === 1, 'the next event')
  t.same(context.ids, [id])
})

t.test('a key that holds something else than a stream: the tailer says so once and reads again once it is a stream', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const redis = testClient(t)
  const { context } = await started(t, key)
  await redis.set(key, 'not a stream')
  await context.until(() => context.logged('error').length === 1, 'the refusal to be logged', 15_000)
  t.match(context.logged('error')[0], { obj: { key }, msg: /Redis refused to read the stream/ })
  await redis.del(key)
  const id = await redis.xadd(key, '*', 'channel', 'default', 'data', 'back') as string
  await context.until(() => context.events.length === 1, 'the event after the key is a stream again', 15_000)
  t.same(context.ids, [id])
  t.equal(context.logged('error').length, 1, 'said once')
})

t.test('a gap the plugin fails to take is logged, and the tail reads on after it', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const redis = testClient(t)
  const { adapter, context } = await started(t, key)
  const record = context.lost
  context.lost = (gap) => {
    record(gap)
    throw new Error('the plugin failed')
  }
  const message = (data: string): { channel: string, event: undefined, data: string } => ({ channel: 'default', event: undefined, data })
  const first = await adapter.publish(message('one'))
  await context.until(() => context.events.length === 1, 'the first event')
  // The epoch goes, as in a flush: the next read finds it.
  await redis.del(`${key}:epoch`)
  const second = await adapter.publish(message('two'))
  await context.until(() => context.gaps.length === 1, 'the gap')
  t.match(context.gaps, [{ after: second, reason: 'lost' }])
  t.match(context.logged('error'), [{ msg: /telling the clients of a gap in the Redis stream failed/ }])
  const third = await adapter.publish(message('three'))
  await context.until(() => context.events.length === 3, 'the event after the gap')
  t.same(context.ids, [first, second, third])
  t.equal(await redis.get(`${key}:epoch`) !== null, true, 'a new epoch was made')
})

t.test('start twice is refused; publish before start and after close rejects with the named error; lease answers false', skipUnlessRedis, async (t) => {
  const { redisAdapter } = await loadRedisAdapter()
  const key = testKey(t)
  const adapter = redisAdapter({ url: redisUrl }, { key })
  const message = { channel: 'default', event: undefined, data: 'x' }
  await t.rejects(adapter.publish(message), { code: 'FST_PUSH_STREAM_ADAPTER_UNAVAILABLE', message: /not started/ })
  t.equal(adapter.lag?.(), undefined, 'no lag before it reads')
  const context = new RecordingContext()
  await adapter.start(context)
  await t.rejects(adapter.start(context), { code: 'FST_PUSH_STREAM_INVALID_OPTION', message: /only be started once/ })
  t.equal(await adapter.lease('generator', 1000), true)
  await adapter.close()
  await t.rejects(adapter.publish(message), { code: 'FST_PUSH_STREAM_ADAPTER_UNAVAILABLE', message: /closed/ })
  await t.rejects(adapter.replay('1-0', '2-0', all), { code: 'FST_PUSH_STREAM_ADAPTER_UNAVAILABLE', message: /replay from Redis failed: the Redis adapter is closed/ })
  t.equal(await adapter.lease('generator', 1000), false)
})

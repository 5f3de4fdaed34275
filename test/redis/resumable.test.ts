import t from 'tap'
import type { FastifyInstance } from 'fastify'
import type { PushStreamOptions, StreamSource } from '../../lib/index.js'
import { openStream, request, startApp } from '../helpers/sse.js'
import type { Teardown } from '../helpers/teardown.js'
import { waitFor } from '../helpers/wait.js'
import { loadRedisAdapter, redisUrl, skipUnlessRedis, testClient, testKey } from '../helpers/redis.js'
import { steppedSource } from '../helpers/sources.js'

interface Instance { app: FastifyInstance, url: string }

/** `count` apps sharing the stream `key`, each serving the resumable route `/answers/:key` from `source`. */
async function instances (t: Teardown, key: string, count: number, source: StreamSource, options: PushStreamOptions = {}): Promise<Instance[]> {
  const { redisAdapter } = await loadRedisAdapter()
  const apps: Instance[] = []
  for (let n = 0; n < count; n++) {
    apps.push(await startApp(t, { ...options, adapter: redisAdapter({ url: redisUrl }, { key }) }, (app) => {
      app.get('/answers/:key', (request, reply) => reply.sse(source, { key: (request.params as { key: string }).key }))
      app.post('/answers/:key/cancel', async (request) => ({ cancelled: await app.pushStream.cancel((request.params as { key: string }).key) }))
    }))
  }
  return apps
}

t.test('one producer for a key asked of three instances at once; followers on every instance; a reload on another instance gets the rest once', skipUnlessRedis, async (t) => {
  const { state, source } = steppedSource(6)
  const [a, b, c] = await instances(t, testKey(t), 3, source) as [Instance, Instance, Instance]
  const followers = await Promise.all([a, b, c].map(async ({ url }) => await openStream(`${url}/answers/race`)))
  await waitFor(() => state.starts === 1, 'a producer to start')
  state.step(3)
  for (const follower of followers) await follower.take(3)
  t.equal(state.starts, 1, 'one source between the three')
  const [first] = followers as [typeof followers[0]]
  t.same(first.events.map((event) => [event.id, event.data]), [['1', 'token 1'], ['2', 'token 2'], ['3', 'token 3']])
  first.close()
  // Reloaded, on another instance, after the third.
  state.step(1)
  const reloaded = await openStream(`${c.url}/answers/race`, { 'last-event-id': '3' })
  state.step(2)
  await reloaded.ended
  t.same(reloaded.events.map((event) => [event.id, event.data]), [['4', 'token 4'], ['5', 'token 5'], ['6', 'token 6'], [undefined, '{"reason":"done"}']])
  for (const follower of followers.slice(1)) {
    await follower.ended
    t.equal(follower.events.length, 7)
  }
  t.equal(state.starts, 1)
})

t.test('cancel from another instance ends the producer and every follower; a client that leaves cancels nothing', skipUnlessRedis, async (t) => {
  const { state, source } = steppedSource(100)
  const [a, b] = await instances(t, testKey(t), 2, source) as [Instance, Instance]
  const onA = await openStream(`${a.url}/answers/cancel-me`)
  const onB = await openStream(`${b.url}/answers/cancel-me`)
  const leaving = await openStream(`${b.url}/answers/cancel-me`)
  state.step(2)
  await Promise.all([onA.take(2), onB.take(2), leaving.take(2)])
  leaving.close()
  await leaving.ended
  state.step(1)
  await onB.take(3)
  t.equal(state.released, 0, 'still running after a client left')
  const producerHere = state.starts === 1
  t.ok(producerHere)
  // Whichever instance runs it, B asks.
  t.same(JSON.parse((await request(`${b.url}/answers/cancel-me/cancel`, { method: 'POST' })).body), { cancelled: true })
  await Promise.all([onA.ended, onB.ended])
  for (const client of [onA, onB]) t.same(client.events.at(-1), { id: undefined, event: 'push-stream:end', data: '{"reason":"cancelled"}' })
  await waitFor(() => state.released === 1, 'the producer\'s finally')
  t.equal((state.reason as { code: string }).code, 'FST_PUSH_STREAM_CANCELLED')
  t.same(JSON.parse((await request(`${a.url}/answers/cancel-me/cancel`, { method: 'POST' })).body), { cancelled: false }, 'nothing runs any more')
})

t.test('a Last-Event-ID for a key no instance keeps: reset and unknown-stream, and no source starts', skipUnlessRedis, async (t) => {
  const { state, source } = steppedSource(1)
  const [a] = await instances(t, testKey(t), 1, source) as [Instance]
  const unknown = await openStream(`${a.url}/answers/nobody`, { 'last-event-id': '4' })
  await unknown.ended
  t.same(unknown.events.map((event) => [event.event, event.data]), [['reset', '{"reason":"unknown-last-event-id"}'], ['push-stream:end', '{"reason":"unknown-stream"}']])
  t.equal(state.starts, 0)
})

t.test('limits with Redis: maxEvents stops the producer, its followers get the code', skipUnlessRedis, async (t) => {
  const [a, b] = await instances(t, testKey(t), 2, ['a', 'b', 'c', 'd'], { resumable: { maxEvents: 2 } }) as [Instance, Instance]
  const onA = await openStream(`${a.url}/answers/limited`)
  await onA.ended
  t.same(onA.events.map((event) => event.data), ['a', 'b', '{"code":"FST_PUSH_STREAM_TOO_MANY_EVENTS"}'])
  const onB = await openStream(`${b.url}/answers/limited`, { 'last-event-id': '1' })
  await onB.ended
  t.same(onB.events.map((event) => event.data), ['b', '{"code":"FST_PUSH_STREAM_TOO_MANY_EVENTS"}'], 'kept, and followed from another instance')
  const unknownId = await openStream(`${b.url}/answers/limited`, { 'last-event-id': '999' })
  await unknownId.ended
  t.same(unknownId.events.map((event) => event.data), ['a', 'b', '{"code":"FST_PUSH_STREAM_TOO_MANY_EVENTS"}'], 'an id the stream never gave: from the start')
})

t.test('limits with Redis: maxBytes and maxDuration stop the producer with their codes; maxStreams refuses a new key on a full instance', skipUnlessRedis, async (t) => {
  const { redisAdapter } = await loadRedisAdapter()
  const { url } = await startApp(t, { adapter: redisAdapter({ url: redisUrl }, { key: testKey(t) }), resumable: { maxBytes: 200, maxDuration: 300, maxStreams: 1 } }, (app) => {
    app.get('/big', (_request, reply) => reply.sse(['x'.repeat(150), 'y'.repeat(150)], { key: 'big' }))
    app.get('/long', (_request, reply) => reply.sse(async function * ({ signal }) {
      yield 'started'
      await new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(new Error('stopped')), { once: true }))
    }, { key: 'long' }))
  })
  const big = await openStream(`${url}/big`)
  await big.ended
  t.same(big.events.map((event) => event.data), ['x'.repeat(150), '{"code":"FST_PUSH_STREAM_STREAM_TOO_LARGE"}'])
  const long = await openStream(`${url}/long`)
  await long.take(1)
  const refused = await request(`${url}/big`)
  t.equal(refused.status, 503, 'one producer runs: a new key is refused for now')
  t.equal(JSON.parse(refused.body).code, 'FST_PUSH_STREAM_TOO_MANY_STREAMS')
  await long.ended
  t.same(long.events.map((event) => event.data), ['started', '{"code":"FST_PUSH_STREAM_STREAM_TOO_LONG"}'])
})

t.test('with Redis, a recording is kept ttl after its end, then its key is unknown', skipUnlessRedis, async (t) => {
  const { state, source } = steppedSource(1)
  const [a, b] = await instances(t, testKey(t), 2, source, { resumable: { ttl: 1000 } }) as [Instance, Instance]
  state.step(1)
  const done = await openStream(`${a.url}/answers/brief`)
  await done.ended
  const kept = await openStream(`${b.url}/answers/brief`, { 'last-event-id': '1' })
  await kept.ended
  t.same(kept.events.map((event) => event.data), ['{"reason":"done"}'], 'kept: only its end is left to read')
  // Redis expires it on its own clock: the test asks until it is gone, at most a few seconds.
  let gone = false
  for (let attempt = 0; attempt < 40 && !gone; attempt++) {
    const again = await openStream(`${b.url}/answers/brief`, { 'last-event-id': '1' })
    await again.ended
    gone = again.events.at(-1)?.data === '{"reason":"unknown-stream"}'
    if (!gone) await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.ok(gone, 'unknown once expired')
  t.equal(state.starts, 1, 'never started again')
})

t.test('a producer renews its claim while its source is quiet, and stops when it finds the claim lost (Redis flushed its key)', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const redis = testClient(t)
  const { state, source } = steppedSource(3)
  const [a] = await instances(t, key, 1, source) as [Instance]
  const follower = await openStream(`${a.url}/answers/quiet`)
  state.step(1)
  await follower.take(1)
  const claim = `${key}:resumable:{quiet}#claim`
  // Quiet for longer than a renewal period: the claim's time to live, which only falls between two readings, goes back up.
  await waitFor((async () => {
    let last = await redis.pttl(claim)
    for (;;) {
      await new Promise((resolve) => setTimeout(resolve, 50))
      const now = await redis.pttl(claim)
      if (now > last) return
      last = now
    }
  })(), 'a renewal', 5000)
  t.pass('renewed while quiet')
  // The claim disappears (as after a FLUSHALL of this key): the producer is fenced out at its next event.
  await redis.del(claim)
  state.step(1)
  await waitFor(() => state.released === 1, 'the producer to stop')
  t.equal((state.reason as { code: string }).code, 'FST_PUSH_STREAM_PRODUCER_LOST')
  await waitFor(follower.ended, 'the follower to learn', 10_000)
  t.same(follower.events.map((event) => event.data), ['token 1', '{"code":"FST_PUSH_STREAM_PRODUCER_LOST"}'], 'nothing recorded after the claim was lost')
})

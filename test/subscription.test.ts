import t from 'tap'
import { setTimeout as delay } from 'node:timers/promises'
import Fastify from 'fastify'
import pushStream from '../lib/index.js'
import { idOf, openStream, request, startApp } from './helpers/sse.js'
import { waitFor } from './helpers/wait.js'

t.test('a room feed on a route of one\'s own: authenticated by its own hook, live, resumable, with reset', async (t) => {
  const { app, url } = await startApp(t, { history: 3 }, (app) => {
    app.get('/rooms/:id/events', {
      onRequest: async (request, reply) => {
        if (request.headers.authorization !== 'Bearer ok') await reply.code(401).send({ error: 'who are you' })
      }
    }, (request, reply) => reply.sse(app.pushStream.subscribe([`room-${(request.params as { id: string }).id}`])))
  })
  const auth = { authorization: 'Bearer ok' }
  t.equal((await request(`${url}/rooms/1/events`)).status, 401, 'the route\'s own hook refuses')

  const live = await openStream(`${url}/rooms/1/events`, auth)
  await live.until(() => live.retries.length === 1, 'the opening block')
  const first = await idOf(app.pushStream.publish('one', { channel: 'room-1' }))
  await app.pushStream.publish('elsewhere', { channel: 'room-2' })
  await app.pushStream.publish('two', { channel: 'room-1' })
  const [a, b] = await live.take(2)
  t.same([a?.data, b?.data], ['one', 'two'], 'only its room, live')
  t.equal(a?.id, first)
  live.close()

  // Resumes after the first: gets the second from history.
  const resumed = await openStream(`${url}/rooms/1/events`, { ...auth, 'last-event-id': first })
  const [missed] = await resumed.take(1)
  t.equal(missed?.data, 'two', 'replayed from Last-Event-ID')
  resumed.close()

  // History holds 3: after 4 more, the first is gone, and the client is told.
  for (let i = 0; i < 4; i++) await app.pushStream.publish(`more ${i}`, { channel: 'room-1' })
  const late = await openStream(`${url}/rooms/1/events`, { ...auth, 'last-event-id': first })
  const [reset] = await late.take(1)
  t.equal(reset?.event, 'reset')
  t.same(JSON.parse(reset?.data ?? ''), { reason: 'unknown-last-event-id' })
  late.close()
  t.equal(app.pushStream.stats().resets, 1)
})

t.test('a subscription is streamed once; subscribe checks its channels with named errors', async (t) => {
  const { app, url } = await startApp(t, { maxChannels: 2 }, (app) => {
    // One subscription for every request: a mistake, refused from the second on.
    let shared: ReturnType<typeof app.pushStream.subscribe> | undefined
    app.get('/shared', (_request, reply) => reply.sse(shared ??= app.pushStream.subscribe('news')))
  })
  const first = await openStream(`${url}/shared`)
  const second = await request(`${url}/shared`)
  t.equal(second.status, 500)
  t.equal(JSON.parse(second.body).code, 'FST_PUSH_STREAM_SUBSCRIPTION_USED')
  first.close()
  t.throws(() => app.pushStream.subscribe('not a channel'), { code: 'FST_PUSH_STREAM_INVALID_CHANNEL' })
  t.throws(() => app.pushStream.subscribe(['a', 'b', 'c']), { code: 'FST_PUSH_STREAM_TOO_MANY_CHANNELS' })
  t.throws(() => app.pushStream.subscribe([]), { code: 'FST_PUSH_STREAM_INVALID_STREAM_OPTIONS' })
  t.throws(() => app.pushStream.subscribe('a', { maxQueued: 0 }), { code: 'FST_PUSH_STREAM_INVALID_STREAM_OPTIONS' })
  t.throws(() => app.pushStream.subscribe('a', { max: 1 } as never), { code: 'FST_PUSH_STREAM_INVALID_STREAM_OPTIONS' })
  t.throws(() => app.pushStream.subscribe('a', null as never), { code: 'FST_PUSH_STREAM_INVALID_STREAM_OPTIONS' })
})

t.test('read as an async iterable on the server: the events of its channels from then on, and its end at close', async (t) => {
  const app = Fastify()
  await app.register(pushStream, { interval: 0 })
  await app.ready()
  await app.pushStream.publish('before', { channel: 'jobs' })
  const subscription = app.pushStream.subscribe(['jobs', 'alerts'])
  const iterator = subscription[Symbol.asyncIterator]()
  t.throws(() => subscription[Symbol.asyncIterator](), { code: 'FST_PUSH_STREAM_SUBSCRIPTION_USED' }, 'read once')
  const waiting = iterator.next()
  const published = await app.pushStream.publish({ step: 1 }, { channel: 'jobs', event: 'progress' })
  await app.pushStream.publish('not mine', { channel: 'other' })
  await app.pushStream.publish('alert', { channel: 'alerts' })
  t.same((await waiting).value, { id: published.id, event: 'progress', channel: 'jobs', data: '{"step":1}' }, 'the waiting reader gets it')
  t.same((await iterator.next()).value?.data, 'alert', 'then the queued one')
  const pending = iterator.next()
  await app.close()
  t.same(await pending, { done: true, value: undefined }, 'close ends it')
  t.same(await iterator.next(), { done: true, value: undefined })
  t.throws(() => app.pushStream.subscribe('jobs'), { code: 'FST_PUSH_STREAM_CLOSED' }, 'no subscription after close')
})

t.test('a reader that falls more than maxQueued behind ends with FST_PUSH_STREAM_SUBSCRIPTION_OVERFLOW; one that stops reading holds nothing', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(pushStream, { interval: 0 })
  await app.ready()
  const behind = app.pushStream.subscribe('busy', { maxQueued: 3 })[Symbol.asyncIterator]()
  for (let i = 0; i < 5; i++) await app.pushStream.publish(i, { channel: 'busy' })
  const got: unknown[] = []
  await t.rejects(async () => {
    for (;;) {
      const { value, done } = await behind.next()
      if (done === true) break
      got.push(value.data)
    }
  }, { code: 'FST_PUSH_STREAM_SUBSCRIPTION_OVERFLOW' })
  t.same(got, [], 'the queue was dropped at the overflow, not read after it')
  t.same(await behind.next(), { done: true, value: undefined }, 'then it is done')
  t.same(await behind.return?.(), { done: true, value: undefined }, 'and return() after the end changes nothing')

  // for await ... break calls return(): the reader is let go of at once.
  let seen = 0
  const reading = (async () => {
    for await (const event of app.pushStream.subscribe('busy')) {
      seen++
      if (event.data === '1') break
    }
  })()
  await delay(0)
  await app.pushStream.publish(0, { channel: 'busy' })
  await app.pushStream.publish(1, { channel: 'busy' })
  await waitFor(reading, 'the loop to end')
  t.equal(seen, 2)
})

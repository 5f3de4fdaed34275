import t from 'tap'
import { openStream, request, startApp } from './helpers/sse.js'
import { waitFor } from './helpers/wait.js'
import { steppedSource } from './helpers/sources.js'

t.test('a reload mid-answer: the follower gets exactly the rest, once, in order, then push-stream:end; the source ran once', async (t) => {
  const { state, source } = steppedSource(6)
  const { url } = await startApp(t, {}, (app) => {
    app.get('/answers/:key', (request, reply) => reply.sse(source, { key: (request.params as { key: string }).key }))
  })
  const first = await openStream(`${url}/answers/a1`)
  state.step(3)
  const got = await first.take(3)
  t.same(got.map((event) => [event.id, event.data]), [['1', 'token 1'], ['2', 'token 2'], ['3', 'token 3']], 'the plugin\'s own ids')
  first.close()
  await first.ended
  // Gone from the page; the answer goes on.
  state.step(1)
  const reloaded = await openStream(`${url}/answers/a1`, { 'last-event-id': '3' })
  state.step(2)
  await reloaded.ended
  t.same(reloaded.events.map((event) => [event.id, event.data]), [
    ['4', 'token 4'], ['5', 'token 5'], ['6', 'token 6'], [undefined, '{"reason":"done"}']
  ])
  t.equal(reloaded.events.at(-1)?.event, 'push-stream:end')
  t.equal(state.starts, 1, 'the source started once')

  // Kept after the end: a late follower from the start reads it all.
  const late = await openStream(`${url}/answers/a1`)
  await late.ended
  t.equal(late.events.length, 7)
  t.equal(state.starts, 1)
})

t.test('two followers of one producer get the same events; a client that leaves cancels nothing', async (t) => {
  const { state, source } = steppedSource(4)
  const { url } = await startApp(t, {}, (app) => {
    app.get('/answer', (_request, reply) => reply.sse(source, { key: 'shared' }))
  })
  const one = await openStream(`${url}/answer`)
  const two = await openStream(`${url}/answer`)
  const leaving = await openStream(`${url}/answer`)
  state.step(1)
  await leaving.take(1)
  leaving.close()
  state.step(3)
  await Promise.all([one.ended, two.ended])
  const datas = (client: typeof one): string[] => client.events.map((event) => event.data)
  t.same(datas(one), ['token 1', 'token 2', 'token 3', 'token 4', '{"reason":"done"}'])
  t.same(datas(two), datas(one))
  t.equal(state.starts, 1)
  t.equal(state.reason, undefined, 'the producer ran to its end')
})

t.test('cancel(key) stops the producer (its finally runs) and ends every follower with cancelled', async (t) => {
  const { state, source } = steppedSource(100)
  const { app, url } = await startApp(t, {}, (app) => {
    app.get('/answer', (_request, reply) => reply.sse(source, { key: 'to-cancel' }))
    app.post('/answer/cancel', async () => ({ cancelled: await app.pushStream.cancel('to-cancel') }))
  })
  const one = await openStream(`${url}/answer`)
  const two = await openStream(`${url}/answer`)
  state.step(2)
  await Promise.all([one.take(2), two.take(2)])
  t.same(JSON.parse((await request(`${url}/answer/cancel`, { method: 'POST' })).body), { cancelled: true })
  await Promise.all([one.ended, two.ended])
  for (const client of [one, two]) {
    t.same(client.events.at(-1), { id: undefined, event: 'push-stream:end', data: '{"reason":"cancelled"}' })
  }
  await waitFor(() => state.released === 1, 'the producer\'s finally')
  t.equal((state.reason as { code: string }).code, 'FST_PUSH_STREAM_CANCELLED')
  t.equal(await app.pushStream.cancel('to-cancel'), false, 'nothing runs any more')
  t.equal(await app.pushStream.cancel('never-was'), false)
  t.throws(() => app.pushStream.cancel('not a key'), { code: 'FST_PUSH_STREAM_INVALID_KEY' })
  // Still kept: a follower that comes back reads it, and its end.
  const back = await openStream(`${url}/answer`, { 'last-event-id': '2' })
  await back.ended
  t.same(back.events.map((event) => event.data), ['{"reason":"cancelled"}'])
})

t.test('a Last-Event-ID for a key that is not kept: reset and unknown-stream, and the source is not called', async (t) => {
  const { state, source } = steppedSource(1)
  const { url } = await startApp(t, { resumable: { ttl: 0 } }, (app) => {
    app.get('/answers/:key', (request, reply) => reply.sse(source, { key: (request.params as { key: string }).key }))
  })
  const unknown = await openStream(`${url}/answers/never`, { 'last-event-id': '5' })
  await unknown.ended
  t.same(unknown.events.map((event) => [event.event, event.data]), [
    ['reset', '{"reason":"unknown-last-event-id"}'],
    ['push-stream:end', '{"reason":"unknown-stream"}']
  ])
  t.equal(state.starts, 0, 'the source was not called')

  // Expired: ttl 0 forgets it once it ended.
  state.step(1)
  const done = await openStream(`${url}/answers/short`)
  await done.ended
  t.equal(state.starts, 1)
  // Forgotten on the timer's next turn.
  await new Promise((resolve) => setTimeout(resolve, 1))
  const again = await openStream(`${url}/answers/short`, { 'last-event-id': '1' })
  await again.ended
  t.same(again.events.map((event) => event.data), ['{"reason":"unknown-last-event-id"}', '{"reason":"unknown-stream"}'], 'expired')
  t.equal(state.starts, 1, 'not restarted')
})

t.test('the limits, each with its named error; nothing else is harmed', async (t) => {
  const { url } = await startApp(t, { resumable: { maxEvents: 3, maxBytes: 200, maxDuration: 200, maxStreams: 1 } }, (app) => {
    app.get('/many', (_request, reply) => reply.sse(['a', 'b', 'c', 'd', 'e'], { key: 'many' }))
    app.get('/big', (_request, reply) => reply.sse(['x'.repeat(150), 'y'.repeat(150)], { key: 'big' }))
    app.get('/long', (_request, reply) => reply.sse(async function * ({ signal }) {
      yield 'started'
      await new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(new Error('stopped')), { once: true }))
    }, { key: 'long' }))
    app.get('/bad-key', (_request, reply) => reply.sse(['x'], { key: 'a b' }))
  })
  const many = await openStream(`${url}/many`)
  await many.ended
  t.same(many.events.map((event) => event.data), ['a', 'b', 'c', '{"code":"FST_PUSH_STREAM_TOO_MANY_EVENTS"}'])
  t.equal(many.events.at(-1)?.event, 'push-stream:error')
  const big = await openStream(`${url}/big`)
  await big.ended
  t.same(big.events.map((event) => event.data), ['x'.repeat(150), '{"code":"FST_PUSH_STREAM_STREAM_TOO_LARGE"}'])
  const long = await openStream(`${url}/long`)
  // One producer may run: a second key waits its turn.
  const refused = await request(`${url}/many-more`)
  t.equal(refused.status, 404, 'another route is not affected')
  await long.ended
  t.same(long.events.map((event) => event.data), ['started', '{"code":"FST_PUSH_STREAM_STREAM_TOO_LONG"}'])
  const badKey = await request(`${url}/bad-key`)
  t.equal(badKey.status, 400)
  t.equal(JSON.parse(badKey.body).code, 'FST_PUSH_STREAM_INVALID_KEY')
})

t.test('maxStreams: a new key past it is refused for now with 503 and Retry-After; followers of a running key are not', async (t) => {
  const { state, source } = steppedSource(2)
  const { url } = await startApp(t, { resumable: { maxStreams: 1 } }, (app) => {
    app.get('/answers/:key', (request, reply) => reply.sse(source, { key: (request.params as { key: string }).key }))
  })
  const running = await openStream(`${url}/answers/one`)
  const refused = await request(`${url}/answers/two`)
  t.equal(refused.status, 503)
  t.equal(refused.headers['retry-after'], '3')
  t.equal(JSON.parse(refused.body).code, 'FST_PUSH_STREAM_TOO_MANY_STREAMS')
  const follower = await openStream(`${url}/answers/one`)
  state.step(2)
  await Promise.all([running.ended, follower.ended])
  t.equal(follower.events.length, 3)
  t.equal(state.starts, 1)
})

t.test('the resumable option is checked at registration', async (t) => {
  const Fastify = (await import('fastify')).default
  const pushStream = (await import('../lib/index.js')).default
  for (const [resumable, name] of [[{ ttl: -1 }, 'resumable.ttl'], [{ maxEvents: 0 }, 'resumable.maxEvents'], [{ maxStream: 1 }, 'resumable.maxStream'], ['x', 'resumable']] as const) {
    const app = Fastify()
    await t.rejects(async () => { await app.register(pushStream, { resumable: resumable as never }) }, { code: 'FST_PUSH_STREAM_INVALID_OPTION', message: new RegExp(`"${name.replace('.', '\\.')}"`) })
  }
})

t.test('a failing source, a source made by a promise, and what a follower sends that is not an id of the stream', async (t) => {
  let resolveMade = (_iterable: Iterable<string>): void => {}
  let cancelledReason: unknown
  const { app, url } = await startApp(t, {}, (app) => {
    app.get('/fails', (_request, reply) => reply.sse(async function * () {
      yield 'one'
      throw new Error('sk-secret')
    }, { key: 'fails' }))
    app.get('/nothing', (_request, reply) => reply.sse(async () => 42 as unknown as string[], { key: 'nothing' }))
    app.get('/later', (_request, reply) => reply.sse(({ signal }) => new Promise<Iterable<string>>((resolve) => {
      signal.addEventListener('abort', () => { cancelledReason = signal.reason })
      resolveMade = resolve
    }), { key: 'later' }))
    app.get('/sync', (_request, reply) => reply.sse(['a', 'b'], { key: 'sync' }))
    // An iterator with no return(): cancelling it lets go of it all the same.
    app.get('/no-return', (_request, reply) => reply.sse({ [Symbol.asyncIterator]: () => ({ next: async () => await new Promise<IteratorResult<string>>(() => {}) }) }, { key: 'no-return' }))
    // One whose return() throws: let go of all the same.
    app.get('/return-throws', (_request, reply) => reply.sse({
      [Symbol.asyncIterator]: () => ({
        next: async () => await new Promise<IteratorResult<string>>(() => {}),
        return: () => { throw new Error('cannot return') }
      })
    }, { key: 'return-throws' }))
  })
  const fails = await openStream(`${url}/fails`)
  await fails.ended
  t.same(fails.events.map((event) => event.data), ['one', '{"code":"FST_PUSH_STREAM_SOURCE_FAILED"}'])
  t.notMatch(fails.raw, /secret/)
  const nothing = await openStream(`${url}/nothing`)
  await nothing.ended
  t.same(nothing.events.map((event) => event.data), ['{"code":"FST_PUSH_STREAM_SOURCE_FAILED"}'])

  // Cancelled while its source is still being made: the iterable it makes later is let go of at once.
  const later = await openStream(`${url}/later`)
  t.equal(await app.pushStream.cancel('later'), true)
  await later.ended
  t.equal(later.events.at(-1)?.data, '{"reason":"cancelled"}')
  let returned = false
  resolveMade({ [Symbol.iterator]: () => ({ next: () => ({ done: false, value: 'x' }), return: () => { returned = true; return { done: true, value: undefined } } }) })
  await waitFor(() => returned, 'the late iterator to be returned')
  t.equal((cancelledReason as { code: string }).code, 'FST_PUSH_STREAM_CANCELLED')

  const noReturn = await openStream(`${url}/no-return`)
  t.equal(await app.pushStream.cancel('no-return'), true)
  await noReturn.ended
  t.equal(noReturn.events.at(-1)?.data, '{"reason":"cancelled"}')
  const returnThrows = await openStream(`${url}/return-throws`)
  t.equal(await app.pushStream.cancel('return-throws'), true)
  await returnThrows.ended
  t.equal(returnThrows.events.at(-1)?.data, '{"reason":"cancelled"}')

  const sync = await openStream(`${url}/sync`)
  await sync.ended
  for (const lastEventId of ['abc', '999', '0']) {
    const again = await openStream(`${url}/sync`, { 'last-event-id': lastEventId })
    await again.ended
    t.same(again.events.map((event) => event.data), ['a', 'b', '{"reason":"done"}'], `${lastEventId}: from the start`)
  }
})

t.test('close() stops every producer: its signal aborts with FST_PUSH_STREAM_SERVER_CLOSING and its finally runs first', async (t) => {
  const { state, source } = steppedSource(10)
  const Fastify = (await import('fastify')).default
  const pushStream = (await import('../lib/index.js')).default
  const app = Fastify()
  await app.register(pushStream, { interval: 0 })
  app.get('/answer', (_request, reply) => reply.sse(source, { key: 'closing' }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const client = await openStream(`http://127.0.0.1:${(app.server.address() as { port: number }).port}/answer`)
  state.step(1)
  await client.take(1)
  await app.close()
  t.equal(state.released, 1, 'released before close() resolved')
  t.equal((state.reason as { code: string }).code, 'FST_PUSH_STREAM_SERVER_CLOSING')
  await client.ended
})

import t from 'tap'
import { openStream, request, startApp } from './helpers/sse.js'

t.test('publish reaches only the subscribers of its channel; none named = the default channel', async (t) => {
  const { app, url } = await startApp(t)
  const plain = await openStream(`${url}/events`)
  const room1 = await openStream(`${url}/events?channel=room-1`)
  const both = await openStream(`${url}/events?channel=room-1&channel=room-2`)
  t.teardown(() => { plain.close(); room1.close(); both.close() })
  app.pushStream.publish('to default')
  app.pushStream.publish('to room 1', { channel: 'room-1' })
  app.pushStream.publish('to room 2', { channel: 'room-2', event: 'chat' })
  app.pushStream.publish('to default again', { channel: 'default' })
  t.same((await plain.take(2)).map((e) => e.data), ['to default', 'to default again'])
  t.same((await room1.take(1)).map((e) => e.data), ['to room 1'])
  t.same((await both.take(2)).map((e) => [e.event, e.data]), [[undefined, 'to room 1'], ['chat', 'to room 2']])
  // One more event on room-1 proves nothing else was queued before it.
  app.pushStream.publish('last', { channel: 'room-1' })
  t.same((await room1.take(2)).map((e) => e.data), ['to room 1', 'last'])
  t.equal(plain.events.length, 2)
})

t.test('a burst over several channels: each client gets exactly its events, in order, however they are joined', async (t) => {
  const { app, url } = await startApp(t)
  const onA = await openStream(`${url}/events?channel=a`)
  const onB = await openStream(`${url}/events?channel=b`)
  const onBoth = await openStream(`${url}/events?channel=b&channel=a`)
  const alsoBoth = await openStream(`${url}/events?channel=a&channel=b`)
  t.teardown(() => { onA.close(); onB.close(); onBoth.close(); alsoBoth.close() })
  // 40 events of 2 KiB in one tick: more than one joined write carries them.
  const sent: Array<{ channel: string, data: string }> = []
  for (let n = 0; n < 40; n++) {
    const channel = n % 3 === 0 ? 'b' : 'a'
    const data = `${n}:`.padEnd(2048, String.fromCharCode(97 + (n % 26)))
    app.pushStream.publish(data, { channel })
    sent.push({ channel, data })
  }
  const only = (channel: string): string[] => sent.filter((e) => e.channel === channel).map((e) => e.data)
  t.same((await onA.take(only('a').length)).map((e) => e.data), only('a'))
  t.same((await onB.take(only('b').length)).map((e) => e.data), only('b'))
  for (const client of [onBoth, alsoBoth]) t.same((await client.take(40)).map((e) => e.data), sent.map((e) => e.data))
  app.pushStream.publish('after', { channel: 'a' })
  t.same((await onA.take(only('a').length + 1)).at(-1)?.data, 'after', 'nothing else was queued')
})

t.test('a channel is subscribed once even when named twice', async (t) => {
  const { app, url } = await startApp(t)
  const client = await openStream(`${url}/events?channel=a&channel=a`)
  t.teardown(() => client.close())
  app.pushStream.publish('one', { channel: 'a' })
  app.pushStream.publish('two', { channel: 'a' })
  t.same((await client.take(2)).map((e) => e.data), ['one', 'two'])
})

t.test('bad channel names in the query get 400 with a named error', async (t) => {
  const { url } = await startApp(t, { maxChannels: 2 })
  for (const query of ['channel=', 'channel=a%20b', 'channel=' + 'x'.repeat(65), 'channel=%0Aevil', 'channel=a/b']) {
    const res = await request(`${url}/events?${query}`)
    t.equal(res.status, 400, query)
    t.equal(JSON.parse(res.body).code, 'FST_PUSH_STREAM_INVALID_CHANNEL', query)
  }
  const many = await request(`${url}/events?channel=a&channel=b&channel=c`)
  t.equal(many.status, 400)
  t.match(JSON.parse(many.body), { code: 'FST_PUSH_STREAM_TOO_MANY_CHANNELS', message: /3 requested, at most 2/ })
})

t.test('publish throws a named error for a bad event name or channel, and sends nothing', async (t) => {
  const { app, url } = await startApp(t)
  const client = await openStream(`${url}/events`)
  t.teardown(() => client.close())
  for (const event of ['a\nb', 'a\rb', 'a\0b', '', 'x\r\ndata: injected']) {
    t.throws(() => app.pushStream.publish('x', { event }), { code: 'FST_PUSH_STREAM_INVALID_EVENT_NAME' })
  }
  t.throws(() => app.pushStream.publish('x', { event: 42 as unknown as string }), { code: 'FST_PUSH_STREAM_INVALID_EVENT_NAME' })
  for (const channel of ['', 'a b', 'a\nb', 'é', 'x'.repeat(65)]) {
    t.throws(() => app.pushStream.publish('x', { channel }), { code: 'FST_PUSH_STREAM_INVALID_CHANNEL' })
  }
  t.throws(() => app.pushStream.publish(undefined), { code: 'FST_PUSH_STREAM_SERIALIZE_FAILED', message: /not a string/ })
  const circular: Record<string, unknown> = {}
  circular.self = circular
  t.throws(() => app.pushStream.publish(circular), { code: 'FST_PUSH_STREAM_SERIALIZE_FAILED', message: /circular/i })
  app.pushStream.publish('fine')
  const [event] = await client.take(1)
  t.equal(event?.data, 'fine', 'the first event to arrive is the valid one')
  t.equal(app.pushStream.stats().published, 1)
})

t.test('a custom serialize is used for non-string data; strings go as they are', async (t) => {
  const { app, url } = await startApp(t, { serialize: (data) => `<${JSON.stringify(data)}>` })
  const client = await openStream(`${url}/events`)
  t.teardown(() => client.close())
  app.pushStream.publish({ a: 1 })
  app.pushStream.publish('plain')
  t.same((await client.take(2)).map((e) => e.data), ['<{"a":1}>', 'plain'])
})

t.test('authorize: false answers 403, true streams; it sees the request and the channels', async (t) => {
  const seen: Array<[string | undefined, string[]]> = []
  const { app, url } = await startApp(t, {
    authorize: async (request, channels) => {
      seen.push([request.headers['x-user'] as string | undefined, channels])
      return request.headers['x-user'] === 'alice'
    }
  })
  const denied = await request(`${url}/events?channel=a`, { headers: { 'x-user': 'mallory' } })
  t.equal(denied.status, 403)
  t.equal(JSON.parse(denied.body).code, 'FST_PUSH_STREAM_FORBIDDEN')
  const allowed = await openStream(`${url}/events?channel=a&channel=b`, { 'x-user': 'alice' })
  t.teardown(() => allowed.close())
  t.equal(allowed.status, 200)
  app.pushStream.publish('hi', { channel: 'b' })
  t.equal((await allowed.take(1))[0]?.data, 'hi')
  t.same(seen, [['mallory', ['a']], ['alice', ['a', 'b']]])
  t.equal(app.pushStream.stats().connections, 1)
})

t.test('authorize may be sync; one that throws answers 500 with a named error and others go on', async (t) => {
  const { app, url } = await startApp(t, {
    authorize: (request) => {
      if (request.headers['x-user'] === 'boom') throw new Error('database down')
      return true
    }
  })
  const failed = await request(`${url}/events`, { headers: { 'x-user': 'boom' } })
  t.equal(failed.status, 500)
  t.equal(JSON.parse(failed.body).code, 'FST_PUSH_STREAM_AUTHORIZE_FAILED')
  const client = await openStream(`${url}/events`)
  t.teardown(() => client.close())
  app.pushStream.publish('still here')
  t.equal((await client.take(1))[0]?.data, 'still here')
})

t.test('app-level hooks run on the route, and headers set before the stream are kept', async (t) => {
  const calls: string[] = []
  const { app, url } = await startApp(t, {}, (app) => {
    app.addHook('onRequest', async (request, reply) => {
      calls.push(`onRequest ${request.url}`)
      reply.header('access-control-allow-origin', 'https://app.example')
      reply.header('x-custom', 'kept')
      // Set by some plugins; must never reach a stream.
      reply.header('content-length', '10')
    })
    app.addHook('preHandler', async (request, reply) => {
      calls.push('preHandler')
      if (request.headers.authorization !== 'Bearer ok') {
        await reply.code(401).send({ error: 'no' })
      }
    })
  })
  const refused = await request(`${url}/events`)
  t.equal(refused.status, 401, 'a preHandler can refuse the stream')
  const client = await openStream(`${url}/events`, { authorization: 'Bearer ok' })
  t.teardown(() => client.close())
  t.equal(client.status, 200)
  t.equal(client.headers['access-control-allow-origin'], 'https://app.example')
  t.equal(client.headers['x-custom'], 'kept')
  t.equal(client.headers['content-length'], undefined)
  t.equal(client.headers['content-type'], 'text/event-stream; charset=utf-8')
  t.same(calls, ['onRequest /events', 'preHandler', 'onRequest /events', 'preHandler'])
  app.pushStream.publish('ok')
  t.equal((await client.take(1))[0]?.data, 'ok')
})

t.test('streams whatever the Accept header says', async (t) => {
  const { app, url } = await startApp(t)
  const json = await openStream(`${url}/events`, { accept: 'application/json' })
  const none = await openStream(`${url}/events`, { accept: '' })
  t.teardown(() => { json.close(); none.close() })
  app.pushStream.publish('x')
  t.equal((await json.take(1))[0]?.data, 'x')
  t.equal((await none.take(1))[0]?.data, 'x')
})

t.test('a HEAD request gets no stream', async (t) => {
  const { url } = await startApp(t)
  const res = await request(`${url}/events`, { method: 'HEAD' })
  t.equal(res.status, 404)
})

t.test('a Buffer is sent as its UTF-8 text, decoded whole', async (t) => {
  const { app, url } = await startApp(t)
  const client = await openStream(`${url}/events`)
  t.teardown(() => client.close())
  app.pushStream.publish(Buffer.from('héllo 🌍\nsecond line', 'utf8'))
  t.equal((await client.take(1))[0]?.data, 'héllo 🌍\nsecond line')
})

import t from 'tap'
import http2 from 'node:http2'
import { once } from 'node:events'
import type { Socket } from 'node:net'
import { setTimeout as delay } from 'node:timers/promises'
import Fastify from 'fastify'
import pushStream from '../lib/index.js'
import { DRAIN_GRACE_MS } from '../lib/connection.js'
import { openH2Stream } from './helpers/h2.js'
import { assertReleased, hangingSource } from './helpers/sources.js'
import { LogCapture } from './helpers/log.js'
import { openStream, rawGet, request, startApp } from './helpers/sse.js'
import { waitFor } from './helpers/wait.js'

t.test('a token stream: items as events, then push-stream:end, the response ends', async (t) => {
  const { app, url } = await startApp(t, {}, (app) => {
    app.get('/answer', async (_request, reply) => reply.sse(async function * () {
      yield 'Hello'
      yield { data: { n: 1 }, event: 'json', id: 'a1', retry: 5000 }
      yield Buffer.from('bytes é')
      yield { data: 'x', other: true }
    }))
  })
  const client = await openStream(`${url}/answer`)
  await client.ended
  t.equal(client.status, 200)
  t.match(client.headers['content-type'], /^text\/event-stream/)
  t.equal(client.headers['cache-control'], 'no-cache, no-transform')
  t.equal(client.headers['x-accel-buffering'], 'no')
  t.same(client.events.map(({ event, data, id }) => ({ event, data, id })), [
    { event: undefined, data: 'Hello', id: undefined },
    { event: 'json', data: '{"n":1}', id: 'a1' },
    { event: undefined, data: 'bytes é', id: undefined },
    { event: undefined, data: '{"data":"x","other":true}', id: undefined },
    { event: 'push-stream:end', data: '{"reason":"done"}', id: undefined }
  ])
  t.same(client.retries, [3000, 5000], 'the opening retry, then the item\'s')
  t.equal(app.pushStream.stats().streams, 0)
  t.equal(app.pushStream.stats().connections, 0)
})

t.test('a source function gets lastEventId from the header or the query, and the request', async (t) => {
  const seen: Array<string | undefined> = []
  const { url } = await startApp(t, {}, (app) => {
    app.get('/resume', (request, reply) => reply.sse(async ({ lastEventId, request: req }) => {
      seen.push(lastEventId)
      // A promise of an iterable is waited for.
      return [req.url === request.url ? 'same request' : 'other']
    }))
  })
  await (await openStream(`${url}/resume`, { 'last-event-id': '41' })).ended
  await (await openStream(`${url}/resume?lastEventId=42`)).ended
  const plain = await openStream(`${url}/resume`)
  await plain.ended
  t.same(seen, ['41', '42', undefined])
  t.equal(plain.events[0]?.data, 'same request')
})

t.test('a source that throws: push-stream:error with the code only, logged once with the request id', async (t) => {
  const logs = new LogCapture()
  const app = Fastify({ logger: logs.logger })
  t.teardown(() => app.close())
  await app.register(pushStream, { interval: 0 })
  app.get('/fails', (_request, reply) => reply.sse(async function * () {
    yield 'before'
    throw new Error('upstream key sk-secret-123 refused')
  }))
  app.get('/throws-at-once', (_request, reply) => reply.sse(() => { throw new Error('sk-secret-456') }))
  app.get('/bad-item', (_request, reply) => reply.sse([{ data: 'ok' }, { data: 'bad', event: 'a\nb' }, { data: 'after' }]))
  app.get('/no-iterable', (_request, reply) => reply.sse(async () => 42 as unknown as string[]))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  for (const [path, before] of [['/fails', ['before']], ['/throws-at-once', []], ['/bad-item', ['ok']], ['/no-iterable', []]] as const) {
    const client = await openStream(url + path)
    await client.ended
    t.same(client.events.map((event) => event.data), [...before, '{"code":"FST_PUSH_STREAM_SOURCE_FAILED"}'], path)
    t.equal(client.events.at(-1)?.event, 'push-stream:error')
    t.notMatch(client.raw, /secret|after|a\nb/, 'no secret, and nothing of or after the bad item')
  }
  const failures = logs.lines.filter((line) => line.msg === 'fastify-push-stream: the stream\'s source failed')
  t.equal(failures.length, 4, 'one error line per failed stream')
  t.ok(failures.every((line) => line.level === 50 && typeof line.reqId === 'string'), 'at error level, with the request id')
  t.same(failures.map((line) => (line.err as { code: string }).code), Array(4).fill('FST_PUSH_STREAM_SOURCE_FAILED'))
  t.match((failures[2]?.err as { message: string }).message, /FST_PUSH_STREAM_INVALID_EVENT_NAME|Invalid event name/)
})

t.test('the client leaves: the signal aborts and the finally runs at once, whatever the source awaits', async (t) => {
  const hanging = hangingSource()
  const { app, url } = await startApp(t, {}, (app) => {
    app.get('/hang', (_request, reply) => reply.sse(hanging.source))
  })
  const client = await openStream(`${url}/hang`)
  await hanging.started
  t.equal(app.pushStream.stats().streams, 1)
  client.close()
  await assertReleased(t, hanging.released, 'FST_PUSH_STREAM_CLIENT_CLOSED')
  await waitFor(() => app.pushStream.stats().connections === 0, 'the stream to be forgotten')
})

t.test('a source that ignores its signal still gets return() as soon as it can take it', async (t) => {
  let finallyRan = false
  let resolveWait = (): void => {}
  const { url } = await startApp(t, {}, (app) => {
    app.get('/deaf', (_request, reply) => reply.sse(async function * () {
      try {
        yield 'first'
        await new Promise<void>((resolve) => { resolveWait = resolve })
        yield 'second'
        yield 'never'
      } finally {
        finallyRan = true
      }
    }))
  })
  const client = await openStream(`${url}/deaf`)
  await client.take(1)
  client.close()
  await client.ended
  await delay(50)
  t.notOk(finallyRan, 'an async generator in an await takes return() only once the await settles')
  resolveWait()
  await waitFor(() => finallyRan, 'the finally after the await settled')
  t.pass('return() was waiting: the generator stops at its next yield instead of running on')
})

t.test('the server closes: every source released before close() resolves', async (t) => {
  const sources = [hangingSource(), hangingSource(), hangingSource()]
  const app = Fastify()
  await app.register(pushStream, { interval: 0 })
  app.get('/hang/:n', (request, reply) => reply.sse((sources[Number((request.params as { n: string }).n)] as ReturnType<typeof hangingSource>).source))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const clients = await Promise.all(sources.map(async (_source, n) => await openStream(`${url}/hang/${n}`)))
  await Promise.all(sources.map(async (source) => await source.started))
  let released = 0
  for (const source of sources) source.released.then(() => released++)
  await app.close()
  t.equal(released, 3, 'close() resolved after every finally ran')
  for (const source of sources) await assertReleased(t, source.released, 'FST_PUSH_STREAM_SERVER_CLOSING')
  await Promise.all(clients.map(async (client) => await client.ended))
  t.ok(clients.every((client) => client.retries.length === 2), 'each got the last retry: before its connection closed')
})

t.test('the connection fails under the stream: the signal aborts with FST_PUSH_STREAM_WRITE_FAILED and its cause', async (t) => {
  const hanging = hangingSource()
  let socket: Socket | undefined
  const { url } = await startApp(t, {}, (app) => {
    app.get('/fails', (request, reply) => {
      socket = request.raw.socket
      return reply.sse(hanging.source)
    })
  })
  const client = await openStream(`${url}/fails`)
  await hanging.started
  // As a TLS layer or the kernel would fail it: with an error that is no client leaving.
  socket?.destroy(Object.assign(new Error('input/output error'), { code: 'EIO' }))
  await assertReleased(t, hanging.released, 'FST_PUSH_STREAM_WRITE_FAILED')
  const { reason } = await hanging.released
  t.equal((reason as { cause: { code: string } }).cause.code, 'EIO', 'the cause is the socket\'s error')
  await client.ended
})

t.test('a client that resets the connection (closing with unread bytes) has left: FST_PUSH_STREAM_CLIENT_CLOSED', async (t) => {
  let reason: unknown
  let aborted = (): void => {}
  const abortedP = new Promise<void>((resolve) => { aborted = resolve })
  const { url } = await startApp(t, {}, (app) => {
    app.get('/flood', (_request, reply) => reply.sse(async function * ({ signal }) {
      signal.addEventListener('abort', () => { reason = signal.reason; aborted() })
      // Keeps writing, so the reset meets a write.
      for (;;) {
        yield 'x'.repeat(1024)
        await new Promise((resolve) => setImmediate(resolve))
      }
    }))
  })
  const socket: Socket = rawGet(Number(new URL(url).port), '/flood')
  await once(socket, 'data')
  socket.resetAndDestroy()
  await waitFor(abortedP, 'the abort')
  t.equal((reason as { code: string }).code, 'FST_PUSH_STREAM_CLIENT_CLOSED')
})

t.test('paced by the client: a client that does not read stops the pulling, then is ended as stalled', async (t) => {
  let pulls = 0
  let reason: unknown
  let abortAt = 0
  let finallyAt = 0
  const item = 'y'.repeat(4096)
  const { app, url } = await startApp(t, { maxBufferedBytes: 64 * 1024 }, (app) => {
    app.get('/endless', (_request, reply) => reply.sse(function * () {
      try {
        for (;;) {
          pulls++
          yield item
        }
      } finally {
        finallyAt = performance.now()
      }
    }, { stallTimeout: 600 }))
    app.get('/endless-async', (_request, reply) => reply.sse(async function * ({ signal }) {
      signal.addEventListener('abort', () => { abortAt = performance.now(); reason = signal.reason })
      for (;;) yield item
    }, { stallTimeout: 300 }))
  })
  const socket = rawGet(Number(new URL(url).port), '/endless')
  socket.pause()
  // The kernel's buffers fill, then the plugin's; then nothing more is pulled.
  let last = -1
  while (pulls !== last) {
    last = pulls
    await delay(100)
  }
  const stopped = pulls
  await delay(300)
  t.equal(pulls, stopped, 'no item pulled while the client reads nothing')
  t.ok(pulls > 0)
  await waitFor(() => finallyAt > 0, 'the stalled stream\'s end', 5000)
  t.equal(pulls, stopped, 'still none by the end')
  socket.destroy()
  const asyncSocket = rawGet(Number(new URL(url).port), '/endless-async')
  asyncSocket.pause()
  await waitFor(() => reason !== undefined, 'the stall of the async source', 5000)
  t.equal((reason as { code: string }).code, 'FST_PUSH_STREAM_STALLED')
  t.ok(abortAt > 0)
  asyncSocket.destroy()
  await waitFor(() => app.pushStream.stats().connections === 0, 'both forgotten')
})

t.test('a stream that ends while its client reads nothing more: the client is cut after the drain grace, and close() is not held', async (t) => {
  let doneAt = 0
  // Room for the whole item: the source is pulled to its end while the client reads nothing.
  const { app, url } = await startApp(t, { maxBufferedBytes: 64 * 1024 * 1024 }, (app) => {
    // stallTimeout 0: the stream itself is never ended as stalled; its end still bounds the wait.
    app.get('/big', (_request, reply) => reply.sse(function * () {
      try {
        yield 'b'.repeat(8 * 1024 * 1024)
      } finally {
        doneAt = performance.now()
      }
    }, { stallTimeout: 0 }))
  })
  const socket = rawGet(Number(new URL(url).port), '/big')
  socket.pause()
  await waitFor(() => doneAt > 0, 'the source to finish', 5000)
  await waitFor(app.close(), 'close() to resolve', 10_000)
  const took = performance.now() - doneAt
  t.ok(took >= DRAIN_GRACE_MS - 50 && took < DRAIN_GRACE_MS + 1000, `the client was cut ${took.toFixed(0)} ms after the stream's end`)
  let received = ''
  socket.setEncoding('utf8')
  socket.on('data', (chunk: string) => { received += chunk })
  socket.resume()
  await waitFor(new Promise((resolve) => socket.once('close', resolve)), 'the client to see its connection end', 5000)
  t.notMatch(received, /event: push-stream:end/, 'the last event never reached it')
})

t.test('a slow reader gets everything, in order, and the stream holds no more than maxBufferedBytes plus one item', async (t) => {
  const count = 400
  const item = 'z'.repeat(2000)
  const { url } = await startApp(t, { maxBufferedBytes: 16 * 1024 }, (app) => {
    app.get('/many', (_request, reply) => reply.sse(async function * () {
      for (let i = 0; i < count; i++) yield { id: String(i), data: item }
    }))
  })
  const client = await openStream(`${url}/many`)
  client.request.once('response', () => {})
  await client.ended
  t.equal(client.events.length, count + 1)
  t.same(client.events.slice(0, count).map((event) => event.id), Array.from({ length: count }, (_v, i) => String(i)))
})

t.test('items ready in the same turn go out in one write', async (t) => {
  const writes: number[] = []
  const { url } = await startApp(t, {}, (app) => {
    app.get('/burst', (request, reply) => {
      const socket = request.raw.socket
      const write = socket.write.bind(socket) as (...args: unknown[]) => boolean
      socket.write = ((chunk: Buffer, ...rest: unknown[]) => { writes.push(chunk.length); return write(chunk, ...rest) }) as typeof socket.write
      return reply.sse(async function * () {
        yield 'a'
        yield 'b'
        yield 'c'
        await delay(20)
        yield 'd'
      })
    })
  })
  const client = await openStream(`${url}/burst`)
  await client.ended
  t.same(client.events.map((event) => event.data), ['a', 'b', 'c', 'd', '{"reason":"done"}'])
  const joined = Buffer.byteLength('data: a\n\ndata: b\n\ndata: c\n\n')
  t.ok(writes.includes(joined), `a, b and c in one write of ${joined} bytes (writes: ${writes.join(', ')})`)
})

t.test('heartbeats while the source is quiet', async (t) => {
  let go = (): void => {}
  const { url } = await startApp(t, { heartbeat: 100 }, (app) => {
    app.get('/thinking', (_request, reply) => reply.sse(async function * () {
      await new Promise<void>((resolve) => { go = resolve })
      yield 'answer'
    }))
  })
  const client = await openStream(`${url}/thinking`)
  await client.until(() => client.comments.length >= 2, 'two heartbeats')
  go()
  await client.ended
  t.equal(client.events[0]?.data, 'answer')
})

t.test('hooks\' headers kept; a handler that throws before reply.sse, or gives it no source, goes through Fastify\'s errors', async (t) => {
  const { url } = await startApp(t, {}, (app) => {
    app.addHook('onRequest', async (_request, reply) => { reply.header('x-trace', 'abc').header('content-length', '12') })
    app.get('/ok', (_request, reply) => reply.sse(['one']))
    app.get('/throws', async () => { throw Object.assign(new Error('nope'), { statusCode: 409 }) })
    app.get('/string', (_request, reply) => reply.sse('hello' as unknown as string[]))
    app.get('/number', (_request, reply) => reply.sse(42 as unknown as string[]))
    app.get('/options', (_request, reply) => reply.sse(['x'], { stallTimout: 5 } as never))
    app.get('/stall-option', (_request, reply) => reply.sse(['x'], { stallTimeout: -1 }))
  })
  const ok = await request(`${url}/ok`)
  t.equal(ok.status, 200)
  t.equal(ok.headers['x-trace'], 'abc')
  t.equal(ok.headers['content-length'], undefined)
  t.equal((await request(`${url}/throws`)).status, 409)
  for (const [path, code] of [['/string', 'FST_PUSH_STREAM_INVALID_SOURCE'], ['/number', 'FST_PUSH_STREAM_INVALID_SOURCE'], ['/options', 'FST_PUSH_STREAM_INVALID_STREAM_OPTIONS'], ['/stall-option', 'FST_PUSH_STREAM_INVALID_STREAM_OPTIONS']]) {
    const answer = await request(url + (path as string))
    t.equal(answer.status, 500, path)
    t.equal(JSON.parse(answer.body).code, code, path)
  }
})

t.test('counted in the connection limits: past maxConnections, 503 with Retry-After', async (t) => {
  const hanging = hangingSource()
  const { app, url } = await startApp(t, { maxConnections: 1 }, (app) => {
    app.get('/hang', (_request, reply) => reply.sse(hanging.source))
  })
  const first = await openStream(`${url}/hang`)
  await hanging.started
  t.same({ connections: app.pushStream.stats().connections, streams: app.pushStream.stats().streams }, { connections: 1, streams: 1 })
  const refused = await request(`${url}/hang`)
  t.equal(refused.status, 503)
  t.equal(refused.headers['retry-after'], '3')
  t.equal((await request(`${url}/events`)).status, 503, 'the broadcast route shares the limit')
  first.close()
})

t.test('over HTTP/2: no forbidden headers; a stream reset releases the source at once', async (t) => {
  const hanging = hangingSource()
  const { url } = await startApp(t, {}, (app) => {
    app.get('/hang', (_request, reply) => reply.sse(hanging.source))
    app.get('/done', (_request, reply) => reply.sse(['a', 'b']))
  }, { http2: true })
  const session = http2.connect(url)
  t.teardown(() => session.close())
  const done = openH2Stream(session, '/done')
  const headers = await done.response
  t.equal(headers[':status'], 200)
  t.equal(headers.connection, undefined)
  t.equal(headers['transfer-encoding'], undefined)
  await done.ended
  t.same(done.events.map((event) => event.data), ['a', 'b', '{"reason":"done"}'])
  const hang = openH2Stream(session, '/hang')
  await hanging.started
  hang.stream.close(http2.constants.NGHTTP2_CANCEL)
  await assertReleased(t, hanging.released, 'FST_PUSH_STREAM_CLIENT_CLOSED')
})

t.test('through inject: the whole stream, and destroying it releases the source', async (t) => {
  const hanging = hangingSource()
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(pushStream, { interval: 0 })
  app.get('/tokens', (_request, reply) => reply.sse(['a', 'b']))
  app.get('/hang', (_request, reply) => reply.sse(hanging.source))
  const whole = await app.inject('/tokens')
  t.equal(whole.statusCode, 200)
  t.equal(whole.body, 'retry: 3000\n\ndata: a\n\ndata: b\n\nevent: push-stream:end\ndata: {"reason":"done"}\n\n')
  const streamed = await app.inject({ url: '/hang', payloadAsStream: true })
  const body = streamed.stream()
  await once(body, 'data')
  await hanging.started
  body.destroy()
  await assertReleased(t, hanging.released, 'FST_PUSH_STREAM_CLIENT_CLOSED')
})

t.test('one route, JSON or SSE, by the Accept header', async (t) => {
  const { url } = await startApp(t, {}, (app) => {
    app.get('/jobs/:id', (request, reply) => {
      const steps = [{ step: 1 }, { step: 2 }, { step: 3 }]
      if (request.headers.accept?.includes('text/event-stream') === true) return reply.sse(steps)
      return { id: (request.params as { id: string }).id, steps }
    })
  })
  const json = await request(`${url}/jobs/7`, { headers: { accept: 'application/json' } })
  t.equal(json.status, 200)
  t.match(json.headers['content-type'], /^application\/json/)
  t.same(JSON.parse(json.body), { id: '7', steps: [{ step: 1 }, { step: 2 }, { step: 3 }] })
  const sse = await openStream(`${url}/jobs/7`, { accept: 'text/event-stream' })
  await sse.ended
  t.match(sse.headers['content-type'], /^text\/event-stream/)
  t.same(sse.events.map((event) => event.data), ['{"step":1}', '{"step":2}', '{"step":3}', '{"reason":"done"}'])
})

t.test('reply.sse is there for the registering context and its children only', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(async (scoped) => {
    await scoped.register(pushStream, { interval: 0 })
    scoped.register(async (child) => {
      child.get('/child', (_request, reply) => reply.sse(['in child']))
    })
  })
  app.get('/outside', (_request, reply) => ({ has: typeof (reply as { sse?: unknown }).sse }))
  const child = await app.inject('/child')
  t.match(child.body, /data: in child/)
  t.same(JSON.parse((await app.inject('/outside')).body), { has: 'undefined' })
})

t.test('sources that fail in other ways: a sync generator that throws, a return() that throws, options that are no object', async (t) => {
  let returned = false
  const { url } = await startApp(t, {}, (app) => {
    app.get('/sync-throws', (_request, reply) => reply.sse(function * () {
      yield 'a'
      throw new Error('sync failure')
    }))
    app.get('/return-throws', (_request, reply) => reply.sse({
      [Symbol.asyncIterator]: () => ({
        next: async () => await new Promise<IteratorResult<string>>(() => {}),
        return: () => { returned = true; throw new Error('cannot return') }
      })
    }))
    app.get('/bad-options', (_request, reply) => reply.sse(['x'], 'fast' as never))
  })
  const failing = await openStream(`${url}/sync-throws`)
  await failing.ended
  t.same(failing.events.map((event) => event.data), ['a', '{"code":"FST_PUSH_STREAM_SOURCE_FAILED"}'])
  const hanging = await openStream(`${url}/return-throws`)
  hanging.close()
  await waitFor(() => returned, 'return() to be called')
  const bad = await request(`${url}/bad-options`)
  t.equal(JSON.parse(bad.body).code, 'FST_PUSH_STREAM_INVALID_STREAM_OPTIONS')
})

t.test('a fast reader of a sync source with a small maxBufferedBytes gets everything; so does inject, which has no socket to wait for', async (t) => {
  const items = Array.from({ length: 200 }, (_v, i) => ({ id: String(i), data: 'q'.repeat(1000) }))
  const { app, url } = await startApp(t, { maxBufferedBytes: 4096 }, (app) => {
    app.get('/items', (_request, reply) => reply.sse(items))
  })
  const client = await openStream(`${url}/items`)
  await client.ended
  t.equal(client.events.length, 201)
  const injected = await app.inject('/items')
  t.equal(injected.body.split('\n\n').filter((block) => block.includes('data: q')).length, 200)
})

t.test('close() waits at most 2 s for a source that ignores its signal, then goes on and says so', async (t) => {
  const logs = new LogCapture()
  const app = Fastify({ logger: logs.logger })
  await app.register(pushStream, { interval: 0 })
  let started = (): void => {}
  const waiting = new Promise<void>((resolve) => { started = resolve })
  app.get('/deaf', (_request, reply) => reply.sse(async function * () {
    yield 'first'
    started()
    // Neither the signal nor anything else settles this.
    await new Promise(() => {})
  }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const client = await openStream(`http://127.0.0.1:${(app.server.address() as { port: number }).port}/deaf`)
  await waiting
  await app.close()
  const warned = logs.lines.filter((line) => line.msg === 'fastify-push-stream: some stream sources did not finish after their signal aborted; closing without them')
  t.equal(warned.length, 1)
  t.equal(warned[0]?.sources, 1)
  await client.ended
})

t.test('a source made after the client left is let go of at once; a client gone before reply.sse costs no source', async (t) => {
  let returned = false
  let called = 0
  let entered = (): void => {}
  const inHook = new Promise<void>((resolve) => { entered = resolve })
  let left = (): void => {}
  const gone = new Promise<void>((resolve) => { left = resolve })
  const { url } = await startApp(t, {}, (app) => {
    app.get('/slow-to-make', (_request, reply) => reply.sse(async ({ signal }) => {
      await new Promise((resolve) => signal.addEventListener('abort', resolve, { once: true }))
      return { [Symbol.iterator]: () => ({ next: () => ({ done: false, value: 'x' }), return: () => { returned = true; return { done: true, value: undefined } } }) }
    }))
    app.get('/gone-first', {
      preHandler: async (request) => {
        // The handler runs only once the client has left.
        const closed = new Promise((resolve) => request.raw.once('close', resolve))
        entered()
        await closed
        left()
      }
    }, (_request, reply) => reply.sse(() => { called++; return ['never'] }))
    app.get('/no-iterable-object', (_request, reply) => reply.sse(() => ({}) as never))
    app.get('/room-with-key', (_request, reply) => reply.sse(app.pushStream.subscribe('room'), { key: 'k' }))
  })
  const slow = await openStream(`${url}/slow-to-make`)
  slow.close()
  await waitFor(() => returned, 'the late iterator to be returned')
  const socket = rawGet(Number(new URL(url).port), '/gone-first')
  await inHook
  socket.destroy()
  await gone
  // The handler has run by the next turn.
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(called, 0, 'the source was never called')
  const empty = await openStream(`${url}/no-iterable-object`)
  await empty.ended
  t.same(empty.events.map((event) => event.data), ['{"code":"FST_PUSH_STREAM_SOURCE_FAILED"}'])
  const keyed = await request(`${url}/room-with-key`)
  t.equal(JSON.parse(keyed.body).code, 'FST_PUSH_STREAM_INVALID_STREAM_OPTIONS', 'a subscription takes no key')
})

t.test('a source that is always ready, read by a fast client, does not hold the event loop', async (t) => {
  let finallyRan = false
  let pulls = 0
  let pulledInFirstTurn: number | undefined
  const item = 'e'.repeat(100)
  const frameBytes = Buffer.byteLength(`data: ${item}\n\n`)
  const { url } = await startApp(t, {}, (app) => {
    app.get('/endless', (_request, reply) => reply.sse(function * () {
      // Runs once the server lets the event loop turn.
      setImmediate(() => { pulledInFirstTurn = pulls })
      try {
        for (;;) {
          pulls++
          yield item
        }
      } finally {
        finallyRan = true
      }
    }))
  })
  const client = await openStream(`${url}/endless`)
  await client.take(2000)
  client.close()
  await waitFor(() => finallyRan, 'the source to be released')
  const perWrite = Math.ceil(16 * 1024 / frameBytes)
  t.ok(pulledInFirstTurn !== undefined && pulledInFirstTurn <= perWrite + 1, `${pulledInFirstTurn} items pulled before the event loop turned (one write holds ${perWrite})`)
})

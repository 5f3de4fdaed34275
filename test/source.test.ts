import t from 'tap'
import Fastify from 'fastify'
import pushStream from '../lib/index.js'
import { LogCapture } from './helpers/log.js'
import { openStream, startApp } from './helpers/sse.js'
import { waitFor } from './helpers/wait.js'

t.test('a sync function source: its value is published, undefined skips a tick', async (t) => {
  let calls = 0
  const { app, url } = await startApp(t, {
    source: () => {
      calls++
      return calls === 2 ? undefined : { n: calls }
    }
  })
  const client = await openStream(`${url}/events`)
  t.teardown(() => client.close())
  const first = await app.pushStream.generate()
  t.match(first, { id: /^\d+-\d+$/, channel: 'default', data: { n: 1 } })
  t.equal(await app.pushStream.generate(), undefined, 'undefined publishes nothing')
  await app.pushStream.generate()
  const events = await client.take(2)
  t.same(events.map((e) => JSON.parse(e.data)), [{ n: 1 }, { n: 3 }])
  t.equal(events[0]?.id, first?.id, 'the event on the wire carries the id publish returned')
  t.equal(app.pushStream.stats().published, 2)
})

t.test('an async function source with { data, event, channel } sets the name and channel', async (t) => {
  let n = 0
  const { app, url } = await startApp(t, {
    source: async () => {
      n++
      return { data: `line ${n}`, event: 'tick', channel: n % 2 === 0 ? 'even' : 'odd' }
    }
  })
  const odd = await openStream(`${url}/events?channel=odd`)
  const even = await openStream(`${url}/events?channel=even`)
  t.teardown(() => { odd.close(); even.close() })
  for (let i = 0; i < 4; i++) await app.pushStream.generate()
  t.same((await odd.take(2)).map((e) => [e.event, e.data]), [['tick', 'line 1'], ['tick', 'line 3']])
  t.same((await even.take(2)).map((e) => [e.event, e.data]), [['tick', 'line 2'], ['tick', 'line 4']])
})

t.test('an object with other keys than data/event/channel is data, not an envelope', async (t) => {
  const { app, url } = await startApp(t, { source: () => ({ data: 1, extra: true }) })
  const client = await openStream(`${url}/events`)
  t.teardown(() => client.close())
  await app.pushStream.generate()
  const [event] = await client.take(1)
  t.same(JSON.parse(event?.data ?? ''), { data: 1, extra: true })
})

t.test('the timer calls a function source every interval, once for all clients', async (t) => {
  let calls = 0
  const { url } = await startApp(t, { interval: 20, source: () => ({ n: ++calls }) })
  const a = await openStream(`${url}/events`)
  const b = await openStream(`${url}/events`)
  t.teardown(() => { a.close(); b.close() })
  const fromA = await a.take(5)
  const fromB = await b.take(5)
  // b may have joined a tick later than a; what both saw must be the same events.
  const common = fromB.filter((e) => fromA.some((x) => x.id === e.id))
  t.ok(common.length >= 3)
  for (const event of common) t.equal(event.data, fromA.find((x) => x.id === event.id)?.data)
  const numbers = fromA.map((e) => JSON.parse(e.data).n as number)
  t.same(numbers, [...numbers].sort((x, y) => x - y), 'in order')
  t.equal(new Set(numbers).size, 5, 'one call per tick, not one per client')
})

t.test('an async iterable is consumed in order; interval 0 reads it as fast as it yields; its end stops the generator', async (t) => {
  async function * words (): AsyncGenerator<unknown> {
    yield 'alpha'
    yield { data: 'beta', event: 'greek' }
    yield 'gamma'
  }
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(pushStream, { interval: 0, source: words() })
  await app.listen({ port: 0, host: '127.0.0.1' })
  // Every event is in history, so a client that resumes from the start sees all of them.
  const { port } = app.server.address() as { port: number }
  const first = await openStream(`http://127.0.0.1:${port}/events`)
  t.teardown(() => first.close())
  await waitFor(() => app.pushStream.stats().published >= 3, 'three published')
  t.equal(await app.pushStream.generate(), undefined, 'an ended iterable gives nothing more')
  t.equal(app.pushStream.stats().published, 3)
})

t.test('a sync iterable paced by the interval', async (t) => {
  const { app, url } = await startApp(t, { interval: 100, source: ['a', 'b', 'c'] })
  const client = await openStream(`${url}/events`)
  t.teardown(() => client.close())
  const events = await client.take(3)
  t.same(events.map((e) => e.data), ['a', 'b', 'c'])
  t.equal(app.pushStream.stats().published, 3)
})

t.test('close() calls return() on the iterator of an endless source', async (t) => {
  let returned = false
  let n = 0
  const endless: AsyncIterable<number> = {
    [Symbol.asyncIterator] () {
      return {
        next: async () => ({ done: false, value: ++n }),
        return: async () => {
          returned = true
          return { done: true, value: undefined }
        }
      }
    }
  }
  const { app, url } = await startApp(t, { interval: 1, source: endless })
  const client = await openStream(`${url}/events`)
  await client.take(3)
  await app.close()
  t.ok(returned, 'return() was called')
  await client.ended
  const count = app.pushStream.stats().published
  t.ok(count >= 3)
})

t.test('a source that throws or rejects is logged with a named error and the stream goes on', async (t) => {
  const log = new LogCapture('error')
  let calls = 0
  const app = Fastify({ logger: log.logger })
  t.teardown(() => app.close())
  await app.register(pushStream, {
    interval: 5,
    source: async () => {
      calls++
      if (calls === 1) throw new Error('boom')
      if (calls === 2) return Promise.reject(new Error('async boom'))
      if (calls === 3) return { data: 1, event: 'bad\nname' }
      return { n: calls }
    }
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const client = await openStream(`http://127.0.0.1:${port}/events`)
  t.teardown(() => client.close())
  const [event] = await client.take(1)
  t.same(JSON.parse(event?.data ?? ''), { n: 4 }, 'the stream carried on after three failures')
  t.same(log.lines.slice(0, 3).map((l) => l.err?.code), [
    'FST_PUSH_STREAM_SOURCE_FAILED',
    'FST_PUSH_STREAM_SOURCE_FAILED',
    'FST_PUSH_STREAM_INVALID_EVENT_NAME'
  ])
  t.match(log.lines[0]?.err?.message, /boom/)
})

t.test('generate() rejects with the named error when the source throws', async (t) => {
  const { app } = await startApp(t, { source: () => { throw new TypeError('nope') } })
  await t.rejects(app.pushStream.generate(), { code: 'FST_PUSH_STREAM_SOURCE_FAILED', message: /nope/ })
})

t.test('an iterator whose return() throws is logged, close still resolves', async (t) => {
  const log = new LogCapture('error')
  const source: AsyncIterable<number> = {
    [Symbol.asyncIterator] () {
      return {
        next: async () => ({ done: false, value: 1 }),
        return: async () => { throw new Error('cannot stop') }
      }
    }
  }
  const app = Fastify({ logger: log.logger })
  await app.register(pushStream, { interval: 0, source })
  await app.ready()
  await app.pushStream.generate()
  await app.close()
  t.match(log.text, /FST_PUSH_STREAM_SOURCE_FAILED.*cannot stop|cannot stop.*FST_PUSH_STREAM_SOURCE_FAILED/)
  await t.rejects(app.pushStream.generate(), { code: 'FST_PUSH_STREAM_CLOSED' })
})

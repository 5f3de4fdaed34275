import t from 'tap'
import type { PushStreamOptions } from '../lib/index.js'
import { SharedLog } from './helpers/log-adapter.js'
import { loadRedisAdapter, redisUrl, skipUnlessRedis, testKey } from './helpers/redis.js'
import { openStream, startApp } from './helpers/sse.js'
import type { Teardown } from './helpers/teardown.js'

// `publish` behaves alike with every engine: code written for the in-memory
// engine runs unchanged, with the same outcome, once an adapter is added.

/** The engines a user can choose: the default, an in-process shared log, and Redis (when it answers). */
const engines: Array<{ name: string, skip: string | false, options: (t: Teardown) => Promise<PushStreamOptions> }> = [
  { name: 'the in-memory engine', skip: false, options: async () => ({}) },
  { name: 'an adapter', skip: false, options: async () => ({ adapter: new SharedLog().adapter() }) },
  {
    name: 'the Redis adapter',
    skip: skipUnlessRedis.skip,
    options: async (t) => {
      const { redisAdapter } = await loadRedisAdapter()
      return { adapter: redisAdapter({ url: redisUrl }, { key: testKey(t) }) }
    }
  }
]

for (const engine of engines) {
  t.test(`with ${engine.name}: a publish with an idempotencyKey already used stores nothing and resolves with the first one's id`, { skip: engine.skip }, async (t) => {
    const { app, url } = await startApp(t, await engine.options(t))
    const client = await openStream(`${url}/events`)
    t.teardown(() => client.close())
    const first = await app.pushStream.publish({ order: 1 }, { idempotencyKey: 'order-1' })
    const retried = await app.pushStream.publish({ order: 1 }, { idempotencyKey: 'order-1' })
    t.equal(retried.id, first.id, 'the retry is answered with the first one\'s id')
    const other = await app.pushStream.publish({ order: 2 }, { idempotencyKey: 'order-2' })
    t.not(other.id, first.id, 'another key is another event')
    await client.take(2)
    await app.pushStream.publish('last')
    await client.take(3)
    t.same(client.events.map((event) => event.data), ['{"order":1}', '{"order":2}', 'last'], 'each stored once')
    for (const key of ['', 'k'.repeat(201), 42]) {
      t.throws(() => app.pushStream.publish('x', { idempotencyKey: key as string }), { code: 'FST_PUSH_STREAM_INVALID_PUBLISH_OPTIONS', message: /idempotencyKey/ }, `${JSON.stringify(key).slice(0, 12)}: refused at once`)
    }
    t.match(await app.pushStream.publish('x', { idempotencyKey: 'k'.repeat(200) }), { id: /^\d+-\d+$/ }, '200 characters are accepted')
  })

  t.test(`with ${engine.name}: publish returns a promise of the event; bad input throws at once, the same named errors`, { skip: engine.skip }, async (t) => {
    const { app, url } = await startApp(t, await engine.options(t))
    const client = await openStream(`${url}/events?channel=room-1`)

    const returned = app.pushStream.publish({ text: 'hi' }, { event: 'chat', channel: 'room-1' })
    t.ok(returned instanceof Promise, 'a promise, whatever the engine')
    const ev = await returned
    t.match(ev, { id: /^\d+-\d+$/, event: 'chat', channel: 'room-1', data: { text: 'hi' } })
    const [received] = await client.take(1)
    t.same(received, { id: ev.id, event: 'chat', data: '{"text":"hi"}' }, 'the id it resolved with is the one on the wire')

    // The README's pattern: an un-awaited publish inside try/catch catches bad input.
    const bad: Array<[() => unknown, string]> = [
      [() => app.pushStream.publish('x', { channel: 'bad channel' }), 'FST_PUSH_STREAM_INVALID_CHANNEL'],
      [() => app.pushStream.publish('x', { event: 'a\nb' }), 'FST_PUSH_STREAM_INVALID_EVENT_NAME'],
      [() => app.pushStream.publish(10n), 'FST_PUSH_STREAM_SERIALIZE_FAILED'],
      // An event name given where the options belong is caught, not silently dropped.
      [() => app.pushStream.publish('x', 'chat' as never), 'FST_PUSH_STREAM_INVALID_PUBLISH_OPTIONS'],
      [() => app.pushStream.publish('x', null as never), 'FST_PUSH_STREAM_INVALID_PUBLISH_OPTIONS'],
      [() => app.pushStream.publish('x', ['chat'] as never), 'FST_PUSH_STREAM_INVALID_PUBLISH_OPTIONS'],
      [() => app.pushStream.publish('x', { event: 'chat', chanel: 'room-1' } as never), 'FST_PUSH_STREAM_INVALID_PUBLISH_OPTIONS']
    ]
    const caught = bad.map(([call, code]) => {
      try {
        call()
      } catch (error) {
        t.match(error, { code }, `${code}: thrown at once, never a rejection`)
        return error
      }
      t.fail(`${code}: nothing was thrown`)
      return undefined
    })
    t.ok(caught[3] instanceof TypeError, 'options that are not an object are a TypeError')
    t.match(caught[3], { message: /got "chat", expected an object/ })
    t.match(caught[6], { message: /unknown key "chanel"/ })

    const after = await app.pushStream.publish('after the bad ones', { channel: 'room-1' })
    const events = await client.take(2)
    t.same(events.map((e) => [e.id, e.data]), [[ev.id, '{"text":"hi"}'], [after.id, 'after the bad ones']], 'nothing of the bad calls was sent or stored')
    t.equal(app.pushStream.stats().published, 2)

    await app.close()
    t.throws(() => app.pushStream.publish('late'), { code: 'FST_PUSH_STREAM_CLOSED' }, 'after close: thrown at once as well')
  })
}

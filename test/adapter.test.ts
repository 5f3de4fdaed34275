import t from 'tap'
import Fastify from 'fastify'
import pushStream, { type PushStreamAdapter, type PushStreamOptions } from '../lib/index.js'
import { LEASE_RENEW_MS, LeaseKeeper } from '../lib/lease.js'
import { LogCapture } from './helpers/log.js'
import { SharedLog } from './helpers/log-adapter.js'
import { openStream, startApp } from './helpers/sse.js'
import type { Teardown } from './helpers/teardown.js'
import { waitFor } from './helpers/wait.js'

// The plugin's adapter path, driven through a shared log in this process:
// several app instances, each on its own port, as behind a load balancer.

/**
 * Instance A publishes "one"; instance B starts after it, so B's history
 * lacks it; the log then holds its answers to replay until `release()`.
 */
async function laterInstanceWithSlowLog (t: Teardown, options: PushStreamOptions = {}) {
  const log = new SharedLog()
  const a = await startApp(t, { adapter: log.adapter() })
  await a.app.pushStream.publish('one')
  const b = await startApp(t, { ...options, adapter: log.adapter() })
  let release = (): void => {}
  log.hold = new Promise((resolve) => { release = resolve })
  return { a, b, release }
}

t.test('an event published on one instance reaches the clients of every instance, with the log\'s id', async (t) => {
  const log = new SharedLog()
  const a = await startApp(t, { adapter: log.adapter() })
  const b = await startApp(t, { adapter: log.adapter() })
  const onA = await openStream(`${a.url}/events`)
  const onB = await openStream(`${b.url}/events?channel=news`)
  const published = a.app.pushStream.publish({ text: 'hi' }, { event: 'chat', channel: 'news' })
  t.ok(published instanceof Promise, 'with an adapter, publish answers with a promise')
  t.same(await published, { id: '1-1', event: 'chat', channel: 'news', data: { text: 'hi' } })
  await b.app.pushStream.publish('plain')
  const [event] = await onB.take(1)
  t.same(event, { id: '1-1', event: 'chat', data: '{"text":"hi"}' })
  t.same((await onA.take(1)).map((e) => [e.id, e.data]), [['1-2', 'plain']], 'a client of the default channel gets only its own')
  t.equal(a.app.pushStream.stats().published, 1, 'each instance counts what it published')
  t.equal(b.app.pushStream.stats().published, 1)
})

t.test('a client resumes on another instance, which asks the log for what its own history lacks', async (t) => {
  const log = new SharedLog()
  const a = await startApp(t, { adapter: log.adapter() })
  const onA = await openStream(`${a.url}/events`)
  for (const n of [1, 2, 3]) await a.app.pushStream.publish(`e${n}`)
  const seen = await onA.take(1)
  onA.close()
  // B starts after e1..e3, so its local history holds none of them.
  const b = await startApp(t, { adapter: log.adapter() })
  const fresh = await openStream(`${b.url}/events`)
  t.match(fresh.raw, /^retry: 3000\nid: 1-3\nevent: push-stream:open\ndata: \{"retry":3000,"heartbeat":15000\}\n\n/, 'a fresh client is told the log\'s newest id')
  const resumed = await openStream(`${b.url}/events`, { 'last-event-id': seen[0]?.id as string })
  await b.app.pushStream.publish('e4')
  t.same((await resumed.take(3)).map((e) => e.data), ['e2', 'e3', 'e4'], 'the missed events, then live ones, none twice')
  t.equal(b.app.pushStream.stats().replayed, 2)
  const again = await openStream(`${b.url}/events`, { 'last-event-id': '1-3' })
  await b.app.pushStream.publish('e5')
  t.same((await again.take(2)).map((e) => e.data), ['e4', 'e5'], 'an id B has seen is answered from its own history')
  const fromStart = await openStream(`${b.url}/events`, { 'last-event-id': '0-0' })
  t.same((await fromStart.take(5)).map((e) => e.data), ['e1', 'e2', 'e3', 'e4', 'e5'], 'the start of an untrimmed log replays it all')
})

t.test('an id the log cannot answer gets a reset; a log that fails to answer too', async (t) => {
  const log = new SharedLog()
  const { lines, logger } = new LogCapture()
  const a = await startApp(t, { adapter: log.adapter() })
  await a.app.pushStream.publish('old')
  const b = await startApp(t, { adapter: log.adapter() }, undefined, { logger })
  for (const id of ['9-9', 'not-an-id']) {
    const client = await openStream(`${b.url}/events`, { 'last-event-id': id })
    const [reset] = await client.take(1)
    t.same(reset, { id: '1-1', event: 'reset', data: '{"reason":"unknown-last-event-id"}' }, `${id}: reset`)
  }
  log.failure = new Error('connection refused')
  const client = await openStream(`${b.url}/events`, { 'last-event-id': '1-1' })
  // 1-1 is B's origin: answered locally, the log is not asked.
  await (a.app.pushStream.publish('new') as Promise<unknown>).catch(() => {})
  const old = await openStream(`${b.url}/events`, { 'last-event-id': '1-0' })
  t.equal((await old.take(1))[0]?.event, 'reset', 'the log failed: reset')
  t.ok(lines.some((line) => line.level === 40 && /could not replay/.test(line.msg) && line.err?.message === 'connection refused'), 'and a warning')
  t.equal(b.app.pushStream.stats().resets, 3)
  t.equal(client.events.length, 0)
})

t.test('a gap in the log: what was read before it goes out first, then every client, live or resuming, gets a reset at its head', async (t) => {
  const log = new SharedLog()
  const adapter = log.adapter()
  const capture = new LogCapture()
  const { app, url } = await startApp(t, { adapter }, undefined, { logger: capture.logger })
  const live = await openStream(`${url}/events`)
  await app.pushStream.publish('e1')
  await live.take(1)
  // A client whose replay is being asked from the log when the gap is found.
  let release = (): void => {}
  log.hold = new Promise((resolve) => { release = resolve })
  const resuming = await openStream(`${url}/events`, { 'last-event-id': '0-5' })
  await waitFor(() => app.pushStream.stats().connections === 2, 'the resuming client')
  // Read in the same turn as the gap: written before the reset.
  log.inject({ id: '1-2', channel: 'default', event: undefined, data: 'e2' })
  adapter.lose({ after: '1-2', head: '5-0', reason: 'trimmed' })
  log.inject({ id: '5-1', channel: 'default', event: undefined, data: 'e3' })
  const reset = { id: '5-0', event: 'reset', data: '{"reason":"events-lost"}' }
  t.same(await live.take(4), [{ id: '1-1', data: 'e1' }, { id: '1-2', data: 'e2' }, reset, { id: '5-1', data: 'e3' }])
  t.same(await resuming.take(2), [reset, { id: '5-1', data: 'e3' }], 'the client being resumed: the reset instead of its replay, then live')
  release()
  log.inject({ id: '5-2', channel: 'default', event: undefined, data: 'e4' })
  t.same((await resuming.take(3)).slice(2).map((event) => event.data), ['e4'], 'the replay that answered late writes nothing')
  t.match(app.pushStream.stats(), { resets: 2 })
  t.match(capture.lines.filter((line) => line.level === 40 && /trimmed from the shared log/.test(line.msg)), [{ reason: 'trimmed', after: '1-2', head: '5-0', clients: 2 }])
  adapter.lose({ after: '5-2', head: 'not an id', reason: 'lost' })
  t.match(capture.lines.filter((line) => line.level === 50), [{ msg: /a head that is not an event id; ignored/ }])
  t.match(app.pushStream.stats(), { resets: 2 }, 'and nobody was reset')
})

t.test('stats().lag: from an adapter that tells how far behind its reading is; absent when it cannot', async (t) => {
  const log = new SharedLog()
  let seen: { newestId: string, behind: number } | undefined = { newestId: '1-0', behind: 3 }
  const adapter = Object.assign(log.adapter(), { lag: () => seen })
  const { app } = await startApp(t, { adapter })
  t.same(app.pushStream.stats().lag, { deliveredId: '0-0', newestId: '1-0', behind: 3, ms: 1 })
  seen = { newestId: 'not an id', behind: 1 }
  t.equal('lag' in app.pushStream.stats(), false, 'a newest id that is not one: no lag')
  seen = undefined
  t.equal('lag' in app.pushStream.stats(), false)
  const plain = await startApp(t, { adapter: log.adapter() })
  t.equal('lag' in plain.app.pushStream.stats(), false, 'an adapter without lag()')
  const local = await startApp(t)
  t.equal('lag' in local.app.pushStream.stats(), false, 'no adapter')
})

t.test('a client that leaves, or a server that closes, while the log is asked: nothing is written after', async (t) => {
  const { b, release } = await laterInstanceWithSlowLog(t)
  const leaving = await openStream(`${b.url}/events`, { 'last-event-id': '0-0' })
  const staying = await openStream(`${b.url}/events`, { 'last-event-id': '0-0' })
  t.equal(b.app.pushStream.stats().connections, 2, 'a resuming client counts as connected')
  leaving.close()
  await waitFor(() => b.app.pushStream.stats().connections === 1, 'the leaving client to be let go')
  const closing = b.app.close()
  await staying.ended
  release()
  await closing
  t.match(staying.raw, /^retry: 3000\nevent: push-stream:open\ndata: \{"retry":3000,"heartbeat":15000\}\n\nretry: \d+\n\n$/, 'the opening block, then the last retry: nothing replayed after close')
})

t.test('events that arrive while the log is asked follow the replay, once each', async (t) => {
  const { a, b, release } = await laterInstanceWithSlowLog(t)
  const client = await openStream(`${b.url}/events`, { 'last-event-id': '0-0' })
  const watcher = await openStream(`${b.url}/events`)
  await a.app.pushStream.publish('two')
  await watcher.take(1)
  release()
  await a.app.pushStream.publish('three')
  t.same((await client.take(3)).map((e) => [e.id, e.data]), [['1-1', 'one'], ['1-2', 'two'], ['1-3', 'three']])
  t.equal(b.app.pushStream.stats().replayed, 2)
})

t.test('a client ahead of the instance it lands on goes live once that instance caught up, and gets nothing twice', async (t) => {
  const log = new SharedLog()
  const a = await startApp(t, { adapter: log.adapter() })
  const behind = log.adapter()
  const b = await startApp(t, { adapter: behind })
  const onA = await openStream(`${a.url}/events`)
  const watcher = await openStream(`${b.url}/events`)
  await a.app.pushStream.publish('one')
  await watcher.take(1)
  behind.holdDeliveries()
  await a.app.pushStream.publish('two')
  await a.app.pushStream.publish('three')
  const seen = await onA.take(3)
  const moved = await openStream(`${b.url}/events`, { 'last-event-id': seen[2]?.id as string })
  t.equal(b.app.pushStream.stats().connections, 2, 'waiting, but connected')
  await behind.catchUp()
  await watcher.take(3)
  await a.app.pushStream.publish('four')
  await watcher.take(4)
  t.same((await moved.take(1)).map((e) => e.data), ['four'], 'only what it had not seen')
  behind.holdDeliveries()
  await a.app.pushStream.publish('five')
  const ahead = (await onA.take(5))[4]?.id as string
  const leaving = await openStream(`${b.url}/events`, { 'last-event-id': ahead })
  await waitFor(() => b.app.pushStream.stats().connections === 3, 'the client ahead to wait')
  leaving.close()
  await waitFor(() => b.app.pushStream.stats().connections === 2, 'a waiting client that leaves to be let go')
})

t.test('events the history no longer holds by the time the log answered: reset', async (t) => {
  const { a, b, release } = await laterInstanceWithSlowLog(t, { history: 1 })
  const client = await openStream(`${b.url}/events`, { 'last-event-id': '0-0' })
  const watcher = await openStream(`${b.url}/events`)
  await a.app.pushStream.publish('two')
  await a.app.pushStream.publish('three')
  await watcher.take(2)
  release()
  const [reset] = await client.take(1)
  t.same(reset, { id: '1-3', event: 'reset', data: '{"reason":"unknown-last-event-id"}' })
})

t.test('publish through an adapter rejects with named errors, and sends nothing', async (t) => {
  const log = new SharedLog()
  const { app } = await startApp(t, { adapter: log.adapter() })
  await t.rejects(async () => await app.pushStream.publish('x', { channel: 'bad channel' }), { code: 'FST_PUSH_STREAM_INVALID_CHANNEL' })
  log.failure = new Error('connection refused')
  const error = await (app.pushStream.publish('x') as Promise<unknown>).catch((err: unknown) => err) as Error & { code: string, statusCode: number, cause: unknown }
  t.equal(error.code, 'FST_PUSH_STREAM_ADAPTER_UNAVAILABLE')
  t.equal(error.statusCode, 503)
  t.equal(error.cause, log.failure, 'with the cause')
  t.match(error.message, /connection refused/)
  const named = Object.assign(new Error('the adapter\'s own words'), { code: 'FST_PUSH_STREAM_ADAPTER_UNAVAILABLE' })
  log.failure = named
  await t.rejects(async () => await app.pushStream.publish('x'), named, 'an adapter\'s own named error is passed on as it is')
  t.equal(log.events.length, 0)
  t.equal(app.pushStream.stats().published, 0)
})

t.test('an entry of the log the plugin could not have written is skipped, with a warning', async (t) => {
  const log = new SharedLog()
  const { lines, logger } = new LogCapture()
  const { url } = await startApp(t, { adapter: log.adapter() }, undefined, { logger })
  const client = await openStream(`${url}/events`)
  log.inject({ id: 'x', channel: 'default', event: undefined, data: 'bad id' })
  log.inject({ id: '1-7', channel: 'no spaces allowed', event: undefined, data: 'bad channel' })
  log.inject({ id: '1-8', channel: 'default', event: 'a\nb', data: 'bad event name' })
  log.inject({ id: '1-9', channel: 'default', event: undefined, data: 'good' })
  t.same((await client.take(1)).map((e) => [e.id, e.data]), [['1-9', 'good']])
  t.equal(lines.filter((line) => /skipped an entry/.test(line.msg)).length, 3)
  // An instance started after them has to ask the log for them.
  const later = await startApp(t, { adapter: log.adapter() }, undefined, { logger })
  const resumed = await openStream(`${later.url}/events`, { 'last-event-id': '0-0' })
  t.same((await resumed.take(1)).map((e) => e.data), ['good'], 'and skipped in a replay too')
  // The entry on a channel the client did not ask for is not even returned by the log.
  t.equal(lines.filter((line) => /skipped an entry/.test(line.msg)).length, 5)
})

t.test('an adapter whose start() resolves with something not an id fails at ready with a named error', async (t) => {
  const broken: PushStreamAdapter = {
    start: async () => 'latest',
    publish: async () => '1-1',
    replay: async () => null,
    lease: async () => false,
    close: async () => {}
  }
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(pushStream, { adapter: broken, interval: 0 })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_PUSH_STREAM_INVALID_OPTION', message: /"adapter": got a start\(\) that resolved with "latest"/ })
})

t.test('the generator runs on the instance that holds the lease, and moves when it closes', async (t) => {
  const log = new SharedLog()
  const keepAlive = setInterval(() => {}, 1000)
  t.teardown(() => clearInterval(keepAlive))
  const counter = (name: string): { source: () => string } => {
    let n = 0
    return { source: () => `${name}${++n}` }
  }
  const a = await startApp(t, { adapter: log.adapter(), interval: 20, ...counter('a') })
  const b = await startApp(t, { adapter: log.adapter(), interval: 20, ...counter('b') })
  const client = await openStream(`${b.url}/events`)
  await client.take(5)
  t.ok(client.events.every((e) => e.data.startsWith('a')), 'only the first instance generates')
  await a.app.close()
  await waitFor(() => client.events.some((e) => e.data.startsWith('b')), 'the second instance to take over', 5 * LEASE_RENEW_MS)
  const ids = client.events.map((e) => Number(e.id?.split('-')[1]))
  t.same(ids, [...ids].sort((x, y) => x - y), 'one ordered stream of events across the handover')
})

t.test('a lease keeper stopped before its first answer never starts renewing', async (t) => {
  const adapter = new SharedLog().adapter()
  let asked = 0
  const counting = { ...adapter, lease: async (name: string, ttlMs: number) => { asked++; return await adapter.lease(name, ttlMs) } }
  const keeper = new LeaseKeeper(counting, 'generator', () => {})
  const starting = keeper.start()
  keeper.stop()
  await starting
  t.equal(keeper.held, false)
  // Nothing is left to wait for: give a renewal, had one been scheduled, its time to happen.
  await new Promise((resolve) => setTimeout(resolve, LEASE_RENEW_MS * 1.5))
  t.equal(asked, 1, 'asked once, never renewed')
})

t.test('a lease the adapter cannot answer for is not held, and the failure is logged', async (t) => {
  const log = new SharedLog()
  log.failure = new Error('connection refused')
  const { lines, logger } = new LogCapture()
  const keepAlive = setInterval(() => {}, 1000)
  t.teardown(() => clearInterval(keepAlive))
  const { app } = await startApp(t, { adapter: log.adapter(), interval: 10, source: () => 'tick' }, undefined, { logger })
  await waitFor(() => lines.some((line) => /generator lease/.test(line.msg)), 'the warning')
  t.equal(log.events.length, 0, 'nothing generated without the lease')
  log.failure = undefined
  await waitFor(() => log.events.length > 0, 'the lease, once the engine is back', 5 * LEASE_RENEW_MS)
  await app.close()
  t.equal(log.leases.size, 0, 'close lets go of the lease')
})

import t from 'tap'
import { StreamClient, idOf, openStream, request, startApp, startAppClosingDuringAuthorize } from './helpers/sse.js'

t.test('?handshake=1: a fresh stream opens with a push-stream:open event carrying retry, heartbeat and the starting id', async (t) => {
  const { app, url } = await startApp(t, { retry: 1234, heartbeat: 2500 })
  const before = await idOf(app.pushStream.publish('before'))
  const client = await openStream(`${url}/events?handshake=1`)
  t.teardown(() => client.close())
  const open = await client.open()
  t.equal(open.event, 'push-stream:open')
  t.equal(open.id, before, 'the starting id is the newest event')
  t.same(JSON.parse(open.data), { retry: 1234, heartbeat: 2500 }, 'the client sizes its stall watchdog by the heartbeat')
  t.same(client.retries, [1234])
  app.pushStream.publish('live')
  t.equal((await client.take(1))[0]?.data, 'live')
})

t.test('?handshake=1 when resuming: the open event has no id, then the replay', async (t) => {
  const { app, url } = await startApp(t)
  const first = await idOf(app.pushStream.publish('one'))
  app.pushStream.publish('two')
  const client = await openStream(`${url}/events?handshake=1&lastEventId=${first}`)
  t.teardown(() => client.close())
  const open = await client.open()
  const [replayed] = await client.take(1)
  t.equal(open.event, 'push-stream:open')
  t.equal(open.id, undefined, 'the open event sets no id: the client keeps the one it resumed from')
  t.same(JSON.parse(open.data), { retry: 3000, heartbeat: 15000 }, 'the defaults')
  t.notMatch(client.raw.split('data: {"retry"')[0] ?? '', /id:/, 'no id line before the open event data')
  t.equal(replayed?.data, 'two')
})

t.test('?handshake=1 with an unknown id: open event, then reset', async (t) => {
  const { app, url } = await startApp(t)
  const newest = await idOf(app.pushStream.publish('x'))
  const client = await openStream(`${url}/events?handshake=1&lastEventId=1-1`)
  t.teardown(() => client.close())
  const open = await client.open()
  const [reset] = await client.take(1)
  t.equal(open.event, 'push-stream:open')
  t.equal(reset?.event, 'reset')
  t.equal(reset?.id, newest)
})

t.test('past maxConnections: a plain client gets 503, the browser client a retry event on a 200 stream that ends', async (t) => {
  const { url } = await startApp(t, { maxConnections: 1, retry: 700 })
  const holder = await openStream(`${url}/events`)
  t.teardown(() => holder.close())
  t.equal((await request(`${url}/events`)).status, 503)
  const refused = new StreamClient(`${url}/events?handshake=1`)
  await refused.ended
  t.equal(refused.status, 200)
  t.equal(refused.headers['content-type'], 'text/event-stream; charset=utf-8')
  t.match(refused.events, [{ event: 'push-stream:retry' }])
  t.same(JSON.parse(refused.events[0]?.data ?? ''), { after: 700, reason: 'FST_PUSH_STREAM_TOO_MANY_CONNECTIONS' })
  t.same(refused.retries, [700])
})

t.test('the browser client waiting in authorize when close begins gets a retry event', async (t) => {
  const { app, url, authorizing, hold } = await startAppClosingDuringAuthorize()
  const pending = new StreamClient(`${url}/events?handshake=1`)
  hold(pending)
  await authorizing
  await app.close()
  t.equal(pending.status, 200)
  t.same(JSON.parse(pending.events[0]?.data ?? ''), { after: 3000, reason: 'FST_PUSH_STREAM_SHUTTING_DOWN' })
})

// The diagnostics_channel messages, each for each of its causes, and the counters stats() and presence add.
import diagnosticsChannel from 'node:diagnostics_channel'
import t from 'tap'
import { diagnostics } from '../lib/index.js'
import { SharedLog } from './helpers/log-adapter.js'
import { openStream, rawGet, startApp } from './helpers/sse.js'
import type { Teardown } from './helpers/teardown.js'
import { waitFor } from './helpers/wait.js'

/** Every message of the channel `name` from now until the test ends. */
function listen<T> (t: Teardown, name: keyof typeof diagnostics): T[] {
  const messages: T[] = []
  const channel = diagnostics[name]
  const onMessage = (message: unknown): void => { messages.push(message as T) }
  channel.subscribe(onMessage)
  t.teardown(() => { channel.unsubscribe(onMessage) })
  return messages
}

t.test('the channels are the named ones of node:diagnostics_channel', async (t) => {
  t.same(Object.keys(diagnostics).sort(), ['adapterOutage', 'adapterRecovery', 'end', 'open', 'publish', 'reset', 'slow'])
  for (const [key, name] of [['open', 'open'], ['end', 'end'], ['publish', 'publish'], ['reset', 'reset'], ['slow', 'slow'], ['adapterOutage', 'adapter-outage'], ['adapterRecovery', 'adapter-recovery']] as const) {
    t.equal(diagnostics[key], diagnosticsChannel.channel(`fastify-push-stream:${name}`), `${key} is fastify-push-stream:${name}`)
  }
  t.ok(Object.isFrozen(diagnostics))
})

t.test('open, publish, reset and end for broadcast streams: fresh, resumed with a replay, resumed with a reset; presence counts', async (t) => {
  const opened = listen<Record<string, unknown>>(t, 'open')
  const published = listen<Record<string, unknown>>(t, 'publish')
  const resets = listen<Record<string, unknown>>(t, 'reset')
  const ended = listen<Record<string, unknown>>(t, 'end')
  const { app, url } = await startApp(t)
  const fresh = await openStream(`${url}/events?channel=news&channel=default`)
  await waitFor(() => opened.length === 1, 'the fresh stream')
  t.match(opened[0], { requestId: /\S/, kind: 'broadcast', channels: ['news', 'default'], url: '/events?channel=news&channel=default', resumed: false, replayed: 0 })
  t.equal(app.pushStream.subscribers('news'), 1)
  t.equal(app.pushStream.subscribers('default'), 1)
  t.equal(app.pushStream.subscribers('sport'), 0)
  t.throws(() => app.pushStream.subscribers('no spaces'), { code: 'FST_PUSH_STREAM_INVALID_CHANNEL' })

  const first = await app.pushStream.publish({ n: 1 }, { channel: 'news', event: 'headline' })
  await app.pushStream.publish('two')
  // Both are written at the end of the event loop's turn: the client has them once they went out.
  await fresh.take(2)
  t.match(published, [
    { id: first.id, channel: 'news', event: 'headline', bytes: Buffer.byteLength(`id: ${first.id}\nevent: headline\ndata: {"n":1}\n\n`), subscribers: 1 },
    { channel: 'default', event: undefined, subscribers: 1 }
  ])
  const resumed = await openStream(`${url}/events`, { 'last-event-id': first.id })
  await waitFor(() => opened.length === 2, 'the resumed stream')
  t.match(opened[1], { kind: 'broadcast', channels: ['default'], resumed: true, replayed: 1 })
  t.equal(app.pushStream.subscribers('default'), 2)
  const unknown = await openStream(`${url}/events`, { 'last-event-id': '1-0' })
  await waitFor(() => opened.length === 3, 'the stream reset')
  t.match(opened[2], { resumed: true, replayed: 0 })
  t.match(resets, [{ requestId: opened[2]?.requestId, reason: 'unknown-last-event-id', id: /^\d+-\d+$/ }])

  unknown.close()
  await waitFor(() => ended.length === 1, 'the client that left')
  t.match(ended[0], { requestId: opened[2]?.requestId, reason: 'client-closed', durationMs: Number, bytes: Number, events: 2 })
  await waitFor(() => app.pushStream.subscribers('default') === 2, 'presence to drop the client that left')
  const stats = app.pushStream.stats()
  t.ok(stats.bytesWritten >= fresh.raw.length + resumed.raw.length, `bytes written counted (${stats.bytesWritten})`)
  t.equal(stats.resumable, 0)
  resumed.close()
  await waitFor(() => ended.length === 2, 'the second client that left')
  await app.close()
  t.same(ended.map((message) => message.reason).sort(), ['client-closed', 'client-closed', 'server-closing'])
  t.equal(app.pushStream.subscribers('news'), 0, 'presence after close')
})

t.test('per-request streams: open as a source; end done, source failed, stalled', async (t) => {
  const opened = listen<Record<string, unknown>>(t, 'open')
  const ended = listen<Record<string, unknown>>(t, 'end')
  const { url } = await startApp(t, {}, (app) => {
    app.get('/done', (_request, reply) => reply.sse(['a', 'b']))
    app.get('/failed', (_request, reply) => reply.sse(async function * () {
      yield 'a'
      throw new Error('the source failed')
    }()))
    app.get('/stalled', (_request, reply) => reply.sse(function * () { for (;;) yield 'y'.repeat(4096) }, { stallTimeout: 200 }))
  })
  await (await openStream(`${url}/done`)).ended
  t.match(opened, [{ kind: 'source', channels: [], url: '/done', resumed: false, replayed: 0 }])
  await waitFor(() => ended.length === 1, 'the end of /done')
  t.match(ended[0], { reason: 'done', events: 2 })
  await (await openStream(`${url}/failed`, { 'last-event-id': '3' })).ended
  await waitFor(() => ended.length === 2, 'the end of /failed')
  t.match(opened[1], { url: '/failed', resumed: true })
  t.match(ended[1], { reason: 'source-failed' })
  const socket = rawGet(Number(new URL(url).port), '/stalled')
  t.teardown(() => socket.destroy())
  socket.pause()
  await waitFor(() => ended.length === 3, 'the stalled stream to be ended', 10_000)
  t.match(ended[2], { reason: 'stalled' })
})

t.test('reset for a resumable stream whose key is not kept: no id to carry', async (t) => {
  const resets = listen<Record<string, unknown>>(t, 'reset')
  const { url } = await startApp(t, {}, (app) => {
    app.get('/answers/:key', (request, reply) => reply.sse(['never'], { key: (request.params as { key: string }).key }))
  })
  await (await openStream(`${url}/answers/gone`, { 'last-event-id': '3' })).ended
  t.match(resets, [{ requestId: /\S/, reason: 'unknown-last-event-id', id: undefined }])
})

t.test('slow: a client cut off past maxBufferedBytes, with what was waiting', async (t) => {
  const slow = listen<Record<string, unknown>>(t, 'slow')
  const ended = listen<Record<string, unknown>>(t, 'end')
  const maxBufferedBytes = 64 * 1024
  const { app, url } = await startApp(t, { maxBufferedBytes })
  const socket = rawGet(Number(new URL(url).port), '/events')
  t.teardown(() => socket.destroy())
  await new Promise((resolve) => socket.once('data', resolve))
  socket.pause()
  const payload = 'x'.repeat(4096)
  for (let n = 0; n < 20_000 && app.pushStream.stats().slowDisconnects === 0; n++) {
    await app.pushStream.publish(payload)
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(slow.length, 1)
  t.match(slow[0], { requestId: /\S/, maxBufferedBytes })
  t.ok((slow[0]?.bufferedBytes as number) > 0 && (slow[0]?.bufferedBytes as number) <= maxBufferedBytes, 'what was waiting')
  t.match(ended, [{ requestId: slow[0]?.requestId, reason: 'too-slow' }])
})

t.test('a gap in the shared log: reset messages with events-lost for each client', async (t) => {
  const resets = listen<Record<string, unknown>>(t, 'reset')
  const log = new SharedLog()
  const adapter = log.adapter()
  const { app, url } = await startApp(t, { adapter })
  await openStream(`${url}/events`)
  await openStream(`${url}/events`)
  await waitFor(() => app.pushStream.subscribers('default') === 2, 'two clients')
  adapter.lose({ after: '0-0', head: '3-0', reason: 'lost' })
  t.match(resets, [{ reason: 'events-lost', id: '3-0' }, { reason: 'events-lost', id: '3-0' }])
  t.not(resets[0]?.requestId, resets[1]?.requestId)
})

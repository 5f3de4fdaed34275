import t from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import type net from 'node:net'
import type { AddressInfo } from 'node:net'
import type { Connection } from '../lib/connection.js'
import { Hub, MAX_JOINED_BYTES, joinFrames, resetFrame } from '../lib/hub.js'
import { StreamClient, rawGet } from './helpers/sse.js'
import type { Teardown } from './helpers/teardown.js'
import { waitFor } from './helpers/wait.js'

const frame = (channel: string, text: string): { channel: string, frame: Buffer } => ({ channel, frame: Buffer.from(text) })

t.test('joinFrames keeps the frames of the given channels, in order, in as few buffers as fit', async (t) => {
  const frames = [frame('a', 'one\n\n'), frame('b', 'two\n\n'), frame('a', 'three\n\n')]
  t.same(joinFrames(frames, new Set(['a'])).map(String), ['one\n\nthree\n\n'])
  t.same(joinFrames(frames, new Set(['a', 'b'])).map(String), ['one\n\ntwo\n\nthree\n\n'])
  t.same(joinFrames(frames, new Set(['c'])), [], 'nothing for a group that subscribes to none of them')
  const only = joinFrames([frames[1] as { channel: string, frame: Buffer }], new Set(['b']))
  t.equal(only[0], frames[1]?.frame, 'a single frame is written as it is, not copied')
})

t.test('joinFrames splits at MAX_JOINED_BYTES and sends a larger frame alone', async (t) => {
  const third = Math.floor(MAX_JOINED_BYTES / 3)
  const frames = [0, 1, 2, 3].map((n) => frame('a', String(n).repeat(third)))
  const big = frame('a', 'B'.repeat(MAX_JOINED_BYTES + 1))
  const joined = joinFrames([...frames, big, frame('a', 'end')], new Set(['a']))
  t.same(joined.map((buffer) => buffer.length), [3 * third, third, MAX_JOINED_BYTES + 1, 3])
  t.ok(joined.every((buffer, i) => i === 2 || buffer.length <= MAX_JOINED_BYTES))
  t.equal(Buffer.concat(joined).toString(), [...frames, big, frame('a', 'end')].map((f) => f.frame.toString()).join(''), 'the same bytes, in order')
})

/** The headers every stream of these tests opens with. */
const HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' }
const HEARTBEAT = ':\n\n'
const LAST = Buffer.from('retry: 5000\n\n')
const silent = { debug: () => {} }

/** One `write` call on the socket under a stream, in the order they happened on the server, across streams. */
interface SocketWrite { readonly name: string, readonly bytes: string }

interface Opened {
  readonly connection: Connection
  readonly res: http.ServerResponse
}

/**
 * A node:http server on 127.0.0.1 whose requests `hub` opens, each with the
 * channels and address the test asked for; closed (with every stream the hub
 * holds) in teardown. `writes` records each write to a stream's socket, in
 * server order: the socket still writes, the record only says when.
 */
async function serve (t: Teardown, hub: Hub) {
  const asked: Array<{ channels: ReadonlySet<string>, address: string, opened: (opened: Opened) => void }> = []
  const writes: SocketWrite[] = []
  const server = http.createServer((_req, res) => {
    const { channels, address, opened } = asked.shift() as typeof asked[number]
    opened({ connection: hub.open(res, HEADERS, { channels, address, log: silent }), res })
  })
  t.teardown(async () => {
    hub.closeAll(() => LAST)
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo

  const accept = async (channels: ReadonlySet<string>, address: string): Promise<Opened> => await new Promise((resolve) => asked.push({ channels, address, opened: resolve }))

  /** Opens a stream read by a real SSE parser; `name` marks its socket's writes in `writes`. */
  const connect = async (name: string, channels: ReadonlySet<string> = new Set(['a']), address = '127.0.0.1') => {
    const accepted = accept(channels, address)
    const client = new StreamClient(`http://127.0.0.1:${port}/events`)
    t.teardown(() => { client.close() })
    const { connection, res } = await accepted
    const socket = res.socket as net.Socket
    const write = socket.write
    socket.write = function (this: net.Socket, chunk: unknown, ...rest: unknown[]) {
      writes.push({ name, bytes: String(chunk) })
      return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest)
    } as typeof socket.write
    await client.opened()
    return { client, connection, res }
  }

  /** Opens a stream whose client reads nothing. */
  const connectPaused = async (channels: ReadonlySet<string> = new Set(['a']), address = '127.0.0.1') => {
    const accepted = accept(channels, address)
    const socket = rawGet(port, '/events')
    socket.pause()
    t.teardown(() => { socket.destroy() })
    return { socket, ...await accepted }
  }

  return { connect, connectPaused, writes }
}

const event = (id: number, text = `event ${id}`): Buffer => Buffer.from(`id: 1-${id}\ndata: ${text}\n\n`)

t.test('open() counts a stream and its address until it ends, subscribed or not', async (t) => {
  const ended: Connection[] = []
  const hub = new Hub({ heartbeatMs: 0, maxBufferedBytes: 1024 * 1024, onEnd: (connection) => { ended.push(connection) } })
  const { connect } = await serve(t, hub)
  const one = await connect('one', new Set(['a']), '10.0.0.1')
  const two = await connect('two', new Set(['a']), '10.0.0.1')
  const three = await connect('three', new Set(['b']), '10.0.0.2')
  hub.subscribe(one.connection)
  t.equal(hub.size, 3)
  t.equal(hub.connectionsFrom('10.0.0.1'), 2)
  t.equal(hub.connectionsFrom('10.0.0.2'), 1)
  t.equal(hub.connectionsFrom('10.0.0.3'), 0)
  t.equal(one.connection.address, '10.0.0.1')

  one.client.close()
  await waitFor(() => hub.size === 2, 'a subscribed stream to be un-counted')
  t.equal(hub.connectionsFrom('10.0.0.1'), 1)
  t.same(ended, [one.connection], 'onEnd is told of it')
  two.client.close()
  await waitFor(() => hub.size === 1, 'a stream never subscribed to be un-counted')
  t.equal(hub.connectionsFrom('10.0.0.1'), 0)
  hub.closeAll(() => LAST)
  t.equal(hub.size, 0, 'a stream ended by the server is un-counted at once')
  t.equal(hub.connectionsFrom('10.0.0.2'), 0)
  t.same(ended, [one.connection, two.connection, three.connection], 'each end told once')
})

t.test('broadcast() of one frame writes it to the subscribers of its channel only', async (t) => {
  const hub = new Hub({ heartbeatMs: 0, maxBufferedBytes: 1024 * 1024, onEnd: () => {} })
  const { connect } = await serve(t, hub)
  const a = await connect('a', new Set(['a']))
  const b = await connect('b', new Set(['b']))
  const ab = await connect('ab', new Set(['a', 'b']))
  const unsubscribed = await connect('unsubscribed', new Set(['a']))
  for (const { connection } of [a, b, ab]) hub.subscribe(connection)
  hub.broadcast([{ channel: 'a', frame: event(1) }])
  hub.broadcast([{ channel: 'c', frame: event(2) }])
  hub.broadcast([{ channel: 'b', frame: event(3) }])
  hub.closeAll(() => LAST)
  await Promise.all([a, b, ab, unsubscribed].map(async ({ client }) => await client.ended))
  // Each stream ends with the last frame: what is before it is all it was ever sent.
  t.equal(a.client.raw, `${event(1)}${LAST}`)
  t.equal(b.client.raw, `${event(3)}${LAST}`)
  t.equal(ab.client.raw, `${event(1)}${event(3)}${LAST}`)
  t.equal(unsubscribed.client.raw, String(LAST), 'a stream not subscribed gets no broadcast')
  t.same(ab.client.events.map((e) => [e.id, e.data]), [['1-1', 'event 1'], ['1-3', 'event 3']], 'a real parser reads them')
})

t.test('broadcast() of several frames gives each stream the ones of its channels, in order, in one write', async (t) => {
  const hub = new Hub({ heartbeatMs: 0, maxBufferedBytes: 1024 * 1024, onEnd: () => {} })
  const { connect, writes } = await serve(t, hub)
  const a = await connect('a', new Set(['a']))
  const a2 = await connect('a2', new Set(['a']))
  const b = await connect('b', new Set(['b']))
  const ab = await connect('ab', new Set(['b', 'a']))
  const c = await connect('c', new Set(['c']))
  for (const { connection } of [a, a2, b, ab, c]) hub.subscribe(connection)
  writes.length = 0
  hub.broadcast([{ channel: 'a', frame: event(1) }, { channel: 'b', frame: event(2) }, { channel: 'a', frame: event(3) }])
  // The order among streams is not promised; each stream's own bytes are.
  t.same([...writes].sort((x, y) => x.name.localeCompare(y.name)), [
    { name: 'a', bytes: `${event(1)}${event(3)}` },
    { name: 'a2', bytes: `${event(1)}${event(3)}` },
    { name: 'ab', bytes: `${event(1)}${event(2)}${event(3)}` },
    { name: 'b', bytes: String(event(2)) }
  ], 'one write per stream, none for a stream on other channels')
  hub.closeAll(() => LAST)
  await Promise.all([a, a2, b, ab, c].map(async ({ client }) => await client.ended))
  t.same(a.client.events.map((e) => e.data), ['event 1', 'event 3'])
  t.same(a2.client.events.map((e) => e.data), ['event 1', 'event 3'])
  t.same(b.client.events.map((e) => e.data), ['event 2'])
  t.same(ab.client.events.map((e) => e.data), ['event 1', 'event 2', 'event 3'])
  t.equal(c.client.raw, String(LAST), 'nothing for a stream on other channels')
})

t.test('streams on the same channels share one set of them, while any is subscribed', async (t) => {
  const hub = new Hub({ heartbeatMs: 0, maxBufferedBytes: 1024 * 1024, onEnd: () => {} })
  const { connect } = await serve(t, hub)
  const firstChannels = new Set(['a', 'b'])
  const first = await connect('first', firstChannels)
  t.equal(first.connection.channels, firstChannels, 'the first stream keeps the set it asked with')
  const early = await connect('early', new Set(['b', 'a']))
  t.not(early.connection.channels, firstChannels, 'no group yet: a stream opened before any subscribed keeps its own')
  hub.subscribe(first.connection)
  const second = await connect('second', new Set(['b', 'a']))
  t.equal(second.connection.channels, firstChannels, 'the same channels in another order: the same set')
  const other = await connect('other', new Set(['a']))
  t.not(other.connection.channels, firstChannels, 'other channels: another set')
  t.same([...other.connection.channels], ['a'])

  hub.subscribe(second.connection)
  first.client.close()
  await waitFor(() => first.connection.closed, 'the first stream to end')
  const third = await connect('third', new Set(['a', 'b']))
  t.equal(third.connection.channels, firstChannels, 'still shared while one of the group is subscribed')
  second.client.close()
  await waitFor(() => second.connection.closed, 'the last of the group to end')
  const afterChannels = new Set(['a', 'b'])
  const after = await connect('after', afterChannels)
  t.equal(after.connection.channels, afterChannels, 'the group went with its last stream')
})

t.test('subscribe() of a stream that already ended does nothing', async (t) => {
  const hub = new Hub({ heartbeatMs: 0, maxBufferedBytes: 1024 * 1024, onEnd: () => {} })
  const { connect, writes } = await serve(t, hub)
  const gone = await connect('gone', new Set(['c']))
  gone.client.close()
  await waitFor(() => hub.size === 0, 'the stream to end')
  hub.subscribe(gone.connection)
  t.equal(hub.size, 0, 'not counted again')
  // Had it been subscribed, its group (and its set of channels) would outlive it.
  const freshChannels = new Set(['c'])
  const fresh = await connect('fresh', freshChannels)
  t.equal(fresh.connection.channels, freshChannels, 'no group was made for it')
  hub.subscribe(fresh.connection)
  writes.length = 0
  hub.broadcast([{ channel: 'c', frame: event(1) }])
  t.same(writes, [{ name: 'fresh', bytes: String(event(1)) }], 'a broadcast goes to the live stream only')
  await fresh.client.take(1)
})

t.test('replay() and reset() write their frames and count replayed events and resets', async (t) => {
  const hub = new Hub({ heartbeatMs: 0, maxBufferedBytes: 1024 * 1024, onEnd: () => {} })
  const { connect } = await serve(t, hub)
  const one = await connect('one')
  const two = await connect('two')
  t.equal(hub.replayed, 0)
  t.equal(hub.resets, 0)
  hub.replay(one.connection, { buffer: Buffer.concat([event(1), event(2), event(3)]), count: 3 })
  hub.replay(two.connection, { buffer: event(3), count: 1 })
  hub.reset(two.connection, resetFrame('1-3', 'unknown-last-event-id'))
  hub.write(one.connection, event(4), 1)
  t.equal(hub.replayed, 4, 'every replayed event counted')
  t.equal(hub.resets, 1)
  t.same((await one.client.take(4)).map((e) => e.data), ['event 1', 'event 2', 'event 3', 'event 4'])
  t.same((await two.client.take(2)).map((e) => [e.event, e.data]), [[undefined, 'event 3'], ['reset', '{"reason":"unknown-last-event-id"}']])
  t.equal(hub.replayed, 4, 'a plain write is not a replay')
})

t.test('slowDisconnects counts the streams ended for being slow, and only those', async (t) => {
  const max = 64 * 1024
  const hub = new Hub({ heartbeatMs: 0, maxBufferedBytes: max, onEnd: () => {} })
  const { connect, connectPaused } = await serve(t, hub)
  const slow = await connectPaused(new Set(['a']), '10.0.0.9')
  const leaving = await connect('leaving', new Set(['b']))
  const staying = await connect('staying', new Set(['b']))
  hub.subscribe(slow.connection)
  hub.subscribe(leaving.connection)
  t.equal(hub.connectionsFrom('10.0.0.9'), 1)
  const frame = Buffer.from(`data: ${'s'.repeat(16 * 1024 - 8)}\n\n`)
  for (let i = 0; i < 10_000 && !slow.connection.closed; i++) hub.broadcast([{ channel: 'a', frame }])
  t.ok(slow.connection.closed, 'the stream that read nothing was ended')
  t.equal(hub.slowDisconnects, 1)
  t.equal(hub.size, 2)
  t.equal(hub.connectionsFrom('10.0.0.9'), 0)
  leaving.client.close()
  await waitFor(() => hub.size === 1, 'the client that left')
  hub.closeAll(() => LAST)
  await staying.client.ended
  t.equal(hub.slowDisconnects, 1, 'a client that leaves or a server that closes is not slow')
})

t.test('closeAll() ends every open stream, subscribed or not, each after its own last frame, and stops the heartbeat', async (t) => {
  const hub = new Hub({ heartbeatMs: 10, maxBufferedBytes: 1024 * 1024, onEnd: () => {} })
  const { connect } = await serve(t, hub)
  const subscribed = await connect('subscribed')
  const opened = await connect('opened')
  hub.subscribe(subscribed.connection)
  let n = 0
  hub.closeAll(() => Buffer.from(`retry: ${1000 + ++n}\n\n`))
  t.equal(n, 2, 'one last frame per stream')
  t.equal(hub.size, 0)
  await Promise.all([subscribed.client.ended, opened.client.ended])
  t.same([subscribed.client.retries.at(-1), opened.client.retries.at(-1)].sort(), [1001, 1002], 'each got its own')

  // A stream subscribed after closeAll() would get beats if the timer still ran.
  const late = await connect('late')
  hub.subscribe(late.connection)
  const clock = new Hub({ heartbeatMs: 10, maxBufferedBytes: 1024 * 1024, onEnd: () => {} })
  const ticking = await (await serve(t, clock)).connect('ticking')
  clock.subscribe(ticking.connection)
  await ticking.client.until(() => ticking.client.comments.length >= 3, 'three beats of a running heartbeat')
  t.equal(late.client.raw, '', 'no beat after closeAll()')
})

t.test('heartbeats go to every open stream, subscribed or not yet, and skip a stream written to since the last beat', async (t) => {
  const hub = new Hub({ heartbeatMs: 10, maxBufferedBytes: 1024 * 1024, onEnd: () => {} })
  const { connect, writes } = await serve(t, hub)
  const idle = await connect('idle')
  const busy = await connect('busy')
  // Not subscribed yet, as a stream whose replay the engine is still looking up: it is open, so it is kept alive too.
  const resuming = await connect('resuming')
  hub.subscribe(idle.connection)
  hub.subscribe(busy.connection)
  await busy.client.until(() => busy.client.comments.length >= 1, 'a first beat')
  hub.write(busy.connection, event(1), 1)
  const afterEvent = (): SocketWrite[] => writes.slice(writes.findIndex((w) => w.name === 'busy' && w.bytes === String(event(1))) + 1)
  await busy.client.until(() => busy.client.raw.endsWith(`${event(1)}${HEARTBEAT}`), 'the next beat the busy stream gets')
  // Beats write to streams in the order they opened: idle, then busy (the third one aside).
  const beats = afterEvent().filter((w) => w.name !== 'resuming')
  const upToBusy = beats.slice(0, beats.findIndex((w) => w.name === 'busy') + 1)
  t.same(upToBusy, [
    { name: 'idle', bytes: HEARTBEAT },
    { name: 'idle', bytes: HEARTBEAT },
    { name: 'busy', bytes: HEARTBEAT }
  ], 'the beat after the event skipped the busy stream, the next one did not')
  t.ok(idle.client.comments.length >= 2)
  t.equal(idle.client.events.length, 0)
  await resuming.client.until(() => resuming.client.comments.length >= 1, 'a beat for the stream not yet subscribed')
})

import t from 'tap'
import type { Readable } from 'node:stream'
import Fastify from 'fastify'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import pushStream, { OPEN_EVENT } from '../lib/index.js'
import { LogCapture } from './helpers/log.js'
import { openStream, startApp } from './helpers/sse.js'
import { waitFor } from './helpers/wait.js'

/** Reads the body of an injected stream: its raw text and the events a real SSE parser finds in it. */
function readInjected (body: Readable): { raw: () => string, events: EventSourceMessage[], ended: Promise<void> } {
  let raw = ''
  const events: EventSourceMessage[] = []
  const decoder = new TextDecoder()
  // The opening event aside, as an `onmessage` would have it.
  const parser = createParser({ onEvent: (event) => { if (event.event !== OPEN_EVENT) events.push(event) } })
  body.on('data', (chunk: Buffer) => {
    const text = decoder.decode(chunk, { stream: true })
    raw += text
    parser.feed(text)
  })
  const ended = new Promise<void>((resolve) => body.once('close', resolve))
  return { raw: () => raw, events, ended }
}

t.test('inject() streams the opening block and live events, byte for byte what a socket client gets', async (t) => {
  const { app, url } = await startApp(t, { heartbeat: 0 })
  const socketClient = await openStream(`${url}/events`)
  t.teardown(() => socketClient.close())
  const res = await app.inject({ method: 'GET', url: '/events', payloadAsStream: true })
  const injected = readInjected(res.stream())
  t.teardown(() => res.stream().destroy())
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8')
  await waitFor(() => injected.raw().endsWith('\n\n'), 'the opening block')
  t.equal(injected.raw(), socketClient.raw, 'the same opening block')

  await app.pushStream.publish({ n: 1 })
  await waitFor(() => injected.events.length === 1, 'one live event')
  // Three in one tick: joined into one write.
  await Promise.all([
    app.pushStream.publish({ n: 2 }, { event: 'tick' }),
    app.pushStream.publish('three\nlines\nhere'),
    app.pushStream.publish({ n: 4 })
  ])
  await waitFor(() => injected.events.length === 4, 'four live events')
  await socketClient.take(4)
  t.same(injected.events.map((e) => e.data), ['{"n":1}', '{"n":2}', 'three\nlines\nhere', '{"n":4}'])
  t.equal(injected.raw(), socketClient.raw, 'the same bytes as the socket client')
})

t.test('inject() with a timed source gets its events', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  let n = 0
  await app.register(pushStream, { interval: 10, heartbeat: 0, source: () => ({ n: ++n }) })
  const res = await app.inject({ method: 'GET', url: '/events', payloadAsStream: true })
  const injected = readInjected(res.stream())
  t.teardown(() => res.stream().destroy())
  await waitFor(() => injected.events.length >= 3, 'three generated events')
  t.match(injected.raw(), /^retry: 3000\nid: \d+-\d+\nevent: push-stream:open\ndata: \{"retry":3000,"heartbeat":0\}\n\n/, 'the opening block first')
  const numbers = injected.events.map((e) => (JSON.parse(e.data) as { n: number }).n)
  t.same(numbers, numbers.map((_, i) => numbers[0] as number + i), 'then the generated events, in order')
})

t.test('destroying an injected stream ends the connection, reported once', async (t) => {
  const log = new LogCapture()
  const app = Fastify({ logger: { level: 'debug', stream: log } })
  t.teardown(() => app.close())
  await app.register(pushStream, { interval: 0, heartbeat: 0 })
  const res = await app.inject({ method: 'GET', url: '/events', payloadAsStream: true })
  const injected = readInjected(res.stream())
  await waitFor(() => injected.raw().endsWith('\n\n'), 'the opening block')
  t.equal(app.pushStream.stats().connections, 1)
  res.stream().destroy()
  await injected.ended
  await waitFor(() => app.pushStream.stats().connections === 0, 'the connection to end')
  // Events published after the reader left go nowhere, and end nothing twice.
  await app.pushStream.publish('after')
  await new Promise((resolve) => setImmediate(resolve))
  const ends = log.lines.filter((line) => line.msg === 'fastify-push-stream: stream ended')
  t.equal(ends.length, 1, 'one end is reported')
  t.equal(ends[0]?.reason, 'client-closed')
  t.equal(app.pushStream.stats().connections, 0)
})

t.test('close() resolves with injected streams open, and ends each with its last retry', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(pushStream, { interval: 0, heartbeat: 0, retry: 1000 })
  const readers = await Promise.all([1, 2].map(async () => {
    const res = await app.inject({ method: 'GET', url: '/events', payloadAsStream: true })
    return readInjected(res.stream())
  }))
  await waitFor(() => readers.every((reader) => reader.raw().endsWith('\n\n')), 'both opening blocks')
  t.equal(app.pushStream.stats().connections, 2)
  await app.close()
  await Promise.all(readers.map(async (reader) => await reader.ended))
  for (const reader of readers) t.match(reader.raw(), /\n\nretry: \d+\n\n$/, 'the stream ended after a last retry block')
  t.equal(app.pushStream.stats().connections, 0)
})

t.test('inject() of a refused handshake gets its one retry event, then the end', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(pushStream, { interval: 0, heartbeat: 0, maxConnections: 1 })
  const first = await app.inject({ method: 'GET', url: '/events', payloadAsStream: true })
  t.teardown(() => first.stream().destroy())
  const refused = await app.inject({ method: 'GET', url: '/events?handshake=1', payloadAsStream: true })
  const reader = readInjected(refused.stream())
  await reader.ended
  t.equal(refused.statusCode, 200)
  t.same(reader.events.map((e) => [e.event, JSON.parse(e.data).reason]), [['push-stream:retry', 'FST_PUSH_STREAM_TOO_MANY_CONNECTIONS']])
})

import t from 'tap'
import { LogCapture, type LogLine } from './helpers/log.js'
import { openStream, rawGet, request, startApp } from './helpers/sse.js'
import { waitFor } from './helpers/wait.js'

const OPENED = 'fastify-push-stream: stream opened'
const ENDED = 'fastify-push-stream: stream ended'
const REFUSED = 'fastify-push-stream: stream requests refused'
const GENERATOR_FAILED = 'fastify-push-stream: the generator could not publish a message; it goes on'

const DEBUG = 20
const INFO = 30
const WARN = 40
const ERROR = 50

const withMsg = (log: LogCapture, msg: string): LogLine[] => log.lines.filter((line) => line.msg === msg)

/** How many times `part` occurs in `text`. */
const occurrences = (text: string, part: string): number => text.split(part).length - 1

t.test('a stream\'s open and end are logged at debug with the request id; the end with its reason, duration, bytes and events', async (t) => {
  const log = new LogCapture()
  const { app, url } = await startApp(t, { heartbeat: 0 }, undefined, { logger: { level: 'debug', stream: log } })
  const beforeOpen = Date.now()
  const client = await openStream(`${url}/events?channel=a&channel=b`)
  t.teardown(() => client.close())
  await client.until(() => client.raw.endsWith('\n\n'), 'the opening block')
  const [opened] = withMsg(log, OPENED)
  t.equal(opened?.level, DEBUG, 'the open at debug')
  t.same(opened?.channels, ['a', 'b'])
  t.type(opened?.reqId, 'string', 'with the request id')

  await app.pushStream.publish('one', { channel: 'a' })
  await client.take(1)
  // Three in one tick, one of them on a channel the client does not hear: one joined write of two events.
  await Promise.all([
    app.pushStream.publish('two', { channel: 'b' }),
    app.pushStream.publish('elsewhere', { channel: 'c' }),
    app.pushStream.publish('three', { channel: 'a' })
  ])
  await client.take(3)
  client.close()
  await waitFor(() => withMsg(log, ENDED).length === 1, 'the end to be logged')
  const [ended] = withMsg(log, ENDED)
  t.equal(ended?.level, DEBUG, 'the end at debug')
  t.equal(ended?.reqId, opened?.reqId, 'with the same request id')
  t.equal(ended?.reason, 'client-closed')
  t.equal(ended?.events, 4, 'events: the events written, each once, joined or not, and the opening push-stream:open')
  t.equal(ended?.bytes, Buffer.byteLength(client.raw), 'bytes: every byte written after the headers')
  t.ok(typeof ended?.durationMs === 'number' && ended.durationMs >= 0 && ended.durationMs <= Date.now() - beforeOpen, 'with its duration in ms')
})

t.test('a stream ended by close() or for being too slow says so', async (t) => {
  const log = new LogCapture()
  const maxBufferedBytes = 64 * 1024
  const { app, url } = await startApp(t, { heartbeat: 0, maxBufferedBytes, history: 10 }, undefined, { logger: { level: 'debug', stream: log } })
  const { port } = new URL(url)
  const slow = rawGet(Number(port), '/events')
  t.teardown(() => slow.destroy())
  await new Promise((resolve) => slow.once('data', resolve))
  slow.pause()
  const payload = 'x'.repeat(4096)
  for (let n = 0; n < 20_000 && app.pushStream.stats().slowDisconnects === 0; n++) {
    await app.pushStream.publish(payload)
    await new Promise((resolve) => setImmediate(resolve))
  }
  const slowEnd = withMsg(log, ENDED).find((line) => line.reason === 'too-slow')
  t.ok(slowEnd !== undefined, 'the slow client\'s end is logged as too-slow')
  t.ok((slowEnd?.events as number) > 0 && (slowEnd?.bytes as number) > (slowEnd?.events as number) * 4096, 'with what it was written before')

  const client = await openStream(`${url}/events`)
  t.teardown(() => client.close())
  await app.close()
  await client.ended
  t.same(withMsg(log, ENDED).map((line) => line.reason), ['too-slow', 'server-closing'], 'the one close() ended is logged as server-closing')
})

t.test('refusals are logged at warn (full) or info (per address), one line per second per reason with a count, never at error', async (t) => {
  const log = new LogCapture()
  const { app, url } = await startApp(t, { maxConnections: 2, maxConnectionsPerIp: 1, retry: 2000 }, undefined, { logger: { level: 'info', stream: log } })
  const first = await openStream(`${url}/events`)
  t.teardown(() => first.close())

  const perIp = await Promise.all(Array.from({ length: 30 }, async () => await request(`${url}/events`)))
  t.ok(perIp.every((answer) => answer.status === 503 && answer.headers['retry-after'] === '2'), '503 with Retry-After, as before')
  t.equal(perIp[0]?.body, JSON.stringify({
    statusCode: 503,
    code: 'FST_PUSH_STREAM_TOO_MANY_CONNECTIONS_PER_IP',
    error: 'Service Unavailable',
    message: 'Too many open streams from this address (maxConnectionsPerIp is 1)'
  }), 'the body Fastify gives an error, key for key')
  t.equal(perIp[0]?.headers['content-type'], 'application/json; charset=utf-8')

  // A second stream from another address fills the server.
  const { port } = new URL(url)
  const other = rawGet(Number(port), '/events', {}, '127.0.0.2')
  t.teardown(() => other.destroy())
  await waitFor(() => app.pushStream.stats().connections === 2, 'the second stream')
  const full = await Promise.all(Array.from({ length: 30 }, async () => await request(`${url}/events`)))
  t.ok(full.every((answer) => answer.status === 503 && (JSON.parse(answer.body) as { code: string }).code === 'FST_PUSH_STREAM_TOO_MANY_CONNECTIONS'), '503 for a full server')

  const refusals = (code: string): LogLine[] => withMsg(log, REFUSED).filter((line) => line.code === code)
  await waitFor(() => refusals('FST_PUSH_STREAM_TOO_MANY_CONNECTIONS_PER_IP').reduce((sum, line) => sum + (line.refused as number), 0) === 30, 'every per-address refusal to be counted', 5000)
  await waitFor(() => refusals('FST_PUSH_STREAM_TOO_MANY_CONNECTIONS').reduce((sum, line) => sum + (line.refused as number), 0) === 30, 'every full-server refusal to be counted', 5000)
  const perIpLines = refusals('FST_PUSH_STREAM_TOO_MANY_CONNECTIONS_PER_IP')
  const fullLines = refusals('FST_PUSH_STREAM_TOO_MANY_CONNECTIONS')
  t.ok(perIpLines.length <= 3, `30 per-address refusals in ${perIpLines.length} lines`)
  t.ok(fullLines.length <= 3, `30 full-server refusals in ${fullLines.length} lines`)
  t.same(perIpLines.map((line) => line.level), perIpLines.map(() => INFO), 'per address at info')
  t.same(fullLines.map((line) => line.level), fullLines.map(() => WARN), 'full at warn')
  t.same([perIpLines[0]?.refused, perIpLines[0]?.overMs], [1, 0], 'the first refusal is logged at once')
  t.ok(perIpLines.slice(1).every((line) => (line.overMs as number) >= 900), 'the next ones at the end of their window, with how long it lasted')
  t.equal(log.lines.filter((line) => line.level >= ERROR).length, 0, 'nothing at error')
})

t.test('a failing source is logged once, at error, with its cause and no repeated text', async (t) => {
  const log = new LogCapture()
  let calls = 0
  const { app } = await startApp(t, {
    interval: 5,
    source: () => {
      calls++
      if (calls === 1) throw new Error('db down')
      return calls === 2 ? { data: 'fine' } : undefined
    }
  }, undefined, { logger: { level: 'info', stream: log } })
  await waitFor(() => app.pushStream.stats().published === 1, 'the tick after the failure')
  const failures = withMsg(log, GENERATOR_FAILED)
  t.equal(failures.length, 1, 'one line')
  t.equal(failures[0]?.level, ERROR)
  t.equal(failures[0]?.err?.code, 'FST_PUSH_STREAM_SOURCE_FAILED')
  t.equal(failures[0]?.err?.message, 'The message source failed: db down', 'the cause\'s text once')
  t.match(failures[0]?.err?.stack, /caused by: Error: db down/, 'the cause\'s stack')
})

t.test('a serializer failing on a generated value is logged once, its text not repeated', async (t) => {
  const log = new LogCapture()
  let calls = 0
  const { app } = await startApp(t, {
    interval: 5,
    serialize: () => { throw new Error('cannot serialize this') },
    source: () => ++calls === 1 ? { data: { not: 'a string' } } : calls === 2 ? { data: 'fine' } : undefined
  }, undefined, { logger: { level: 'info', stream: log } })
  await waitFor(() => app.pushStream.stats().published === 1, 'the tick after the failure')
  const failures = withMsg(log, GENERATOR_FAILED)
  t.equal(failures.length, 1, 'one line')
  t.equal(failures[0]?.level, ERROR)
  t.equal(failures[0]?.err?.code, 'FST_PUSH_STREAM_SERIALIZE_FAILED')
  t.equal(occurrences(String(failures[0]?.err?.message), 'cannot serialize this'), 1, 'the cause\'s text once')
  t.notMatch(String(failures[0]?.msg), /cannot serialize/, 'the message does not repeat it')
})

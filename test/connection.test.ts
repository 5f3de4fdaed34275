import t from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo, Socket } from 'node:net'
import { Connection, isGone, type CloseReason } from '../lib/connection.js'
import { rawGet } from './helpers/sse.js'
import type { Teardown } from './helpers/teardown.js'
import { waitFor } from './helpers/wait.js'

const HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache', 'x-accel-buffering': 'no' }
const HEARTBEAT = Buffer.from(':\n\n')
const ENDED = 'fastify-push-stream: stream ended'

/** A plain node:http server on 127.0.0.1 that hands each request's response to the test; closed in teardown. */
async function serve (t: Teardown): Promise<{ port: number, next: () => Promise<http.ServerResponse> }> {
  const arrived: http.ServerResponse[] = []
  const waiting: Array<(res: http.ServerResponse) => void> = []
  const server = http.createServer((_req, res) => {
    const take = waiting.shift()
    if (take === undefined) arrived.push(res)
    else take(res)
  })
  t.teardown(async () => {
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const next = async (): Promise<http.ServerResponse> => arrived.shift() ?? await new Promise((resolve) => waiting.push(resolve))
  return { port: (server.address() as AddressInfo).port, next }
}

/** A client on a raw socket: every byte it got, split into the response head and the body. */
class RawClient {
  readonly socket: Socket
  readonly closed: Promise<void>
  #chunks: Buffer[] = []

  constructor (port: number) {
    this.socket = rawGet(port, '/events')
    this.socket.on('data', (chunk: Buffer) => this.#chunks.push(chunk))
    this.closed = once(this.socket, 'close').then(() => {})
  }

  get received (): Buffer {
    return Buffer.concat(this.#chunks)
  }

  /** The status line and headers, once they are all in. */
  get head (): string | undefined {
    const end = this.received.indexOf('\r\n\r\n')
    return end < 0 ? undefined : this.received.subarray(0, end + 4).toString('latin1')
  }

  /** Whatever came after the head. */
  get body (): Buffer {
    const end = this.received.indexOf('\r\n\r\n')
    return end < 0 ? Buffer.alloc(0) : this.received.subarray(end + 4)
  }
}

/** A connection on a real response to a raw client, with every `onClose` and every log line it produced. */
async function connect (t: Teardown, maxBufferedBytes: number, options: { paused?: boolean } = {}) {
  const { port, next } = await serve(t)
  const client = new RawClient(port)
  // A client that does not read: what the server writes piles up in the kernel, then in the socket.
  if (options.paused === true) client.socket.pause()
  t.teardown(() => { client.socket.destroy() })
  const res = await next()
  // Each reason, or a mark that onClose was told of another connection.
  const closes: Array<CloseReason | 'another connection'> = []
  const lines: Array<{ obj: Record<string, unknown>, msg: string }> = []
  // A real logger interface: the connection logs its end through `debug`.
  const log = { debug: (obj: object, msg: string) => { lines.push({ obj: obj as Record<string, unknown>, msg }) } }
  const connection = new Connection(res, new Set(['a']), maxBufferedBytes, (closed, reason) => {
    closes.push(closed === connection ? reason : 'another connection')
  }, '127.0.0.1', log)
  // Registered after the connection's own listener: once it runs, the connection has seen the close.
  const resClosed = once(res, 'close').then(() => {})
  return { client, res, connection, closes, lines, resClosed }
}

/** Writes `frame` until the connection is cut off (at most `limit` times); the most it saw buffered before. */
function fillUntilCut (connection: Connection, frame: Buffer, limit = 10_000): { writes: number, maxBuffered: number } {
  let maxBuffered = 0
  let writes = 0
  while (!connection.closed && writes < limit) {
    connection.write(frame)
    if (connection.closed) break
    writes++
    maxBuffered = Math.max(maxBuffered, connection.bufferedBytes)
  }
  return { writes, maxBuffered }
}

t.test('open() sends the status line and the headers at once, with no framing for the body', async (t) => {
  const { client, connection } = await connect(t, 1024)
  connection.open(HEADERS)
  await waitFor(() => client.head !== undefined, 'the response head')
  const head = client.head as string
  t.match(head, /^HTTP\/1\.1 200 OK\r\n/)
  t.match(head, /\r\ncontent-type: text\/event-stream; charset=utf-8\r\n/i)
  t.match(head, /\r\ncache-control: no-cache\r\n/i)
  t.match(head, /\r\nx-accel-buffering: no\r\n/i)
  t.match(head, /\r\nconnection: close\r\n/i, 'the socket is not kept alive for another request')
  t.notMatch(head, /transfer-encoding/i, 'no chunked framing: the body runs to the end of the connection')
  t.equal(client.body.length, 0, 'nothing but the head before the first write')
  t.notOk(connection.closed)
})

t.test('write() frames arrive byte for byte, a frame larger than maxBufferedBytes too when nothing is waiting', async (t) => {
  const { client, connection } = await connect(t, 64)
  connection.open(HEADERS)
  const frames = [
    Buffer.from('data: one\n\n'),
    Buffer.from('id: 1-2\nevent: tick\ndata: é ✓ 😀\ndata: second line\n\n'),
    Buffer.from(`data: ${'x'.repeat(100_000)}\n\n`),
    Buffer.from(':\n\n')
  ]
  for (const frame of frames) connection.write(frame)
  const expected = Buffer.concat(frames)
  await waitFor(() => client.body.length >= expected.length, 'every frame')
  t.equal(client.body.length, expected.length, 'nothing more, nothing less')
  t.ok(client.body.equals(expected), 'the same bytes, in order')
  t.notOk(connection.closed, 'a large frame on an empty buffer is not a slow client')
})

t.test('a client that stops reading is cut off as slow before more than maxBufferedBytes would be buffered', async (t) => {
  const max = 64 * 1024
  const { client, res, connection, closes, lines, resClosed } = await connect(t, max, { paused: true })
  connection.open(HEADERS)
  const frame = Buffer.from(`data: ${'s'.repeat(16 * 1024 - 8)}\n\n`)
  const { writes, maxBuffered } = fillUntilCut(connection, frame)
  t.ok(connection.closed, `cut off after ${writes} writes`)
  t.ok(maxBuffered > 0, 'the socket did buffer before the cut')
  t.ok(maxBuffered <= max, `never more than maxBufferedBytes buffered (${maxBuffered} <= ${max})`)
  t.ok(max - maxBuffered < frame.length, 'cut off by the frame that would not fit, not earlier')
  t.same(closes, ['slow'])
  await resClosed
  t.ok(isGone(res), 'the response is destroyed')
  t.same(closes, ['slow'], 'the response closing afterwards is not a second end')
  client.socket.resume()
  await client.closed
  t.equal(lines.length, 1)
  t.equal(lines[0]?.msg, ENDED)
  t.match(lines[0]?.obj, { reason: 'too-slow', bytes: writes * frame.length, events: writes }, 'the frame that was refused is not counted')
})

t.test('a replay larger than maxBufferedBytes is written whole; the limit is raised until it drained', async (t) => {
  const max = 64 * 1024
  const { client, res, connection, closes } = await connect(t, max, { paused: true })
  connection.open(HEADERS)
  const event = Buffer.from(`data: ${'r'.repeat(1000)}\n\n`)
  const replay = Buffer.concat(Array.from({ length: 8 * 1024 }, () => event))
  connection.writeReplay(replay, 8 * 1024)
  t.ok(connection.bufferedBytes > max, `the replay is held in the socket (${connection.bufferedBytes} bytes)`)
  const live = Buffer.from('id: 1-1\ndata: live\n\n')
  connection.write(live)
  t.notOk(connection.closed, 'an event after the replay does not count the client as slow')
  t.same(closes, [])

  client.socket.resume()
  const expected = Buffer.concat([replay, live])
  await waitFor(() => client.body.length >= expected.length, 'the replay and the live event')
  t.ok(client.body.equals(expected), 'the replay whole, then the live event')
  const socket = res.socket as Socket
  await waitFor(() => socket.writableLength === 0 && !socket.writableNeedDrain, 'the socket to drain')

  // Drained: the limit is maxBufferedBytes again.
  client.socket.pause()
  const frame = Buffer.from(`data: ${'s'.repeat(16 * 1024 - 8)}\n\n`)
  const { maxBuffered } = fillUntilCut(connection, frame)
  t.ok(connection.closed)
  t.ok(maxBuffered <= max, `cut off at maxBufferedBytes once drained (${maxBuffered} <= ${max})`)
  t.same(closes, ['slow'])
})

t.test('end() writes the last frame and closes the stream: onClose once, as server, and a log line of it', async (t) => {
  const { client, res, connection, closes, lines, resClosed } = await connect(t, 1024)
  connection.open(HEADERS)
  const one = Buffer.from('id: 1-1\ndata: one\n\n')
  const joined = Buffer.from('id: 1-2\ndata: two\n\nid: 1-3\ndata: three\n\nid: 1-4\ndata: four\n\n')
  const replay = Buffer.from('id: 1-5\ndata: five\n\nid: 1-6\ndata: six\n\n')
  const last = Buffer.from('retry: 4321\n\n')
  connection.write(one)
  connection.write(joined, 3)
  connection.writeReplay(replay, 2)
  connection.heartbeat(HEARTBEAT)
  connection.heartbeat(HEARTBEAT)
  t.notOk(isGone(res))
  connection.end(last)
  t.ok(connection.closed)
  t.same(closes, ['server'], 'reported at once')
  await client.closed
  await resClosed
  t.ok(client.body.equals(Buffer.concat([one, joined, replay, HEARTBEAT, last])), 'every frame, the last one last, then the end')
  t.same(closes, ['server'], 'the socket closing afterwards is not a second end')
  t.ok(isGone(res))
  connection.write(Buffer.from('data: late\n\n'))
  t.same(closes, ['server'])
  t.equal(lines.length, 1, 'one log line')
  const line = lines[0] as { obj: Record<string, unknown>, msg: string }
  t.equal(line.msg, ENDED)
  t.match(line.obj, {
    reason: 'server-closing',
    bytes: one.length + joined.length + replay.length + HEARTBEAT.length + last.length,
    events: 1 + 3 + 2
  })
  t.type(line.obj.durationMs, 'number')
  t.ok((line.obj.durationMs as number) >= 0)
})

t.test('a client that closes its socket ends the connection once, as client', async (t) => {
  const { client, res, connection, closes, lines, resClosed } = await connect(t, 1024)
  connection.open(HEADERS)
  connection.write(Buffer.from('data: one\n\n'))
  await waitFor(() => client.body.length > 0, 'the first frame')
  t.notOk(isGone(res), 'not gone while the client is there')
  client.socket.destroy()
  await resClosed
  t.ok(isGone(res))
  t.ok(connection.closed)
  t.same(closes, ['client'])
  connection.write(Buffer.from('data: late\n\n'))
  connection.heartbeat(HEARTBEAT)
  t.same(closes, ['client'], 'writing to an ended connection ends nothing twice')
  t.equal(lines.length, 1)
  t.match(lines[0]?.obj, { reason: 'client-closed', bytes: 'data: one\n\n'.length, events: 1 })
})

t.test('heartbeat() writes the comment only when nothing was written since the previous call', async (t) => {
  const { client, connection, lines } = await connect(t, 1024)
  connection.open(HEADERS)
  const event = Buffer.from('data: one\n\n')
  connection.heartbeat(HEARTBEAT) // nothing written yet: sent
  connection.write(event)
  connection.heartbeat(HEARTBEAT) // written to since the last call: skipped
  connection.heartbeat(HEARTBEAT) // idle since: sent
  connection.heartbeat(HEARTBEAT) // idle since: sent
  connection.write(event)
  connection.heartbeat(HEARTBEAT) // skipped
  const last = Buffer.from('retry: 1000\n\n')
  connection.end(last)
  await client.closed
  t.equal(client.body.toString(), [HEARTBEAT, event, HEARTBEAT, HEARTBEAT, event, last].join(''))
  t.match(lines[0]?.obj, { events: 2 }, 'heartbeats are not counted as events')
})

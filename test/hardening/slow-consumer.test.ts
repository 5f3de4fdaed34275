import t from 'tap'
import type { Socket } from 'node:net'
import { rawGet, startApp } from '../helpers/sse.js'
import { waitFor } from '../helpers/wait.js'
import { LeanReader, heldBytes, portOf, turn } from './helpers.js'

const MiB = 1024 * 1024
const maxBufferedBytes = MiB
const EVENTS = 3_000
const payload = 'x'.repeat(4096)

t.test('a client that never reads is cut past maxBufferedBytes; the others lose nothing; memory stays bounded', async (t) => {
  // The server side of the slow client's socket, seen from an app hook, so the bytes held for it can be read.
  let slowSocket: Socket | undefined
  const { app, url } = await startApp(t, { maxBufferedBytes, history: 100, heartbeat: 0 }, (app) => {
    app.addHook('onRequest', async (request) => {
      if (request.headers['x-slow'] === '1') slowSocket = request.raw.socket
    })
  })

  const pickNumber = (event: { data: string }): number => (JSON.parse(event.data) as { n: number }).n
  const readers = Array.from({ length: 3 }, () => new LeanReader(`${url}/events`, pickNumber))
  t.teardown(() => { for (const reader of readers) reader.close() })
  // Sends its request, reads nothing: no data listener, so everything piles up in the kernel and then in the server.
  const slow = rawGet(portOf(url), '/events', { 'x-slow': '1' })
  slow.pause()
  t.teardown(() => slow.destroy())
  await waitFor(() => app.pushStream.stats().connections === 4 && slowSocket !== undefined, 'four streams', 5000)

  const baseline = heldBytes()
  let peakHeld = 0
  let peakBuffered = 0
  let cutAt = 0
  for (let n = 1; n <= EVENTS; n++) {
    app.pushStream.publish({ n, payload })
    // Paced one event per turn of the event loop, so a client that reads keeps up.
    await turn()
    if (slowSocket !== undefined && cutAt === 0) {
      peakBuffered = Math.max(peakBuffered, slowSocket.writableLength)
      if (app.pushStream.stats().slowDisconnects > 0) cutAt = n
    }
    if (n % 100 === 0) peakHeld = Math.max(peakHeld, heldBytes() - baseline)
  }

  await waitFor(Promise.all(readers.map((reader) => reader.take(EVENTS))), 'the readers to get every event', 10_000)
  const frame = Buffer.byteLength(`id: 0000000000000-0\ndata: ${JSON.stringify({ n: EVENTS, payload })}\n\n`)
  t.ok(cutAt > 0, `the slow client was disconnected, after event ${cutAt} of ${EVENTS}`)
  t.equal(app.pushStream.stats().slowDisconnects, 1, 'stats().slowDisconnects counts it')
  t.equal(app.pushStream.stats().connections, 3, 'the three readers are still connected')
  // What the kernel still held for it drains once it reads; then its stream is over, short of the end.
  let received = ''
  slow.setEncoding('utf8')
  slow.on('data', (chunk: string) => { received += chunk })
  slow.resume()
  await waitFor(new Promise((resolve) => slow.once('close', resolve)), 'the slow socket to close', 5000)
  const lastSeen = Math.max(0, ...[...received.matchAll(/"n":(\d+)/g)].map((m) => Number(m[1])))
  t.ok(lastSeen < cutAt, `the slow client's stream ends at event ${lastSeen}, before the cut`)
  t.ok(peakBuffered <= maxBufferedBytes + frame,
    `bytes held for it peaked at ${peakBuffered}, within maxBufferedBytes + one event (${maxBufferedBytes + frame})`)
  for (const [i, reader] of readers.entries()) {
    t.same(reader.picked, Array.from({ length: EVENTS }, (_, k) => k + 1), `reader ${i + 1} got all ${EVENTS} events once, in order`)
  }
  t.ok(peakHeld < maxBufferedBytes + 10 * MiB,
    `held memory grew by at most ${(peakHeld / MiB).toFixed(1)} MiB (budget ${(maxBufferedBytes + 10 * MiB) / MiB} MiB)`)
})

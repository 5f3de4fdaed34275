import t from 'tap'
import { openStream, rawGet, startApp } from './helpers/sse.js'
import { waitFor } from './helpers/wait.js'

t.test('a client that stops reading is disconnected past maxBufferedBytes; the others miss nothing', async (t) => {
  const maxBufferedBytes = 256 * 1024
  const { app, url } = await startApp(t, { maxBufferedBytes, history: 10 })
  const { port } = new URL(url)
  // A raw client that sends its request and then never reads.
  const slow = rawGet(Number(port), '/events')
  t.teardown(() => slow.destroy())
  await new Promise((resolve) => slow.once('data', resolve))
  slow.pause()
  const fast = await openStream(`${url}/events`)
  t.teardown(() => fast.close())

  const payload = 'x'.repeat(4096)
  const limit = 20_000
  let published = 0
  // Paced one per turn of the event loop, so a reading client keeps up.
  while (app.pushStream.stats().slowDisconnects === 0 && published < limit) {
    app.pushStream.publish({ n: ++published, payload })
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(app.pushStream.stats().slowDisconnects, 1, `disconnected after ${published} events of 4 KiB`)
  t.equal(app.pushStream.stats().connections, 1, 'only the reading client is left')
  app.pushStream.publish({ n: ++published, payload })
  await fast.take(published)
  const numbers = fast.events.map((e) => JSON.parse(e.data).n as number)
  t.same(numbers, Array.from({ length: published }, (_, i) => i + 1), 'the reading client got every event once, in order')

  // The slow client's stream was cut: reading what is left ends before the last events.
  slow.resume()
  let received = ''
  slow.setEncoding('utf8')
  slow.on('data', (chunk: string) => { received += chunk })
  await new Promise((resolve) => slow.once('close', resolve))
  const lastSeen = Math.max(0, ...[...received.matchAll(/"n":(\d+)/g)].map((m) => Number(m[1])))
  t.ok(lastSeen < published, `the slow client saw up to event ${lastSeen} of ${published}`)
})

t.test('a slow client reconnecting resumes from history', async (t) => {
  const { app, url } = await startApp(t, { maxBufferedBytes: 64 * 1024, history: 50_000 })
  const { port } = new URL(url)
  const slow = rawGet(Number(port), '/events')
  t.teardown(() => slow.destroy())
  const head = await new Promise<string>((resolve) => slow.once('data', (chunk) => resolve(String(chunk))))
  slow.pause()
  const startId = /id: (\S+)\n/.exec(head)?.[1] as string
  t.match(startId, /^\d+-\d+$/)
  const payload = 'y'.repeat(4096)
  let published = 0
  while (app.pushStream.stats().slowDisconnects === 0 && published < 20_000) {
    app.pushStream.publish({ n: ++published, payload })
    if (published % 16 === 0) await new Promise((resolve) => setImmediate(resolve))
  }
  t.equal(app.pushStream.stats().slowDisconnects, 1)
  const again = await openStream(`${url}/events`, { 'last-event-id': startId })
  t.teardown(() => again.close())
  const events = await again.take(published)
  t.same(events.map((e) => JSON.parse(e.data).n), Array.from({ length: published }, (_, i) => i + 1))
  t.equal(app.pushStream.stats().replayed, published)
})

t.test('a client cut off in the middle of a burst is written nothing more, and nothing breaks', async (t) => {
  const { app, url } = await startApp(t, { maxBufferedBytes: 64 * 1024, history: 10 })
  const { port } = new URL(url)
  const slow = rawGet(Number(port), '/events')
  t.teardown(() => slow.destroy())
  await new Promise((resolve) => slow.once('data', resolve))
  slow.pause()
  // One tick of events each larger than a joined write: the first fills the socket, the next cuts the client off.
  const big = 'y'.repeat(8 * 1024 * 1024)
  for (let n = 0; n < 4; n++) app.pushStream.publish(big)
  await waitFor(() => app.pushStream.stats().slowDisconnects > 0, 'the client to be cut off')
  // Read what the socket still held: the stream then ends.
  const closed = new Promise((resolve) => slow.once('close', resolve))
  slow.resume()
  await closed
  t.equal(app.pushStream.stats().slowDisconnects, 1, 'cut off once')
  t.equal(app.pushStream.stats().connections, 0)
  const fresh = await openStream(`${url}/events`)
  t.teardown(() => fresh.close())
  app.pushStream.publish('still serving')
  t.same((await fresh.take(1)).map((e) => e.data), ['still serving'])
})

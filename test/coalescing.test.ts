// Broadcast events that go out together share one write per connection: those of one turn of the
// event loop by default, those within `flushDelay` when it is set. Seen at the client's socket.
import type { Socket } from 'node:net'
import { setTimeout as sleep } from 'node:timers/promises'
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import type { PushStreamOptions } from '../lib/index.js'
import { openStream, startApp, type StreamClient } from './helpers/sse.js'
import type { Teardown } from './helpers/teardown.js'

/** A write the server made to a stream's socket: its text and when (ms since it was opened). */
interface Write { text: string, at: number }

/** An app with one open stream whose socket's writes are recorded from its opening event on. */
async function streamWithWrites (t: Teardown, options: PushStreamOptions): Promise<{ app: FastifyInstance, client: StreamClient, writes: Write[] }> {
  const writes: Write[] = []
  const { app, url } = await startApp(t, options, (app) => {
    app.addHook('onRequest', async (request) => {
      const socket = request.raw.socket as Socket
      const write = socket.write
      // Each call is one write to the connection, whatever it holds.
      socket.write = function (this: Socket, chunk: unknown, ...rest: unknown[]) {
        writes.push({ text: Buffer.isBuffer(chunk) ? chunk.toString() : String(chunk), at: performance.now() })
        return (write as (...args: unknown[]) => boolean).call(this, chunk, ...rest)
      } as typeof socket.write
    })
  })
  const client = await openStream(`${url}/events`)
  await client.open()
  writes.length = 0
  return { app, client, writes }
}

const dataOf = (write: Write): string[] => [...write.text.matchAll(/^data: (.*)$/gm)].map((match) => match[1] as string)

t.test('by default, events published in separate callbacks of one turn of the event loop share one write', async (t) => {
  const { app, client, writes } = await streamWithWrites(t, {})
  // Two timers set together fall due together: Node runs both in one timers phase, each as its own
  // callback with the microtasks drained between them, as messages from separate sockets would be.
  await new Promise<void>((resolve) => {
    setTimeout(() => { app.pushStream.publish('a') }, 5)
    setTimeout(() => { app.pushStream.publish('b'); resolve() }, 5)
  })
  await client.take(2)
  t.same(client.events.map((event) => event.data), ['a', 'b'], 'both, in order')
  t.same(writes.map(dataOf), [['a', 'b']], 'one write holds both')
})

t.test('by default, a lone event goes out in the turn it was published in, with no timer', async (t) => {
  const { app, client, writes } = await streamWithWrites(t, {})
  const published = performance.now()
  const seenAtTurnEnd = await new Promise<number>((resolve) => {
    setTimeout(() => {
      app.pushStream.publish('lone')
      // Set after the publish: the check phase runs the plugin's write first, then this.
      setImmediate(() => resolve(writes.length))
    }, 1)
  })
  t.equal(seenAtTurnEnd, 1, 'written by the end of the turn it was published in')
  t.same(writes.map(dataOf), [['lone']])
  await client.take(1)
  t.ok(writes[0] !== undefined && writes[0].at - published < 1000)
  // Each turn is a batch of its own, and an awaited publish has gone out when it resolves.
  await app.pushStream.publish('next')
  t.same(writes.map(dataOf), [['lone'], ['next']], 'written when the publish resolved')
  await client.take(2)
})

t.test('flushDelay: the first event of a batch waits up to that long, and those published meanwhile join it', async (t) => {
  const { app, client, writes } = await streamWithWrites(t, { flushDelay: 300 })
  const published = performance.now()
  let writesWhenResolved = -1
  const first = app.pushStream.publish('first').then(() => { writesWhenResolved = writes.length })
  await sleep(50)
  t.equal(writes.length, 0, 'nothing written 50 ms in')
  app.pushStream.publish('second')
  await client.take(2)
  t.same(writes.map(dataOf), [['first', 'second']], 'one write holds both')
  const waited = (writes[0]?.at ?? 0) - published
  t.ok(waited >= 290, `written after the delay (${waited.toFixed(0)} ms)`)
  await first
  t.equal(writesWhenResolved, 1, 'the publish resolved once its batch was written')
})

t.test('flushDelay: close() writes what waits at once, and the stream ends after it', async (t) => {
  const { app, client, writes } = await streamWithWrites(t, { flushDelay: 1000 })
  const published = performance.now()
  app.pushStream.publish('waiting')
  await app.close()
  await client.ended
  t.same(client.events.map((event) => event.data), ['waiting'], 'the waiting event reached the client before the end')
  t.ok((writes[0]?.at ?? Infinity) - published < 900, 'written by close(), not by the timer')
})

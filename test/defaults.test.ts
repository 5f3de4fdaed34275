import t from 'tap'
import Fastify from 'fastify'
import pushStream from '../lib/index.js'
import { openStream } from './helpers/sse.js'

t.test('with no options: random JSON messages on /events, with the documented headers', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(pushStream)
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const client = await openStream(`http://127.0.0.1:${port}/events`)
  t.teardown(() => client.close())
  t.equal(client.status, 200)
  t.equal(client.headers['content-type'], 'text/event-stream; charset=utf-8')
  t.equal(client.headers['cache-control'], 'no-cache, no-transform')
  t.equal(client.headers['x-accel-buffering'], 'no')
  // One message comes from the 3 s timer; the second is pulled by hand.
  await client.take(1)
  await app.pushStream.generate()
  const events = await client.take(2)
  t.same(client.retries, [3000])
  const ids = new Set<string>()
  for (const event of events) {
    const message = JSON.parse(event.data)
    t.match(message, { id: /^[\w-]{21}$/, text: /\w/, time: /^\d{4}-\d\d-\d\dT/ })
    t.equal(new Date(message.time).toISOString(), message.time)
    ids.add(message.id)
    t.match(event.id, /^\d+-\d+$/)
    t.equal(event.event, undefined)
  }
  t.equal(ids.size, 2, 'each message has its own id')
})

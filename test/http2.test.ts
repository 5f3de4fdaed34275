import t from 'tap'
import http2 from 'node:http2'
import { openH2Stream } from './helpers/h2.js'
import { idOf, startApp } from './helpers/sse.js'

t.test('over HTTP/2: many streams on one connection, no Connection header, no warning, replay and close as on HTTP/1.1', async (t) => {
  const warnings: Error[] = []
  const onWarning = (warning: Error): void => { warnings.push(warning) }
  process.on('warning', onWarning)
  t.teardown(() => process.off('warning', onWarning))

  const { app, url } = await startApp(t, {}, (app) => {
    app.addHook('onRequest', async (_request, reply) => { reply.header('x-custom', 'kept') })
  }, { http2: true })
  const session = http2.connect(url)
  t.teardown(() => session.destroy())
  session.on('error', () => {})

  const streams = Array.from({ length: 50 }, () => openH2Stream(session, '/events'))
  const headers = await Promise.all(streams.map((s) => s.response))
  for (const h of headers) {
    t.equal(h[':status'], 200)
    t.equal(h['content-type'], 'text/event-stream; charset=utf-8')
    t.equal(h.connection, undefined)
    t.equal(h['transfer-encoding'], undefined)
    t.equal(h['x-custom'], 'kept')
  }
  t.equal(app.pushStream.stats().connections, 50)
  const first = await idOf(app.pushStream.publish('one'))
  app.pushStream.publish('two', { event: 'named' })
  for (const s of streams) t.same((await s.take(2)).map((e) => [e.event, e.data]), [[undefined, 'one'], ['named', 'two']])

  const resumed = openH2Stream(session, '/events', { 'last-event-id': first })
  t.same((await resumed.take(1)).map((e) => e.data), ['two'], 'replay from Last-Event-ID')

  const started = performance.now()
  await app.close()
  t.ok(performance.now() - started < 1000, 'close() resolved promptly')
  await Promise.all([...streams, resumed].map((s) => s.ended))
  t.same(warnings.map((w) => w.message), [], 'no Node warning')
})

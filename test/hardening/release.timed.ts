// Run alone by `npm run test:timed` (part of `npm test`), after the other suites: its time limits are only fair on idle cores.
import t from 'tap'
import http2 from 'node:http2'
import { once } from 'node:events'
import type { Socket } from 'node:net'
import Fastify from 'fastify'
import pushStream from '../../lib/index.js'
import { openH2Stream } from '../helpers/h2.js'
import { openStream, rawGet, startApp } from '../helpers/sse.js'
import { assertReleased, hangingSource } from '../helpers/sources.js'
import { waitFor } from '../helpers/wait.js'
import { openHeldStreams } from './helpers.js'

const WITHIN_MS = 100

t.test(`a per-request source's finally runs within ${WITHIN_MS} ms of each way its stream ends`, async (t) => {
  const sources = { leaves: hangingSource(), resets: hangingSource(), closes: hangingSource(), fails: hangingSource() }
  const sockets: Record<string, Socket> = {}
  let stalledAbortAt = 0
  let stalledFinallyAt = 0
  let stalledReason: unknown
  const { app, url } = await startApp(t, { maxBufferedBytes: 64 * 1024 }, (app) => {
    for (const [name, hanging] of Object.entries(sources)) {
      app.get(`/${name}`, (request, reply) => {
        sockets[name] = request.raw.socket
        return reply.sse(hanging.source)
      })
    }
    app.get('/stalls', (_request, reply) => reply.sse(async function * ({ signal }) {
      signal.addEventListener('abort', () => { stalledAbortAt = performance.now(); stalledReason = signal.reason })
      try {
        for (;;) yield 'w'.repeat(16 * 1024)
      } finally {
        stalledFinallyAt = performance.now()
      }
    }, { stallTimeout: 300 }))
  }, { http2: false })
  const port = Number(new URL(url).port)

  // The client leaves.
  const leaving = await openStream(`${url}/leaves`)
  await sources.leaves.started
  let endedAt = performance.now()
  leaving.close()
  await assertReleased(t, sources.leaves.released, 'FST_PUSH_STREAM_CLIENT_CLOSED', { endedAt, withinMs: WITHIN_MS })

  // The client resets the connection.
  const resetting = rawGet(port, '/resets')
  await once(resetting, 'data')
  await sources.resets.started
  endedAt = performance.now()
  resetting.resetAndDestroy()
  await assertReleased(t, sources.resets.released, 'FST_PUSH_STREAM_CLIENT_CLOSED', { endedAt, withinMs: WITHIN_MS })

  // The connection fails under the stream (as a TLS layer would fail it).
  const failing = await openStream(`${url}/fails`)
  await sources.fails.started
  endedAt = performance.now()
  sockets.fails?.destroy(Object.assign(new Error('input/output error'), { code: 'EIO' }))
  await assertReleased(t, sources.fails.released, 'FST_PUSH_STREAM_WRITE_FAILED', { endedAt, withinMs: WITHIN_MS })
  await failing.ended

  // The client stops reading: stalled.
  const stalling = rawGet(port, '/stalls')
  stalling.pause()
  await waitFor(() => stalledFinallyAt > 0, 'the stalled stream\'s end', 5000)
  t.equal((stalledReason as { code?: string }).code, 'FST_PUSH_STREAM_STALLED')
  t.ok(stalledFinallyAt - stalledAbortAt < WITHIN_MS, `stalled: finally ran ${(stalledFinallyAt - stalledAbortAt).toFixed(1)} ms after the abort`)
  stalling.destroy()

  // The server closes.
  await openStream(`${url}/closes`)
  await sources.closes.started
  endedAt = performance.now()
  await app.close()
  await assertReleased(t, sources.closes.released, 'FST_PUSH_STREAM_SERVER_CLOSING', { endedAt, withinMs: WITHIN_MS })
})

t.test(`over HTTP/2, a stream reset releases the source within ${WITHIN_MS} ms`, async (t) => {
  const hanging = hangingSource()
  const { url } = await startApp(t, {}, (app) => {
    app.get('/hang', (_request, reply) => reply.sse(hanging.source))
  }, { http2: true })
  const session = http2.connect(url)
  t.teardown(() => session.close())
  const stream = openH2Stream(session, '/hang')
  await hanging.started
  const endedAt = performance.now()
  stream.stream.close(http2.constants.NGHTTP2_CANCEL)
  await assertReleased(t, hanging.released, 'FST_PUSH_STREAM_CLIENT_CLOSED', { endedAt, withinMs: WITHIN_MS })
})

const STREAMS = 1000

t.test(`close() with ${STREAMS} per-request streams resolves in under 1 s, every source's finally run`, async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(pushStream, { interval: 0, heartbeat: 0 })
  let started = 0
  let released = 0
  app.get('/answer', (_request, reply) => reply.sse(async function * ({ signal }) {
    try {
      yield 'thinking'
      started++
      await new Promise((_resolve, reject) => signal.addEventListener('abort', () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted')), { once: true }))
    } finally {
      released++
    }
  }))
  await app.listen({ port: 0, host: '127.0.0.1', backlog: 4096 })
  const port = (app.server.address() as { port: number }).port
  await openHeldStreams(t, port, STREAMS, { atOnce: 200, path: '/answer' })
  await waitFor(() => started === STREAMS, 'every source to wait')
  t.equal(app.pushStream.stats().streams, STREAMS)
  const began = performance.now()
  await app.close()
  const took = performance.now() - began
  t.ok(took < 1000, `close() resolved in ${took.toFixed(0)} ms`)
  t.equal(released, STREAMS, 'every finally ran before close() resolved')
})

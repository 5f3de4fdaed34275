import t from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import compress from '@fastify/compress'
import { startApp } from '../helpers/sse.js'
import { waitFor } from '../helpers/wait.js'

t.test('with @fastify/compress registered globally, the stream is not compressed and its first event arrives at once', async (t) => {
  const { app, url } = await startApp(t, { heartbeat: 0 }, async (app) => {
    await app.register(compress, { global: true, threshold: 0 })
    app.get('/big', async () => ({ text: 'compress me '.repeat(1000) }))
  })

  // The ordinary route is compressed: the compressor is really active on this app.
  const big = http.get(`${url}/big`, { agent: false, headers: { 'accept-encoding': 'gzip, deflate, br' } })
  const [bigRes] = await once(big, 'response') as [http.IncomingMessage]
  bigRes.resume()
  t.match(bigRes.headers['content-encoding'], /^(gzip|deflate|br)$/, `an ordinary route is compressed (${bigRes.headers['content-encoding']})`)

  const req = http.get(`${url}/events`, { agent: false, headers: { 'accept-encoding': 'gzip, deflate, br' } })
  t.teardown(() => req.destroy())
  const [res] = await once(req, 'response') as [http.IncomingMessage]
  t.equal(res.statusCode, 200)
  t.equal(res.headers['content-encoding'], undefined, 'no Content-Encoding on the stream')
  t.equal(res.headers['content-type'], 'text/event-stream; charset=utf-8')
  let text = ''
  res.on('data', (chunk: Buffer) => { text += chunk.toString('utf8') })
  // The opening block arrives as plain text.
  await waitFor(() => text.includes('\n\n'), 'the opening block', 5000)
  t.match(text, /^retry: \d+\n/, 'the bytes are plain SSE text')

  // Published once the client is connected: it must arrive without waiting for more data to fill a compressor's block.
  app.pushStream.publish('first', { event: 'hello' })
  await waitFor(() => text.includes('data: first\n\n'), 'the first event', 5000)
  t.match(text, /event: hello\ndata: first\n\n$/, 'the first event arrived, uncompressed, on its own')
})

t.test('with @fastify/compress registered globally, a reply.sse stream is not compressed and each item arrives at once', async (t) => {
  let next = (): void => {}
  const { url } = await startApp(t, { heartbeat: 0 }, async (app) => {
    await app.register(compress, { global: true, threshold: 0 })
    app.get('/tokens', (_request, reply) => reply.sse(async function * () {
      yield 'first token'
      await new Promise<void>((resolve) => { next = resolve })
      yield 'second token'
    }))
  })
  const req = http.get(`${url}/tokens`, { agent: false, headers: { 'accept-encoding': 'gzip, deflate, br' } })
  t.teardown(() => req.destroy())
  const [res] = await once(req, 'response') as [http.IncomingMessage]
  t.equal(res.headers['content-encoding'], undefined, 'no Content-Encoding on the stream')
  let text = ''
  res.on('data', (chunk: Buffer) => { text += chunk.toString('utf8') })
  // Only the first item is out: it must arrive without more data to fill a compressor's block.
  await waitFor(() => text.includes('data: first token\n\n'), 'the first item', 5000)
  next()
  await once(res, 'end')
  t.match(text, /data: second token\n\nevent: push-stream:end\n/)
})

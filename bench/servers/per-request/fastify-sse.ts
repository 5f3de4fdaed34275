// @fastify/sse 0.6: an `sse: 'only'` route that awaits `reply.sse.send(token)` for each token, as its README shows.
import Fastify, { type FastifyPluginAsync } from 'fastify'
import fastifySseModule, { type SSEReplyInterface } from '@fastify/sse'
import { portOf } from '../harness.js'
import { runStreamServer } from './harness.js'

// From ESM the default import is the CommonJS `module.exports`, the wrapped plugin; its types say otherwise.
const fastifySse = fastifySseModule as unknown as FastifyPluginAsync

await runStreamServer(async (sources) => {
  const app = Fastify()
  await app.register(fastifySse)
  app.get('/tokens', { sse: 'only' }, async (request, reply) => {
    const sse = reply.sse as unknown as SSEReplyInterface
    // send() resolves once the write is taken, or after `drain` when the socket's buffer is full.
    for await (const token of sources.source(request.url, reply.raw, (token) => token)) {
      if (!sse.isConnected) break
      await sse.send(token)
    }
    // The handler's return closes the stream (no keepAlive()).
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return portOf(app.server)
})

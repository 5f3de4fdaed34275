// fastify-push-stream, as built in dist/: `return reply.sse(source)` with the token source's async generator.
import Fastify from 'fastify'
import pushStream from '../../../dist/index.js'
import { portOf } from '../harness.js'
import { runStreamServer } from './harness.js'

await runStreamServer(async (sources) => {
  const app = Fastify()
  // interval 0: no generated messages on its broadcast route; defaults otherwise (maxBufferedBytes 1 MiB).
  await app.register(pushStream, { interval: 0, maxConnections: 20_000 })
  app.get('/tokens', async (request, reply) => {
    return reply.sse(sources.source(request.url, reply.raw, (token) => token))
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return portOf(app.server)
})

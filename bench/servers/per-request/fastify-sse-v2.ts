// fastify-sse-v2 4.2: `reply.sse(asyncIterable)`, as its README shows for an AsyncIterable source.
import Fastify, { type FastifyReply } from 'fastify'
import { FastifySSEPlugin } from 'fastify-sse-v2'
import { portOf } from '../harness.js'
import { runStreamServer } from './harness.js'

type V2Reply = FastifyReply & { sse: (source: AsyncIterable<{ data: string }>) => void }

await runStreamServer(async (sources) => {
  const app = Fastify()
  await app.register(FastifySSEPlugin)
  app.get('/tokens', (request, reply) => {
    // Its messages carry `data` as a string.
    ;(reply as unknown as V2Reply).sse(sources.source(request.url, reply.raw, (token) => ({ data: token })))
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return portOf(app.server)
})

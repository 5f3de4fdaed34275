// fastify-sse-v2 4.2: `reply.sse(message)` on every kept reply, as its README shows for individual events.
import Fastify, { type FastifyReply } from 'fastify'
import { FastifySSEPlugin } from 'fastify-sse-v2'
import { portOf, runServer } from './harness.js'

type V2Reply = FastifyReply & { sse: (message: { data?: string, comment?: string }) => void }

await runServer(async () => {
  const app = Fastify()
  await app.register(FastifySSEPlugin)
  const clients = new Set<V2Reply>()
  app.get('/events', (request, reply) => {
    const sseReply = reply as unknown as V2Reply
    // The first call sends the headers and `retry:`; a comment keeps it free of events.
    sseReply.sse({ comment: 'open' })
    clients.add(sseReply)
    request.socket.on('close', () => clients.delete(sseReply))
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return {
    port: portOf(app.server),
    publish: (event) => {
      // Its messages carry `data` as a string: serialized once per broadcast.
      const data = JSON.stringify(event)
      for (const reply of clients) reply.sse({ data })
    },
    connections: () => clients.size
  }
})

// @fastify/sse 0.6: a route with `sse: 'only'` kept open, and a broadcast that sends to every kept reply.
import Fastify, { type FastifyPluginAsync } from 'fastify'
import fastifySseModule, { type SSEReplyInterface } from '@fastify/sse'
import { portOf, runServer } from './harness.js'

// From ESM the default import is the CommonJS `module.exports`, the wrapped plugin; its types say otherwise.
const fastifySse = fastifySseModule as unknown as FastifyPluginAsync

await runServer(async () => {
  const app = Fastify()
  await app.register(fastifySse)
  const clients = new Set<SSEReplyInterface>()
  app.get('/events', { sse: 'only' }, async (_request, reply) => {
    const sse = reply.sse as unknown as SSEReplyInterface
    sse.keepAlive()
    sse.onClose(() => clients.delete(sse))
    sse.sendHeaders()
    // Headers otherwise wait for the first event; the client must see the stream open.
    reply.raw.flushHeaders()
    clients.add(sse)
  })
  await app.listen({ host: '127.0.0.1', port: 0 })
  return {
    port: portOf(app.server),
    publish: (event) => {
      // send() writes at once and returns a promise that waits for drain; a broadcast does not wait.
      for (const sse of clients) sse.send({ data: event }).catch(ignore)
    },
    connections: () => clients.size
  }
})

function ignore (): void {}

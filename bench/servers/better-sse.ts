// better-sse 0.16: a session per request registered on one Channel, and Channel.broadcast, as its README shows.
import { createServer } from 'node:http'
import { createChannel, createSession } from 'better-sse'
import { portOf, runServer } from './harness.js'

await runServer(async () => {
  const channel = createChannel()
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.startsWith('/events') !== true) {
      res.writeHead(404).end()
      return
    }
    createSession(req, res).then((session) => channel.register(session), () => res.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: portOf(server),
    publish: (event) => { channel.broadcast(event) },
    connections: () => channel.sessionCount
  }
})

// The floor: what a user could write by hand with node:http, one pre-encoded frame written to every response.
import { createServer, type ServerResponse } from 'node:http'
import type { BenchEvent } from '../event.js'
import { portOf, runServer } from './harness.js'

const HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no'
}
const OPENING = Buffer.from('retry: 3000\n\n')

await runServer(async () => {
  const clients = new Set<ServerResponse>()
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.startsWith('/events') !== true) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, HEADERS)
    res.write(OPENING)
    clients.add(res)
    res.on('close', () => clients.delete(res))
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return {
    port: portOf(server),
    publish: (event: BenchEvent) => {
      const frame = Buffer.from(`data: ${JSON.stringify(event)}\n\n`)
      for (const res of clients) res.write(frame)
    },
    connections: () => clients.size
  }
})

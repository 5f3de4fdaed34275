// The floor: what a user could write by hand with node:http, one write per token, waiting for `drain` when it says so.
import { createServer, type ServerResponse } from 'node:http'
import { portOf } from '../harness.js'
import { runStreamServer } from './harness.js'

const HEADERS = {
  'content-type': 'text/event-stream; charset=utf-8',
  'cache-control': 'no-cache, no-transform',
  'x-accel-buffering': 'no'
}

await runStreamServer(async (sources) => {
  const server = createServer((req, res) => {
    if (req.method !== 'GET' || req.url?.startsWith('/tokens') !== true) {
      res.writeHead(404).end()
      return
    }
    res.writeHead(200, HEADERS)
    const tokens = sources.source(req.url, res, (token) => `data: ${token}\n\n`)
    const pipe = async (): Promise<void> => {
      for await (const frame of tokens) {
        if (res.destroyed) break
        if (!res.write(frame)) await drained(res)
      }
      res.end()
    }
    pipe().catch(() => res.destroy())
  })
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  return portOf(server)
})

/** Resolves on `drain`, or on `close`: a client that leaves while we wait leaves no promise pending. */
function drained (res: ServerResponse): Promise<void> {
  return new Promise((resolve) => {
    const done = (): void => {
      res.off('drain', done)
      res.off('close', done)
      resolve()
    }
    res.on('drain', done)
    res.on('close', done)
  })
}

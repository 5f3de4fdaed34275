// The floor: a hand-written server on node:net that puts on the wire what the plugin does — a
// close-delimited body, each event one pre-encoded Buffer with an id, written to every socket; for a
// tick's burst (publishBatch), the tick's frames joined into one Buffer and written once per socket.
import { createServer, type Socket } from 'node:net'
import type { BenchEvent } from '../event.js'
import { portOf, runServer } from './harness.js'

const HEAD = Buffer.from(
  'HTTP/1.1 200 OK\r\n' +
  'content-type: text/event-stream; charset=utf-8\r\n' +
  'cache-control: no-cache, no-transform\r\n' +
  'x-accel-buffering: no\r\n' +
  'connection: close\r\n\r\n' +
  'retry: 3000\n\n'
)
const NOT_FOUND = 'HTTP/1.1 404 Not Found\r\ncontent-length: 0\r\nconnection: close\r\n\r\n'
// As the plugin's default maxBufferedBytes: a client that stops reading is cut off, not queued for without bound.
const MAX_BUFFERED = 1024 * 1024

await runServer(async () => {
  const clients = new Set<Socket>()
  const server = createServer((socket) => {
    let head = ''
    const onData = (chunk: Buffer): void => {
      head += chunk.toString('latin1')
      if (!head.includes('\r\n\r\n')) return
      socket.off('data', onData)
      if (!head.startsWith('GET /events')) {
        socket.end(NOT_FOUND)
        return
      }
      socket.setNoDelay(true)
      socket.write(HEAD)
      clients.add(socket)
    }
    socket.on('data', onData)
    socket.on('close', () => clients.delete(socket))
    socket.on('error', () => {})
  })
  await new Promise<void>((resolve) => server.listen({ port: 0, host: '127.0.0.1', backlog: 4096 }, resolve))

  const send = (frame: Buffer): void => {
    for (const socket of clients) {
      if (socket.writableLength > 0 && socket.writableLength + frame.length > MAX_BUFFERED) socket.destroy()
      else socket.write(frame)
    }
  }
  const encode = (event: BenchEvent): Buffer => Buffer.from(`id: ${event.seq}\ndata: ${JSON.stringify(event)}\n\n`)
  return {
    port: portOf(server),
    publish: (event: BenchEvent) => { send(encode(event)) },
    publishBatch: (events: BenchEvent[]) => { send(Buffer.concat(events.map(encode))) },
    connections: () => clients.size
  }
})

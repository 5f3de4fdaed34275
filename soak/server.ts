import Fastify from 'fastify'
import pushStream from '../lib/index.js'
import { now } from './clock.js'

/**
 * The soak's server, in a process of its own so its memory can be read alone.
 * It publishes `rate` events per second to random channels; each event's data
 * is `{ c: channel, s: sequence on that channel, t: publish time }`. IPC:
 * `memory` → its RSS and heap; `stop` → stops publishing and sends every id it
 * published, per channel; `close` → closes and exits.
 */

const [rate, channelCount] = process.argv.slice(2).map(Number) as [number, number]
const channels = Array.from({ length: channelCount }, (_, i) => `ch${i}`)
const ids: Record<string, string[]> = Object.fromEntries(channels.map((c) => [c, []]))

const app = Fastify()
await app.register(pushStream, { interval: 0, maxConnections: 100_000 })
await app.listen({ port: 0, host: '127.0.0.1', backlog: 4096 })
const { port } = app.server.address() as { port: number }

let published = 0
let startedAt = 0
let publisher: NodeJS.Timeout | undefined

/** Publishes whatever is due by now, so the rate holds whatever the timer's granularity. */
function publishDue (): void {
  const due = Math.floor((now() - startedAt) * rate / 1000)
  while (published < due) {
    const c = channels[Math.floor(Math.random() * channels.length)] as string
    const list = ids[c] as string[]
    const s = list.length
    // The id is known once the promise settles; the slot keeps the order of publishing.
    list.push('')
    app.pushStream.publish({ c, s, t: now() }, { channel: c }).then((event) => { list[s] = event.id }, () => {})
    published++
  }
}

const send = (message: object): void => { process.send?.(message) }

process.on('message', (message: { type: string }) => {
  if (message.type === 'start') {
    startedAt = now()
    publisher = setInterval(publishDue, 5)
  } else if (message.type === 'memory') {
    const { rss, heapUsed } = process.memoryUsage()
    send({ type: 'memory', rss, heapUsed, connections: app.pushStream.stats().connections })
  } else if (message.type === 'stop') {
    clearInterval(publisher)
    send({ type: 'stopped', ids, stats: app.pushStream.stats() })
  } else if (message.type === 'close') {
    app.close().then(() => process.exit(0), () => process.exit(1))
  }
})
send({ type: 'ready', port })

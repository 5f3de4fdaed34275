import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdirSync, writeFileSync } from 'node:fs'
import { dirname } from 'node:path'
import { fileURLToPath } from 'node:url'
import { compareEventIds, parseEventId, type EventId } from '../lib/index.js'
import { parseArgs } from './args.js'
import { SoakClient } from './client.js'
import { Histogram } from './histogram.js'
import { markdown, memoryInterval, passed, summary, type SoakResult } from './report.js'

/**
 * `npm run soak -- --duration 10m --clients 2000 --rate 50 --channels 20 --out docs/reliability.md`:
 * a server in a child process, clients here that drop and resume at random,
 * and at the end a count of every event lost, duplicated or reordered.
 */

const MEAN_LIFE_MS = 30_000
const MAX_AWAY_MS = 2000
const CONNECT_AT_ONCE = 200
const CATCH_UP_MS = 30_000

type Memory = SoakResult['memory'][number]

async function message<T> (child: ChildProcess, type: string): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const onMessage = (m: { type: string }): void => {
      if (m.type !== type) return
      child.off('message', onMessage)
      child.off('exit', onExit)
      resolve(m as T)
    }
    const onExit = (): void => reject(new Error(`the soak server exited before "${type}"`))
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}

async function waitUntil (test: () => boolean, ms: number): Promise<boolean> {
  const deadline = Date.now() + ms
  while (!test()) {
    if (Date.now() > deadline) return false
    await new Promise((resolve) => setTimeout(resolve, 50))
  }
  return true
}

/** `count` distinct channels picked at random. */
function pick (channels: string[], count: number): string[] {
  const pool = [...channels]
  const picked: string[] = []
  while (picked.length < count && pool.length > 0) picked.push(pool.splice(Math.floor(Math.random() * pool.length), 1)[0] as string)
  return picked
}

/** The first index in `ids` of an id after `after` (ids are in increasing order). */
function firstAfter (ids: EventId[], after: EventId): number {
  let lo = 0
  let hi = ids.length
  while (lo < hi) {
    const mid = (lo + hi) >> 1
    if (compareEventIds(ids[mid] as EventId, after) > 0) hi = mid
    else lo = mid + 1
  }
  return lo
}

async function main (): Promise<number> {
  const argv = process.argv.slice(2)
  const args = parseArgs(argv)
  const command = `npm run soak${argv.length > 0 ? ` -- ${argv.join(' ')}` : ''}`
  const began = Date.now()
  console.log(`soak: ${args.clients} clients, ${args.rate} events/s over ${args.channels} channels, for ${args.durationMs / 1000} s`)

  const serverFile = fileURLToPath(new URL('./server.ts', import.meta.url))
  const server = spawn(process.execPath, ['--import', 'tsx', serverFile, String(args.rate), String(args.channels)], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  const { port } = await message<{ port: number }>(server, 'ready')

  const channels = Array.from({ length: args.channels }, (_, i) => `ch${i}`)
  const latency = new Histogram()
  const clients = Array.from({ length: args.clients }, () => new SoakClient({
    port,
    channels: pick(channels, 1 + Math.floor(Math.random() * 3)),
    latency,
    meanLife: MEAN_LIFE_MS,
    maxAway: MAX_AWAY_MS
  }))
  for (let i = 0; i < clients.length; i += CONNECT_AT_ONCE) {
    await Promise.all(clients.slice(i, i + CONNECT_AT_ONCE).map(async (client) => await client.connect()))
  }
  console.log(`soak: ${clients.length} clients connected`)

  const memory: Memory[] = []
  let startedAt = 0
  const sampleMemory = async (): Promise<void> => {
    const reply = message<Omit<Memory, 'atMs'>>(server, 'memory')
    server.send({ type: 'memory' })
    const { rss, heapUsed, connections } = await reply
    const sample = { atMs: startedAt === 0 ? 0 : Date.now() - startedAt, rss, heapUsed, connections }
    memory.push(sample)
    console.log(`soak: ${(sample.atMs / 1000).toFixed(0)} s: server RSS ${(rss / 1048576).toFixed(1)} MiB, ${connections} streams, ${latency.count} live deliveries so far`)
  }
  await sampleMemory()
  startedAt = Date.now()
  server.send({ type: 'start' })
  const sampler = setInterval(() => { sampleMemory().catch((error: unknown) => console.error(error)) }, memoryInterval(args.durationMs))

  await new Promise((resolve) => setTimeout(resolve, args.durationMs))
  clearInterval(sampler)
  for (const client of clients) client.settle()
  await waitUntil(() => clients.every((c) => c.connected), MAX_AWAY_MS * 5)

  const stoppedReply = message<{ ids: Record<string, string[]>, stats: { published: number } }>(server, 'stopped')
  server.send({ type: 'stop' })
  const { ids: idTexts, stats } = await stoppedReply
  const ids = Object.fromEntries(Object.entries(idTexts).map(([c, list]) => [c, list.map((id) => parseEventId(id) as EventId)]))
  const finalSeq = (c: string): number => (ids[c]?.length ?? 0) - 1

  const caughtUp = (client: SoakClient): boolean => client.channels.every((c) => {
    const after = firstAfter(ids[c] ?? [], parseEventId(client.startId) as EventId)
    return after > finalSeq(c) || client.lastSeq.get(c) === finalSeq(c)
  })
  await waitUntil(() => clients.every(caughtUp), CATCH_UP_MS)
  await sampleMemory()

  let lost = 0
  for (const client of clients) {
    const resets = client.resetIds.map((id) => parseEventId(id) as EventId)
    for (const c of client.channels) {
      const list = ids[c] ?? []
      const seen = client.seen.get(c)
      for (let seq = firstAfter(list, parseEventId(client.startId) as EventId); seq < list.length; seq++) {
        if (seen?.[seq] === 1) continue
        // An event a reset told the client about is beyond history, not lost silently.
        if (resets.some((reset) => compareEventIds(list[seq] as EventId, reset) <= 0)) continue
        lost++
      }
    }
  }
  const sum = (key: keyof SoakClient['counts']): number => clients.reduce((total, c) => total + c.counts[key], 0)
  const result: SoakResult = {
    args,
    command,
    date: new Date().toISOString().slice(0, 10),
    published: stats.published,
    delivered: sum('received'),
    lost,
    duplicated: sum('duplicates'),
    outOfOrder: sum('outOfOrder'),
    resets: sum('resets'),
    reconnects: sum('reconnects'),
    notCaughtUp: clients.filter((c) => !caughtUp(c)).length,
    p50: latency.percentile(0.5),
    p99: latency.percentile(0.99),
    latencySamples: latency.count,
    memory,
    wallMs: Date.now() - began
  }

  for (const client of clients) client.close()
  const exited = once(server, 'exit')
  server.send({ type: 'close' })
  await exited

  console.log(summary(result))
  if (args.out !== undefined) {
    mkdirSync(dirname(args.out), { recursive: true })
    writeFileSync(args.out, markdown(result))
    console.log(`soak: wrote ${args.out}`)
  }
  return passed(result) ? 0 : 1
}

main().then((code) => { process.exitCode = code }, (error: unknown) => {
  console.error(error)
  process.exitCode = 2
})

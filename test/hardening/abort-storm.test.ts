import t from 'tap'
import type { Socket } from 'node:net'
import type { FastifyRequest } from 'fastify'
import { rawGet, startApp } from '../helpers/sse.js'
import { LogCapture } from '../helpers/log.js'
import { waitFor } from '../helpers/wait.js'
import { heldBytes, portOf, turn } from './helpers.js'

const MiB = 1024 * 1024
const CYCLES = 10_000
const AT_ONCE = 200
// Of each batch of 200, this many wait for the server's buffer to fill before aborting (the costly kind: the kernel absorbs megabytes first).
const FULL_PER_BATCH = 4
const KINDS = ['before-request', 'before-headers', 'in-authorize', 'mid-write'] as const
type Kind = typeof KINDS[number] | 'buffer-full'

/** Counts of each kind of active handle or request: timers, sockets. */
function activeResources (): Record<string, number> {
  const counts: Record<string, number> = {}
  for (const name of process.getActiveResourcesInfo()) counts[name] = (counts[name] ?? 0) + 1
  return counts
}

t.test('10,000 connect/abort cycles leave no connection, timer, listener or memory behind', async (t) => {
  const unexpected: unknown[] = []
  const onError = (error: unknown): void => { unexpected.push(error) }
  process.on('uncaughtExceptionMonitor', onError)
  t.teardown(() => process.off('uncaughtExceptionMonitor', onError))

  // Abort hooks of clients that wait to be told the server is in their authorize, by token.
  const inAuthorize = new Map<string, () => void>()
  // Server sockets of the clients that wait for a full buffer, by token.
  const serverSockets = new Map<string, Socket>()
  const log = new LogCapture()
  const { app, url } = await startApp(t, {
    history: 10,
    heartbeat: 0,
    maxBufferedBytes: 64 * MiB,
    maxConnections: 100_000,
    authorize: async (request: FastifyRequest) => {
      const { token } = request.query as { token?: string }
      const abort = token === undefined ? undefined : inAuthorize.get(token)
      if (abort === undefined) return true
      // The client leaves while its request is still being authorized.
      const socket = request.raw.socket
      await new Promise((resolve) => { socket.once('close', resolve); abort() })
      return true
    }
  }, (app) => {
    app.addHook('onRequest', async (request) => {
      const { token } = request.query as { token?: string }
      if (token?.startsWith('full-') === true) serverSockets.set(token, request.raw.socket)
    })
  }, { logger: { level: 'warn', stream: log } })
  const port = portOf(url)

  // A publisher that keeps the server writing to the 'live' channel during the storm.
  const live = { publishing: true }
  const small = 'm'.repeat(1024)
  const publisher = (async () => {
    while (live.publishing) {
      app.pushStream.publish(small, { channel: 'live' })
      await turn()
    }
  })()
  const big = 'B'.repeat(256 * 1024)
  // Buffer-full cycles that did see the server holding unsent bytes when they left.
  let fullReached = 0

  async function cycle (kind: Kind, token: string): Promise<void> {
    if (kind === 'before-request') {
      const socket = rawGet(port, `/events?channel=live&token=${token}`)
      socket.destroy()
      return
    }
    if (kind === 'before-headers') {
      const socket = rawGet(port, `/events?channel=live&token=${token}`)
      await new Promise((resolve) => setImmediate(resolve))
      socket.destroy()
      return
    }
    if (kind === 'in-authorize') {
      // Called from authorize, which runs only after the request below was sent.
      const asked = new Promise<void>((resolve) => {
        inAuthorize.set(token, () => { socket.destroy(); resolve() })
      })
      const socket = rawGet(port, `/events?channel=live&token=${token}`)
      await asked
      inAuthorize.delete(token)
      return
    }
    if (kind === 'mid-write') {
      const socket = rawGet(port, `/events?channel=live&token=${token}`)
      let seen = ''
      // Headers, the opening block, then at least one live event: the server is mid-write when it goes.
      await new Promise<void>((resolve) => {
        socket.on('data', (chunk: Buffer) => {
          seen += chunk.toString('latin1')
          if (/\r\n\r\n[\s\S]*\n\n[\s\S]*data: m/.test(seen)) resolve()
        })
        socket.once('close', () => resolve())
      })
      socket.destroy()
      return
    }
    // buffer-full: never read, and leave once the server is holding bytes it cannot send.
    const socket = rawGet(port, `/events?channel=full&token=${token}`)
    socket.pause()
    for (let i = 0; i < 10_000; i++) {
      const held = serverSockets.get(token)
      if (held !== undefined && held.writableLength > 0) break
      if (held !== undefined) app.pushStream.publish(big, { channel: 'full' })
      await turn()
    }
    if ((serverSockets.get(token)?.writableLength ?? 0) > 0) fullReached++
    serverSockets.delete(token)
    socket.destroy()
  }

  async function storm (cycles: number, label: string): Promise<Record<Kind, number>> {
    const done: Record<Kind, number> = { 'before-request': 0, 'before-headers': 0, 'in-authorize': 0, 'mid-write': 0, 'buffer-full': 0 }
    for (let start = 0; start < cycles; start += AT_ONCE) {
      const batch: Array<Promise<void>> = []
      for (let i = start; i < Math.min(cycles, start + AT_ONCE); i++) {
        const kind: Kind = i - start < FULL_PER_BATCH ? 'buffer-full' : KINDS[i % KINDS.length] as Kind
        const token = kind === 'buffer-full' ? `full-${label}-${i}` : `${label}-${i}`
        batch.push(cycle(kind, token).then(() => { done[kind]++ }))
      }
      await waitFor(Promise.all(batch), `batch ${start / AT_ONCE} of ${label}`, 20_000)
    }
    return done
  }

  /** Waits for every stream to be gone, then leaves history holding only small events, as at the start. */
  async function settle (): Promise<void> {
    await waitFor(() => app.pushStream.stats().connections === 0, 'no connection left', 10_000)
    for (let i = 0; i < 10; i++) app.pushStream.publish(small, { channel: 'live' })
  }

  const listenerCounts = (): Record<string, number> =>
    Object.fromEntries(app.server.eventNames().map((name) => [String(name), app.server.listenerCount(name)]))

  // A warm-up storm first, so pools, caches and compiled code are in the baseline.
  await storm(1_000, 'warm')
  live.publishing = false
  await publisher
  await settle()
  const baseResources = activeResources()
  const baseListeners = listenerCounts()
  const baseHeld = heldBytes()

  live.publishing = true
  const running = (async () => {
    while (live.publishing) {
      app.pushStream.publish(small, { channel: 'live' })
      await turn()
    }
  })()
  const started = performance.now()
  const done = await storm(CYCLES, 'storm')
  live.publishing = false
  await running
  await settle()
  const took = performance.now() - started

  t.same(Object.values(done).reduce((a, b) => a + b, 0), CYCLES, `${CYCLES} cycles in ${(took / 1000).toFixed(1)} s: ${JSON.stringify(done)}`)
  t.equal(fullReached, 1_000 / AT_ONCE * FULL_PER_BATCH + CYCLES / AT_ONCE * FULL_PER_BATCH, 'every buffer-full client left while the server held bytes for it')
  t.equal(app.pushStream.stats().connections, 0, '0 connections in stats()')
  t.equal(app.pushStream.stats().slowDisconnects, 0, 'no stream was cut as slow: each one was aborted by its client')
  const resources = activeResources()
  t.equal(resources.Timeout ?? 0, baseResources.Timeout ?? 0, 'no timer left')
  t.equal(resources.TCPSocketWrap ?? 0, baseResources.TCPSocketWrap ?? 0, 'no socket left')
  t.same(listenerCounts(), baseListeners, 'no listener left on the server')
  const grown = heldBytes() - baseHeld
  t.ok(grown < 5 * MiB, `held memory after a forced GC grew by ${(grown / MiB).toFixed(2)} MiB (budget 5 MiB)`)
  t.same(unexpected, [], 'no uncaught error')
  t.same(log.lines.filter((line) => (line.level as number) >= 50), [], 'nothing logged as an error')
})

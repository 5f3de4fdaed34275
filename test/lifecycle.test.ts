import t from 'tap'
import type { Test } from 'tap'
import http from 'node:http'
import net from 'node:net'
import Fastify from 'fastify'
import pushStream from '../lib/index.js'
import { DRAIN_GRACE_MS } from '../lib/connection.js'
import { StreamClient, openStream, rawGet, request, startApp, startAppClosingDuringAuthorize } from './helpers/sse.js'
import { waitFor } from './helpers/wait.js'

t.test('close() ends 1,000 open streams and resolves in under a second', async (t) => {
  const { app, url } = await startApp(t, { retry: 2000 })
  const clients = await Promise.all(Array.from({ length: 1000 }, () => openStream(`${url}/events`)))
  t.equal(app.pushStream.stats().connections, 1000)
  const started = performance.now()
  await app.close()
  const took = performance.now() - started
  t.ok(took < 1000, `closed in ${took.toFixed(0)} ms`)
  await Promise.all(clients.map((c) => c.ended))
  // Each client got a last retry: with jitter, so they do not all come back in the same millisecond.
  const lastRetries = clients.map((c) => c.retries.at(-1) as number)
  t.ok(lastRetries.every((r) => r >= 2000 && r < 4000), 'final retry between retry and twice retry')
  t.ok(new Set(lastRetries).size > 100, `${new Set(lastRetries).size} distinct final retry values`)
  t.equal(app.pushStream.stats().connections, 0)
  t.throws(() => app.pushStream.publish('late'), { code: 'FST_PUSH_STREAM_CLOSED' })
})

/** A raw client on the broadcast route that takes its opening block and reads no more, and the server's sockets. */
async function clientBehind (t: Test, app: Awaited<ReturnType<typeof startApp>>['app'], url: string): Promise<net.Socket> {
  const serverSockets: net.Socket[] = []
  app.server.on('connection', (socket: net.Socket) => serverSockets.push(socket))
  const slow = rawGet(Number(new URL(url).port), '/events')
  t.teardown(() => slow.destroy())
  await new Promise((resolve) => slow.once('data', resolve))
  slow.pause()
  const payload = 'z'.repeat(16 * 1024)
  let published = 0
  // Until the server's socket holds bytes the kernel would not take: the client is behind.
  while (serverSockets.every((socket) => socket.writableLength === 0) && published < 4000) {
    app.pushStream.publish({ n: ++published, payload })
    await new Promise((resolve) => setImmediate(resolve))
  }
  t.ok(serverSockets.some((socket) => socket.writableLength > 0), `the server holds bytes for the client after ${published} events`)
  return slow
}

t.test('a client that is behind when the server closes still gets every event, then its final retry', async (t) => {
  const { app, url } = await startApp(t, { retry: 2000, maxBufferedBytes: 64 * 1024 * 1024 })
  const slow = await clientBehind(t, app, url)
  const published = app.pushStream.stats().published
  const closed = app.close()
  let received = ''
  slow.setEncoding('utf8')
  slow.on('data', (chunk: string) => { received += chunk })
  slow.resume()
  await waitFor(new Promise((resolve) => slow.once('end', resolve)), 'the stream to end', 10_000)
  await closed
  const numbers = [...received.matchAll(/"n":(\d+)/g)].map((m) => Number(m[1]))
  t.same(numbers, Array.from({ length: published }, (_, i) => i + 1), 'every event, once, in order')
  t.match(received, /\n\nretry: \d+\n\n$/, 'and the final retry last')
})

t.test('a client that reads nothing more does not hold close() open: it is cut after the drain grace', async (t) => {
  const { app, url } = await startApp(t, { maxBufferedBytes: 64 * 1024 * 1024 })
  const slow = await clientBehind(t, app, url)
  const started = performance.now()
  await waitFor(app.close(), 'close() to resolve', 10_000)
  const took = performance.now() - started
  t.ok(took >= DRAIN_GRACE_MS - 50, `close() waited ${took.toFixed(0)} ms for the client first`)
  // Reading again, the client finds its connection cut before the final retry could reach it.
  let received = ''
  slow.setEncoding('utf8')
  slow.on('data', (chunk: string) => { received += chunk })
  slow.resume()
  await waitFor(new Promise((resolve) => slow.once('close', resolve)), 'the client to see its connection end', 5000)
  t.notMatch(received, /\n\nretry: \d+\n\n$/, 'no final retry: the stream was cut')
  t.equal(app.pushStream.stats().connections, 0)
})

t.test('a request that arrives while the server closes gets 503', async (t) => {
  let release = (): void => {}
  let held = (): void => {}
  const holding = new Promise<void>((resolve) => { held = resolve })
  const app = Fastify()
  await app.register(pushStream, { interval: 0 })
  // Hold the close between the plugin's preClose and server.close(), as a slow plugin would.
  app.addHook('preClose', () => new Promise<void>((resolve) => {
    release = resolve
    held()
  }))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const stream = await openStream(`http://127.0.0.1:${port}/events`)
  const closing = app.close()
  await stream.ended
  await holding
  const res = await request(`http://127.0.0.1:${port}/events`)
  t.equal(res.status, 503)
  release()
  await closing
})

t.test('past maxConnections: 503 with Retry-After, and other routes still answer', async (t) => {
  const { app, url } = await startApp(t, { maxConnections: 2, retry: 2500 }, (app) => {
    app.get('/health', async () => ({ ok: true }))
  })
  const a = await openStream(`${url}/events`)
  const b = await openStream(`${url}/events`)
  t.teardown(() => { a.close(); b.close() })
  const refused = await request(`${url}/events`)
  t.equal(refused.status, 503)
  t.equal(refused.headers['retry-after'], '3')
  t.equal(JSON.parse(refused.body).code, 'FST_PUSH_STREAM_TOO_MANY_CONNECTIONS')
  t.equal((await request(`${url}/health`)).status, 200)
  a.close()
  await waitFor(() => app.pushStream.stats().connections === 1, 'the slot to free')
  const c = await openStream(`${url}/events`)
  t.teardown(() => c.close())
  t.equal(c.status, 200)
})

t.test('past maxConnectionsPerIp: 503 with Retry-After for that address only, and its slot frees when a stream ends', async (t) => {
  // Behind a proxy, request.ip is the forwarded address: two clients from one machine here.
  const { app, url } = await startApp(t, { maxConnectionsPerIp: 2 }, (app) => {
    app.get('/health', async () => ({ ok: true }))
  }, { trustProxy: true })
  const from = (ip: string): Record<string, string> => ({ 'x-forwarded-for': ip })
  const a = await openStream(`${url}/events`, from('10.0.0.1'))
  const b = await openStream(`${url}/events?channel=news`, from('10.0.0.1'))
  const other = await openStream(`${url}/events`, from('10.0.0.2'))
  t.teardown(() => { a.close(); b.close(); other.close() })
  t.equal(other.status, 200, 'another address is not limited by the first one\'s streams')
  const refused = await request(`${url}/events`, { headers: from('10.0.0.1') })
  t.equal(refused.status, 503)
  t.equal(refused.headers['retry-after'], '3')
  t.equal(JSON.parse(refused.body).code, 'FST_PUSH_STREAM_TOO_MANY_CONNECTIONS_PER_IP')
  t.match(JSON.parse(refused.body).message, /maxConnectionsPerIp is 2/)
  t.equal((await request(`${url}/health`, { headers: from('10.0.0.1') })).status, 200, 'ordinary routes still answer that address')
  a.close()
  await waitFor(() => app.pushStream.stats().connections === 2, 'the slot to free')
  const c = await openStream(`${url}/events`, from('10.0.0.1'))
  t.teardown(() => c.close())
  t.equal(c.status, 200)
})

t.test('the limit is checked again after an async authorize', async (t) => {
  const waiting: Array<() => void> = []
  const { app, url } = await startApp(t, {
    maxConnections: 1,
    authorize: () => new Promise<boolean>((resolve) => waiting.push(() => resolve(true)))
  })
  const first = new StreamClient(`${url}/events`)
  const second = new StreamClient(`${url}/events`)
  t.teardown(() => { first.close(); second.close() })
  await waitFor(() => waiting.length === 2, 'both requests to reach authorize')
  for (const allow of waiting) allow()
  await first.opened()
  await second.opened()
  t.same([first.status, second.status].sort(), [200, 503])
  t.equal(app.pushStream.stats().connections, 1)
})

t.test('a client gone while authorize ran is never subscribed', async (t) => {
  let allow = (): void => {}
  let asked = (): void => {}
  const called = new Promise<import('fastify').FastifyRequest>((resolve) => { asked = resolve as () => void })
  let decision: Promise<boolean> | undefined
  const { app, url } = await startApp(t, {
    authorize: (request) => {
      (asked as (r: unknown) => void)(request)
      decision = new Promise<boolean>((resolve) => { allow = () => resolve(true) })
      return decision
    }
  })
  const client = new StreamClient(`${url}/events`)
  const serverRequest = await called
  const gone = new Promise((resolve) => serverRequest.raw.once('close', resolve))
  client.close()
  await gone
  allow()
  await decision
  // The handler resumes after the decision on the next microtasks; let them run.
  await new Promise((resolve) => setImmediate(resolve))
  t.equal(app.pushStream.stats().connections, 0)
  app.pushStream.publish('nobody listens')
  t.equal(app.pushStream.stats().connections, 0)
})

t.test('10,000 connect/abort cycles leave no connection behind', async (t) => {
  const { app, url } = await startApp(t)
  const agent = new http.Agent({ keepAlive: false, maxSockets: 200 })
  t.teardown(() => agent.destroy())
  let opened = 0
  const cycle = (i: number): Promise<void> => new Promise((resolve) => {
    const req = http.get(`${url}/events`, { agent }, (res) => {
      opened++
      // Abort right after the headers, or after the first bytes of the stream.
      if (i % 2 === 0) req.destroy()
      else res.once('data', () => req.destroy())
    })
    req.on('error', () => {})
    req.on('close', () => resolve())
    // A third of them are aborted before any answer could come.
    if (i % 3 === 0) setImmediate(() => req.destroy())
  })
  const total = 10_000
  let next = 0
  const worker = async (): Promise<void> => {
    while (next < total) await cycle(next++)
  }
  await Promise.all(Array.from({ length: 200 }, worker))
  t.ok(opened > 1000, `${opened} streams opened before their abort`)
  await waitFor(() => app.pushStream.stats().connections === 0, 'every stream to be removed', 10_000)
  const sockets = (): Promise<number> => new Promise((resolve, reject) => app.server.getConnections((err, n) => err ? reject(err) : resolve(n)))
  let open = await sockets()
  for (let tries = 0; open > 0 && tries < 1000; tries++) {
    await new Promise((resolve) => setImmediate(resolve))
    open = await sockets()
  }
  t.equal(open, 0, 'no socket left open on the server')
  // Publishing now writes to nobody; a leftover connection would throw or be counted.
  app.pushStream.publish('after the storm')
  t.equal(app.pushStream.stats().connections, 0)
})

t.test('heartbeat comments reach idle streams', async (t) => {
  const { url } = await startApp(t, { heartbeat: 20 })
  const client = await openStream(`${url}/events`)
  t.teardown(() => client.close())
  await client.until(() => client.comments.length >= 2, 'two heartbeats')
  t.match(client.raw, /\n\n:\n\n:\n\n/)
  t.equal(client.events.length, 0, 'a heartbeat is no event')
})

t.test('bad options fail at register with a named error that says what and why', async (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ interval: -1 }, /"interval": got number -1, expected an integer from 0/],
    [{ heartbeat: 1.5 }, /"heartbeat"/],
    [{ retry: '3000' }, /"retry": got "3000"/],
    [{ history: Infinity }, /"history"/],
    [{ maxBufferedBytes: 0 }, /"maxBufferedBytes"/],
    [{ maxConnections: null }, /"maxConnections"/],
    [{ path: 'events' }, /"path": got "events", expected a string starting with "\/"/],
    [{ path: () => '/events' }, /"path": got a function/],
    [{ source: 'abc' }, /"source"/],
    [{ serialize: 'json' }, /"serialize"/],
    [{ authorize: true }, /"authorize"/]
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    app.register(pushStream, options)
    await t.rejects(async () => { await app.ready() }, { code: 'FST_PUSH_STREAM_INVALID_OPTION', message }, JSON.stringify(options))
    await app.close()
  }
})

t.test('registering twice is a named error', async (t) => {
  const app = Fastify()
  app.register(pushStream)
  app.register(pushStream, { path: '/other' })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_PUSH_STREAM_ALREADY_REGISTERED' })
  await app.close()
})

t.test('the route follows the path option', async (t) => {
  const { app, url } = await startApp(t, { path: '/api/stream' })
  const client = await openStream(`${url}/api/stream`)
  t.teardown(() => client.close())
  app.pushStream.publish('here')
  t.equal((await client.take(1))[0]?.data, 'here')
  t.equal((await request(`${url}/events`)).status, 404)
})

t.test('a stream still in authorize when close begins gets 503 shutting down', async (t) => {
  const { app, url, authorizing, hold } = await startAppClosingDuringAuthorize({ retry: 1000 })
  const pending = new StreamClient(`${url}/events`)
  hold(pending)
  await authorizing
  await app.close()
  t.equal(pending.status, 503)
  t.equal(pending.headers['retry-after'], '1')
  t.equal(JSON.parse(pending.raw).code, 'FST_PUSH_STREAM_SHUTTING_DOWN')
})

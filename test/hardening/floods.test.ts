import t from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import { request, startApp } from '../helpers/sse.js'
import type { PushStreamOptions } from '../../lib/index.js'
import { waitFor } from '../helpers/wait.js'

/** A stream request from a given local address: resolves with its answer; a 200 stream stays open until `close()`. */
async function openFrom (url: string, localAddress = '127.0.0.1'): Promise<{ status: number, retryAfter: string | undefined, body: string, close: () => void }> {
  const req = http.get(`${url}/events`, { agent: false, localAddress })
  req.on('error', () => {})
  const [res] = await once(req, 'response') as [http.IncomingMessage]
  const close = (): void => { req.destroy() }
  const status = res.statusCode ?? 0
  let body = ''
  if (status !== 200) {
    res.setEncoding('utf8')
    for await (const chunk of res) body += chunk
  }
  return { status, retryAfter: res.headers['retry-after'], body, close }
}

const codeOf = (body: string): unknown => (JSON.parse(body) as { code?: unknown }).code

/** An app with an ordinary route beside the stream, which must keep answering through a flood. */
const withHealthRoute = (app: { get: (path: string, handler: () => Promise<unknown>) => unknown }): void => {
  app.get('/health', async () => ({ ok: true }))
}

t.test('past maxConnections: a flood of requests gets 503 with Retry-After while an ordinary route answers 200', async (t) => {
  const { app, url } = await startApp(t, { maxConnections: 20, retry: 2500 }, withHealthRoute)
  const open = await Promise.all(Array.from({ length: 20 }, () => openFrom(url)))
  t.teardown(() => { for (const stream of open) stream.close() })
  t.same(open.map((s) => s.status), Array(20).fill(200), '20 streams open')

  // 500 refused stream requests and 100 ordinary ones, all at once.
  const flood = Array.from({ length: 500 }, () => openFrom(url))
  const ordinary = Array.from({ length: 100 }, () => request(`${url}/health`))
  const [refused, answered] = await waitFor(Promise.all([Promise.all(flood), Promise.all(ordinary)]), 'the flood', 15_000)
  t.ok(refused.every((r) => r.status === 503), 'every stream request past the limit: 503')
  t.ok(refused.every((r) => r.retryAfter === '3'), 'each with Retry-After: 3 (retry 2500 ms, rounded up)')
  t.ok(refused.every((r) => codeOf(r.body) === 'FST_PUSH_STREAM_TOO_MANY_CONNECTIONS'), 'and the named error')
  t.ok(answered.every((r) => r.status === 200 && r.body === '{"ok":true}'), 'every ordinary request: 200')
  t.equal(app.pushStream.stats().connections, 20, 'the open streams are untouched')

  // A closed stream frees its slot.
  open[0]?.close()
  await waitFor(() => app.pushStream.stats().connections === 19, 'the slot to free', 5000)
  const next = await openFrom(url)
  t.equal(next.status, 200, 'a slot freed by a closed stream is taken by the next request')
  next.close()
})

t.test('past maxConnectionsPerIp: 503 with Retry-After for that address only, while an ordinary route answers', async (t) => {
  // maxConnectionsPerIp: integer, default 0 (no limit); counts open streams per request.ip.
  const options: PushStreamOptions = { maxConnectionsPerIp: 3, retry: 1000 }
  const { app, url } = await startApp(t, options, withHealthRoute)
  const mine = await Promise.all(Array.from({ length: 3 }, () => openFrom(url, '127.0.0.1')))
  t.teardown(() => { for (const stream of mine) stream.close() })
  t.same(mine.map((s) => s.status), [200, 200, 200], 'three streams from 127.0.0.1')

  const refused = await waitFor(Promise.all(Array.from({ length: 100 }, () => openFrom(url, '127.0.0.1'))), 'the flood from one address', 10_000)
  t.ok(refused.every((r) => r.status === 503), `every further stream from 127.0.0.1: 503 (got ${[...new Set(refused.map((r) => r.status))].join(', ')})`)
  t.ok(refused.every((r) => r.retryAfter === '1'), 'each with Retry-After')
  t.ok(refused.every((r) => r.status !== 503 || codeOf(r.body) === 'FST_PUSH_STREAM_TOO_MANY_CONNECTIONS_PER_IP'), 'and the named error')

  const health = await request(`${url}/health`, { localAddress: '127.0.0.1' })
  t.equal(health.status, 200, 'an ordinary route from the same address: 200')
  const other = await openFrom(url, '127.0.0.2')
  t.equal(other.status, 200, 'another address still gets a stream')
  other.close()

  mine[0]?.close()
  await waitFor(() => app.pushStream.stats().connections === 2, 'the slot to free', 5000)
  const again = await openFrom(url, '127.0.0.1')
  t.equal(again.status, 200, 'a closed stream frees its slot for that address')
  again.close()
})

t.test('maxConnectionsPerIp defaults to no limit', async (t) => {
  const { url } = await startApp(t, {})
  const streams = await Promise.all(Array.from({ length: 50 }, () => openFrom(url)))
  t.teardown(() => { for (const stream of streams) stream.close() })
  t.ok(streams.every((s) => s.status === 200), '50 streams from one address')
})

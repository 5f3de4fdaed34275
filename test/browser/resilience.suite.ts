// The client's second version in a real Chromium, against the plugin over real sockets:
// retries by status, credentials from a function at every attempt, per-request streams
// that end, iteration and signals, hidden tabs.
import t from 'tap'
import type { FastifyInstance, FastifyReply } from 'fastify'
import type { Page } from 'playwright-core'
import { idOf } from '../helpers/sse.js'
import { waitFor } from '../helpers/wait.js'
import {
  launchBrowser,
  logOf,
  messageIds,
  newContext,
  open,
  openPage,
  startServer,
  states,
  waitForLog,
  type LogEntry
} from './helpers.js'

const browser = await launchBrowser(t)

/** The last state a client's log shows. */
function lastState (log: LogEntry[], name: string): LogEntry | undefined {
  return log.filter((e) => e.client === name && e.type === 'state').pop()
}

/** Waits until client `name`'s last state is `state`. */
async function reach (page: Page, name: string, state: string, timeout = 10000): Promise<void> {
  await waitForLog(page, `${name} ${state}`, (log, arg) => log.filter((e) => e.client === arg.name && e.type === 'state').pop()?.state === arg.state, { name, state }, timeout)
}

/** Writes a per-request stream the way the per-request routes will: an opening event, the events, a final control event. */
function writeJob (reply: FastifyReply, items: string[], last: string): void {
  reply.hijack()
  reply.raw.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' })
  // retry 0: a client that wrongly came back would do so within a millisecond or two.
  reply.raw.write('event: push-stream:open\ndata: {"retry":0,"heartbeat":0}\n\n')
  items.forEach((item, i) => reply.raw.write(`id: job-${i + 1}\ndata: ${JSON.stringify(item)}\n\n`))
  reply.raw.end(last)
}

t.test('status-aware: 502, 503 (after its Retry-After), 504 and 429 are retried, over fetch and over EventSource; 401, 403 and 500 stop with their status', async (t) => {
  let failing = true
  const server = await startServer(t, {}, (app: FastifyInstance) => {
    app.addHook('onRequest', async (request, reply) => {
      if (!request.url.startsWith('/events?')) return
      // The channel names the status to answer with: f502 is a fetch client meeting 502s.
      const status = Number(String((request.query as Record<string, unknown>).channel ?? '').slice(1))
      if (!(status >= 400) || (!failing && [502, 503, 504, 429].includes(status))) return
      if (status === 503) reply.header('retry-after', '1')
      reply.code(status).send({ status })
      return reply
    })
  })
  const count = (channel: string): number => server.requests.filter((url) => url.includes(`channel=${channel}&`)).length
  const quick = { retry: 50, maxDelay: 100 }
  const fetchPage = await openPage(await newContext(t, browser), server.origin)
  const esPage = await openPage(await newContext(t, browser), server.origin)
  const retried = ['f502', 'f503', 'f504', 'f429']
  const stopped = ['f401', 'f403', 'f500']
  for (const name of [...retried, ...stopped]) await open(fetchPage, name, '/events', { ...quick, channels: [name] })
  for (const name of ['e502', 'e503', 'e403']) await open(esPage, name, '/events', { ...quick, channels: [name], transport: 'eventsource' })

  const hasRetried = (log: LogEntry[], names: string[]): boolean => names.every((n) => log.filter((e) => e.client === n && e.state === 'reconnecting').length >= 2)
  await waitForLog(fetchPage, 'fetch clients retried twice', hasRetried, retried)
  await waitForLog(esPage, 'EventSource clients retried twice', hasRetried, ['e502', 'e503'])
  for (const name of stopped) await reach(fetchPage, name, 'stopped')
  await reach(esPage, 'e403', 'stopped')
  const counts = Object.fromEntries([...stopped, 'e403'].map((name) => [name, count(name)]))
  // The retries' statuses are read from before the server recovers: a retry under way at that moment may see it recovered.
  const fetchLog = await logOf(fetchPage)
  const esLog = await logOf(esPage)

  failing = false
  for (const name of retried) await reach(fetchPage, name, 'open')
  for (const name of ['e502', 'e503']) await reach(esPage, name, 'open')
  const of = (log: LogEntry[], name: string): LogEntry[] => log.filter((e) => e.client === name && e.type === 'state')
  for (const [log, name] of [...retried.map((n) => [fetchLog, n] as const), [esLog, 'e502'] as const, [esLog, 'e503'] as const]) {
    const tries = of(log, name).filter((e) => e.state === 'reconnecting')
    const status = Number(name.slice(1))
    t.ok(tries.every((e) => e.status === status), `${name}: every retry says ${status}`)
    if (status === 503) t.ok(tries.every((e) => (e.delay as number) >= 1000), `${name}: waits at least Retry-After (${tries.map((e) => e.delay).join(', ')} ms)`)
    else t.ok(tries.every((e) => (e.delay as number) <= 100), `${name}: the client's own backoff (${tries.map((e) => e.delay).join(', ')} ms)`)
  }
  for (const name of stopped) {
    t.same(of(fetchLog, name).map((e) => [e.state, e.status]), [['connecting', undefined], ['stopped', Number(name.slice(1))]], `${name}: stopped with its status`)
  }
  t.same(of(esLog, 'e403').map((e) => [e.state, e.status]), [['connecting', undefined], ['stopped', 403]], 'EventSource: stopped with the status it learned')

  // Published on the channels of clients now open, so the stopped ones have had time to wrongly come back.
  const id = await idOf(server.app.pushStream.publish('back', { channel: 'f502' }))
  await waitForLog(fetchPage, 'f502 gets the event', (log, id) => log.some((e) => e.client === 'f502' && e.id === id), id)
  t.same(Object.fromEntries([...stopped, 'e403'].map((name) => [name, count(name)])), counts, 'no request after stopped')
  t.same(counts, { f401: 1, f403: 1, f500: 1, e403: 2 }, 'one request each; with EventSource, one more to learn the status')
})

t.test('headers from a function at every attempt: a 401 calls onUnauthorized, and the next attempt, at once, sends the refreshed token', async (t) => {
  const seen: string[] = []
  const server = await startServer(t, {}, (app: FastifyInstance) => {
    app.addHook('onRequest', async (request, reply) => {
      if (!request.url.startsWith('/events?')) return
      seen.push(String(request.headers.authorization))
      if (request.headers.authorization !== 'Bearer good') {
        reply.code(401).send({ error: 'token' })
        return reply
      }
    })
  })
  const page = await openPage(await newContext(t, browser), server.origin)
  await open(page, 'auth', '/events', { token: 'stale', refresh: 'good', retry: 50, maxDelay: 100 })
  await reach(page, 'auth', 'open')
  let log = await logOf(page, 'auth')
  t.same(log.filter((e) => e.type !== 'state').map((e) => [e.type, e.data]), [['headers', 'stale'], ['unauthorized', 401], ['headers', 'good']])
  t.same(log.filter((e) => e.type === 'state').map((e) => [e.state, e.status, e.delay]), [['connecting', undefined, undefined], ['reconnecting', 401, 0], ['connecting', undefined, undefined], ['open', undefined, undefined]],
    'the retry after a refresh goes at once')
  t.same(seen, ['Bearer stale', 'Bearer good'])

  // A lost connection: the function is asked again before the next attempt.
  await page.evaluate(() => { (window as unknown as { __tokens: Record<string, string> }).__tokens.auth = 'good' })
  server.setDown(true)
  await reach(page, 'auth', 'reconnecting')
  server.setDown(false)
  await waitForLog(page, 'open again', (log) => log.filter((e) => e.client === 'auth' && e.state === 'open').length === 2, null)
  log = await logOf(page, 'auth')
  t.ok(log.filter((e) => e.type === 'headers').length >= 3, 'headers asked for at every attempt')
  t.equal(seen.at(-1), 'Bearer good')

  await open(page, 'no-hook', '/events', { token: 'stale', retry: 50 })
  await reach(page, 'no-hook', 'stopped')
  t.same(states(await logOf(page, 'no-hook')), ['connecting', 'stopped'], 'without onUnauthorized, a 401 stops')
})

t.test('per-request streams: push-stream:end ends the client (ended, with the reason) and push-stream:error fails it (failed, with the code); POST with a body; an iteration ends or throws', async (t) => {
  const server = await startServer(t, {}, (app: FastifyInstance) => {
    app.post('/job', async (request, reply) => {
      const { items, outcome } = request.body as { items: string[], outcome: 'end' | 'error' }
      writeJob(reply, items, outcome === 'end'
        ? 'event: push-stream:end\ndata: {"reason":"done"}\n\n'
        : 'event: push-stream:error\ndata: {"code":"FST_PUSH_STREAM_SOURCE_FAILED"}\n\n')
      return reply
    })
  })
  const page = await openPage(await newContext(t, browser), server.origin)
  const post = (items: string[], outcome: string): Record<string, unknown> =>
    ({ method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ items, outcome }), iterate: 0 })
  await open(page, 'done', '/job', post(['a', 'b'], 'end'))
  await open(page, 'broken', '/job', post(['c'], 'error'))
  await reach(page, 'done', 'ended')
  await reach(page, 'broken', 'failed')
  await waitForLog(page, 'both iterations over', (log) => log.filter((e) => e.type === 'done').length === 2, null)
  // A round trip to the server and back to the page: a client that came back (retry 0) would have asked by now.
  await open(page, 'later', '/job', post([], 'end'))
  await reach(page, 'later', 'ended')

  const log = await logOf(page)
  const of = (name: string): LogEntry[] => log.filter((e) => e.client === name)
  t.same(of('done').filter((e) => e.type === 'state').map((e) => [e.state, e.reason]), [['connecting', undefined], ['open', undefined], ['ended', 'done']])
  t.same(of('broken').filter((e) => e.type === 'state').map((e) => [e.state, e.code]), [['connecting', undefined], ['open', undefined], ['failed', 'FST_PUSH_STREAM_SOURCE_FAILED']])
  t.same(messageIds(of('done')), ['job-1', 'job-2'])
  t.same(of('done').filter((e) => e.type === 'item').map((e) => e.data), ['a', 'b'], 'iterated')
  const ended = of('done').find((e) => e.type === 'done') as LogEntry
  t.same([ended.state, ended.data], [undefined, undefined], 'the iteration of an ended stream simply ends')
  const thrown = of('broken').find((e) => e.type === 'done') as LogEntry
  t.equal(thrown.state, 'failed')
  t.match(thrown.data, { code: 'FST_PUSH_STREAM_SOURCE_FAILED' }, 'the iteration of a failed stream throws with the code')
  t.equal(server.requests.filter((url) => url.startsWith('/job?')).length, 3, 'one request per client: an ended or failed client does not come back')
})

t.test('a broadcast push-stream:end ends the clients of that channel', async (t) => {
  const server = await startServer(t)
  const page = await openPage(await newContext(t, browser), server.origin)
  await open(page, 'room', '/events', { channels: ['room'] })
  await open(page, 'other', '/events', { channels: ['other'] })
  await reach(page, 'room', 'open')
  await reach(page, 'other', 'open')
  server.app.pushStream.publish({ reason: 'closed-by-host' }, { channel: 'room', event: 'push-stream:end' })
  await reach(page, 'room', 'ended')
  t.equal(lastState(await logOf(page), 'room')?.reason, 'closed-by-host')
  await waitFor(() => server.app.pushStream.stats().connections === 1, 'the ended client let its stream go')
  t.equal(lastState(await logOf(page), 'other')?.state, 'open')
})

t.test('for await: leaving the loop closes the client; a signal closes it, an aborted one before any request', async (t) => {
  const server = await startServer(t)
  const { app } = server
  const page = await openPage(await newContext(t, browser), server.origin)
  await open(page, 'loop', '/events', { channels: ['loop'], iterate: 2 })
  await open(page, 'signal', '/events', { channels: ['signal'], signal: 'live' })
  await open(page, 'aborted', '/events', { channels: ['aborted'], signal: 'aborted' })
  await reach(page, 'loop', 'open')
  await reach(page, 'signal', 'open')
  await waitFor(() => app.pushStream.stats().connections === 2, 'two streams')
  const ids = [await idOf(app.pushStream.publish(1, { channel: 'loop' })), await idOf(app.pushStream.publish(2, { channel: 'loop' }))]
  await reach(page, 'loop', 'closed')
  await page.evaluate(() => { (window as unknown as { __abort: (n: string) => void }).__abort('signal') })
  await reach(page, 'signal', 'closed')
  await waitFor(() => app.pushStream.stats().connections === 0, 'both streams gone')
  const log = await logOf(page)
  t.same(log.filter((e) => e.client === 'loop' && e.type === 'item').map((e) => e.id), ids, 'two items, then break')
  t.same(states(log.filter((e) => e.client === 'loop')), ['connecting', 'open', 'closed'])
  t.same(states(log.filter((e) => e.client === 'signal')), ['connecting', 'open', 'closed'])
  t.same(states(log.filter((e) => e.client === 'aborted')), ['closed'])
  t.equal(server.requests.filter((url) => url.includes('channel=aborted')).length, 0, 'no request for an aborted signal')
})

t.test('hidden tabs keep their stream by default; pauseWhenHidden pauses and resumes from the last id', async (t) => {
  const server = await startServer(t)
  const { app } = server
  const page = await openPage(await newContext(t, browser), server.origin)
  await open(page, 'keep', '/events')
  await open(page, 'hide', '/events', { pauseWhenHidden: true })
  await reach(page, 'keep', 'open')
  await reach(page, 'hide', 'open')
  const ids = [await idOf(app.pushStream.publish('one'))]
  await waitForLog(page, 'both have one', (log) => log.filter((e) => e.type === 'message').length === 2, null)
  await page.evaluate(() => { (window as unknown as { __setHidden: (h: boolean) => void }).__setHidden(true) })
  await reach(page, 'hide', 'paused')
  await waitFor(() => app.pushStream.stats().connections === 1, 'the pausing client let its stream go')
  ids.push(await idOf(app.pushStream.publish('two')))
  await waitForLog(page, 'keep gets two while hidden', (log, id) => log.some((e) => e.client === 'keep' && e.id === id), ids[1])
  t.equal(lastState(await logOf(page), 'keep')?.state, 'open')
  await page.evaluate(() => { (window as unknown as { __setHidden: (h: boolean) => void }).__setHidden(false) })
  await waitForLog(page, 'hide gets two once shown', (log, id) => log.some((e) => e.client === 'hide' && e.id === id), ids[1])
  const log = await logOf(page)
  t.same(messageIds(log.filter((e) => e.client === 'keep')), ids)
  t.same(messageIds(log.filter((e) => e.client === 'hide')), ids, 'resumed from the last id: nothing missed')
  t.same(states(log.filter((e) => e.client === 'hide')), ['connecting', 'open', 'paused', 'connecting', 'open'])
  t.same(states(log.filter((e) => e.client === 'keep')), ['connecting', 'open'])
})

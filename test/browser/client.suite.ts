// The browser client in a real Chromium, against the plugin over real sockets.
// Every wait is on something observable (the page's log, the server's counters), bounded.
import t from 'tap'
import type { Page } from 'playwright-core'
import { idOf } from '../helpers/sse.js'
import { waitFor } from '../helpers/wait.js'
import {
  handle,
  invoke,
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

/** The reconnecting entries of one client's log. */
function reconnects (log: LogEntry[]): LogEntry[] {
  return log.filter((entry) => entry.type === 'state' && entry.state === 'reconnecting')
}

t.test('connecting, open; jittered backoff while the server is unreachable; back open with the missed events once, in order', async (t) => {
  const server = await startServer(t, { retry: 3000 })
  const { app } = server
  // Four contexts of five clients: Chromium opens at most six HTTP/1.1 connections per host and context.
  const clients = ['c0', 'c1', 'c2', 'c3', 'c4']
  const pages: Page[] = []
  for (let i = 0; i < 4; i++) pages.push(await openPage(await newContext(t, browser), server.origin))
  for (const page of pages) {
    // `events`: an EventSource reports only the names it is asked for.
    for (const name of clients) await open(page, name, '/events', { events: ['chat'] })
  }
  await Promise.all(pages.map((page) => waitForLog(page, 'five clients open',
    (log, names) => names.every((n) => log.some((e) => e.client === n && e.state === 'open')), clients)))
  await waitFor(() => app.pushStream.stats().connections === 20, 'the server sees 20 streams')

  const published = [await idOf(app.pushStream.publish({ n: 1 })), await idOf(app.pushStream.publish({ n: 2 }, { event: 'chat' }))]
  const haveMessages = (log: LogEntry[], arg: { names: string[], n: number }): boolean =>
    arg.names.every((n) => log.filter((e) => e.client === n && e.type === 'message').length >= arg.n)
  await Promise.all(pages.map((page) => waitForLog(page, 'two events each', haveMessages, { names: clients, n: 2 })))

  server.setDown(true)
  await Promise.all(pages.map((page) => waitForLog(page, 'every client reconnecting',
    (log, names) => names.every((n) => log.some((e) => e.client === n && e.state === 'reconnecting')), clients)))
  const firsts = (await Promise.all(pages.map((page) => logOf(page))))
    .flatMap((log) => clients.map((name) => reconnects(log.filter((e) => e.client === name))[0] as LogEntry))
  const delays = firsts.map((entry) => entry.delay as number)
  t.equal(delays.length, 20)
  t.ok(firsts.every((entry) => entry.attempt === 1), 'the first retry is attempt 1')
  t.ok(delays.every((d) => d >= 0 && d <= 3000), 'each first delay is within [0, server retry]')
  const spread = Math.max(...delays) - Math.min(...delays)
  t.comment(`first retry delays of 20 clients: ${delays.sort((a, b) => a - b).join(', ')} ms (spread ${spread} ms)`)
  t.ok(spread > 500, `the first retries are spread out (${spread} ms > 500 ms)`)

  // Published while every client is away: they come back through replay.
  await waitFor(() => app.pushStream.stats().connections === 0, 'every stream gone')
  published.push(await idOf(app.pushStream.publish({ n: 3 })), await idOf(app.pushStream.publish('four')), await idOf(app.pushStream.publish({ n: 5 })))
  server.setDown(false)
  await Promise.all(pages.map((page) => waitForLog(page, 'every client back open with five events',
    (log, names) => names.every((n) => {
      const mine = log.filter((e) => e.client === n)
      const last = mine.filter((e) => e.type === 'state').pop()
      return last !== undefined && last.state === 'open' && mine.filter((e) => e.type === 'message').length >= 5
    }), clients, 20000)))

  // One summary per client, compared with what every client must show.
  const summaries = (await Promise.all(pages.map((page) => logOf(page)))).flatMap((log) => clients.map((name) => {
    const mine = log.filter((e) => e.client === name)
    const seq = states(mine)
    const tries = reconnects(mine)
    return {
      ids: messageIds(mine),
      messages: mine.filter((e) => e.type === 'message').map((e) => [e.event, e.data]),
      head: seq.slice(0, 4),
      last: seq.at(-1),
      attemptsCountUp: tries.every((e, i) => e.attempt === i + 1),
      delaysWithinCap: tries.every((e) => (e.delay as number) <= Math.min(30000, 3000 * 2 ** ((e.attempt as number) - 1)))
    }
  }))
  const expected = {
    ids: published,
    messages: [['message', { n: 1 }], ['chat', { n: 2 }], ['message', { n: 3 }], ['message', 'four'], ['message', { n: 5 }]],
    head: ['connecting', 'open', 'reconnecting', 'connecting'],
    last: 'open',
    attemptsCountUp: true,
    delaysWithinCap: true
  }
  t.same(summaries, Array(20).fill(expected), 'each of 20 clients: every event once, in order, parsed; states; attempts; caps')
  t.equal((await handle(pages[0] as Page, 'c0')).lastEventId, published.at(-1))
})

t.test('a refusal (204, 404) stops the client with no further request; a close() from onState leaves no timer', async (t) => {
  const server = await startServer(t, {}, (app) => {
    app.addHook('onRequest', async (request, reply) => {
      if ((request.query as Record<string, unknown>).channel === 'gone') {
        reply.code(204).send()
        return reply
      }
    })
    // Drops every request: a network error, to the browser.
    app.get('/down', async (request, reply) => {
      reply.hijack()
      request.raw.socket.destroy()
    })
  })
  const count = (part: string): number => server.requests.filter((url) => url.includes(part)).length
  const page = await openPage(await newContext(t, browser), server.origin)
  const quick = { retry: 50, maxDelay: 100 }
  await open(page, 'gone', '/events', { ...quick, channels: ['gone'] })
  await open(page, 'missing', '/nope', quick)
  await open(page, 'closer', '/down?who=closer', { ...quick, closeOn: 'reconnecting' })
  await waitForLog(page, 'gone and missing stopped, closer closed',
    (log) => ['gone', 'missing'].every((n) => log.some((e) => e.client === n && e.state === 'stopped')) &&
      log.some((e) => e.client === 'closer' && e.state === 'closed'), null)
  const before = { gone: count('channel=gone'), missing: count('/nope'), closer: count('who=closer') }
  // The closer may count two: Chromium itself retries a request once when a reused keep-alive socket closes under it.
  t.same({ gone: before.gone, missing: before.missing }, { gone: 1, missing: 1 }, 'one request each')
  t.ok(before.closer >= 1)

  // A client with a short backoff that keeps failing: its eighth attempt comes well after any 100 ms backoff would have fired.
  await open(page, 'probe', '/down?who=probe', { retry: 20, maxDelay: 200 })
  await waitForLog(page, 'the probe reaches attempt 8', (log) => log.some((e) => e.client === 'probe' && e.attempt === 8), null)
  t.same({ gone: count('channel=gone'), missing: count('/nope'), closer: count('who=closer') }, before, 'no request after stopped or closed')

  const log = await logOf(page)
  const of = (name: string): LogEntry[] => log.filter((e) => e.client === name)
  t.same(states(of('gone')), ['connecting', 'stopped'])
  t.same(states(of('missing')), ['connecting', 'stopped'])
  t.same(states(of('closer')), ['connecting', 'reconnecting', 'closed'])
  t.equal((await handle(page, 'gone')).state, 'stopped')
  t.equal((await handle(page, 'closer')).state, 'closed')

  // Full jitter under a growing cap: attempt n waits at most min(maxDelay, retry * 2^(n-1)).
  const tries = reconnects(of('probe')).slice(0, 8)
  t.same(tries.map((e) => e.attempt), [1, 2, 3, 4, 5, 6, 7, 8])
  for (const e of tries) {
    t.ok((e.delay as number) <= Math.min(200, 20 * 2 ** ((e.attempt as number) - 1)), `attempt ${e.attempt}: ${e.delay} ms within its cap`)
  }
  t.ok(Math.max(...tries.slice(3).map((e) => e.delay as number)) > 20, 'later delays grow past the base')
  t.comment(`probe delays: ${tries.map((e) => e.delay).join(', ')} ms`)
  await invoke(page, 'probe', 'close')
})

t.test('pause() and resume() continue from the last id; a reload with persist resumes; a reset reaches onReset', async (t) => {
  const server = await startServer(t)
  const { app } = server
  const context = await newContext(t, browser)
  const page = await openPage(context, server.origin)
  await open(page, 'a', '/events', { persist: true, typed: ['chat'] })
  await waitForLog(page, 'open', (log) => log.some((e) => e.state === 'open'), null)
  const ids = [await idOf(app.pushStream.publish({ text: 'one' }, { event: 'chat' }))]
  await waitForLog(page, 'first event', (log) => log.some((e) => e.type === 'message'), null)

  // Resumed with nothing missed: the opening event carries no id, and the known one stays.
  await invoke(page, 'a', 'pause')
  await invoke(page, 'a', 'resume')
  await waitForLog(page, 'open again', (log) => log.filter((e) => e.state === 'open').length === 2, null)
  t.equal((await handle(page, 'a')).lastEventId, ids[0])

  await invoke(page, 'a', 'pause')
  t.equal((await handle(page, 'a')).state, 'paused')
  await waitFor(() => app.pushStream.stats().connections === 0, 'the paused client disconnected')
  ids.push(await idOf(app.pushStream.publish({ text: 'two' }, { event: 'chat' })), await idOf(app.pushStream.publish('three')))
  await invoke(page, 'a', 'resume')
  await waitForLog(page, 'three events', (log) => log.filter((e) => e.type === 'message').length >= 3, null)
  ids.push(await idOf(app.pushStream.publish({ text: 'four' }, { event: 'chat' })))
  await waitForLog(page, 'four events', (log) => log.filter((e) => e.type === 'message').length >= 4, null)
  let log = await logOf(page, 'a')
  t.same(messageIds(log), ids, 'each event once, in order, across the pause')
  t.same(states(log), ['connecting', 'open', 'paused', 'connecting', 'open', 'paused', 'connecting', 'open'])
  t.same(log.filter((e) => e.type === 'event').map((e) => e.data), [{ text: 'one' }, { text: 'two' }, { text: 'four' }], 'onEvent gets the parsed data of its event')
  t.equal((await handle(page, 'a')).lastEventId, ids.at(-1))

  // Published while the page reloads: the new page resumes from the id kept in sessionStorage.
  const reloading = page.reload()
  await waitFor(() => app.pushStream.stats().connections === 0, 'the old page gone')
  const during = [await idOf(app.pushStream.publish('five'))]
  await reloading
  await page.waitForFunction(() => (window as unknown as { __ready?: boolean }).__ready === true, undefined, { timeout: 10000 })
  during.push(await idOf(app.pushStream.publish('six')))
  await open(page, 'a', '/events', { persist: true })
  await waitForLog(page, 'two events after the reload', (log) => log.filter((e) => e.type === 'message').length >= 2, null)
  ids.push(await idOf(app.pushStream.publish('seven')))
  await waitForLog(page, 'three events after the reload', (log) => log.filter((e) => e.type === 'message').length >= 3, null)
  log = await logOf(page, 'a')
  t.same(messageIds(log), [...during, ids.at(-1)], 'the events of the reload, once, then live')
  t.equal(server.requests.filter((url) => url.includes('lastEventId=' + encodeURIComponent(ids.at(-2) as string))).length, 1, 'resumed from the stored id')

  // An id the server cannot answer for: a reset, and the client moves to the newest id.
  const newest = ids.at(-1) as string
  await open(page, 'r', '/events', { lastEventId: '1-1' })
  await waitForLog(page, 'a reset', (log) => log.some((e) => e.client === 'r' && e.type === 'reset'), null)
  log = await logOf(page, 'r')
  const reset = log.find((e) => e.type === 'reset') as LogEntry
  t.same(reset.data, { reason: 'unknown-last-event-id' })
  t.equal(reset.id, newest)
  t.same(messageIds(log), [], 'a reset is not a message')
  t.equal((await handle(page, 'r')).lastEventId, newest)
  t.equal(app.pushStream.stats().resets, 1)
  await invoke(page, 'r', 'close')
  await invoke(page, 'r', 'close')
  await invoke(page, 'r', 'pause')
  await invoke(page, 'r', 'resume')
  t.same(states(await logOf(page, 'r')), ['connecting', 'open', 'closed'], 'close() is final and idempotent')
  await invoke(page, 'a', 'close')
  await waitFor(() => app.pushStream.stats().connections === 0, 'both closed')
})

/** What `persisted(key)` of the page's client gives, or null. */
async function persistedIn (page: Page, key: string): Promise<{ url: string, lastEventId: string } | null> {
  return await page.evaluate(async (key) => {
    // A variable, so that TypeScript does not try to resolve the page's URL as a module.
    const client = '/events/client.js'
    return (await import(client)).persisted(key) ?? null
  }, key)
}

t.test('persist with a resumable stream: a reload goes on after the kept id of the kept URL; an end forgets it; an id kept for another URL is not used', async (t) => {
  // Answer 'held' waits after its second token until the test lets it go; the others run through.
  let letGo = (): void => {}
  const held = new Promise<void>((resolve) => { letGo = resolve })
  const server = await startServer(t, {}, (app) => {
    app.get<{ Params: { id: string } }>('/answers/:id', (request, reply) => reply.sse(async function * () {
      yield 'one'
      yield 'two'
      if (request.params.id === 'held') await held
      yield 'three'
    }, { key: `answer-${request.params.id}` }))
  })
  const page = await openPage(await newContext(t, browser), server.origin)
  await open(page, 'a', '/answers/held', { persist: 'answer' })
  await waitForLog(page, 'two tokens', (log) => log.filter((e) => e.type === 'message').length === 2, null)
  t.same(await persistedIn(page, 'answer'), { url: `${server.origin}/answers/held`, lastEventId: '2' }, 'the URL and the last id are kept')

  await page.reload()
  await page.waitForFunction(() => (window as unknown as { __ready?: boolean }).__ready === true, undefined, { timeout: 10000 })
  t.same(await persistedIn(page, 'answer'), { url: `${server.origin}/answers/held`, lastEventId: '2' }, 'kept across the reload')
  await open(page, 'a', '/answers/held', { persist: 'answer', lastEventId: '1' })
  await waitForLog(page, 'open after the reload', (log) => log.some((e) => e.state === 'open'), null)
  letGo()
  await waitForLog(page, 'ended', (log) => log.some((e) => e.state === 'ended'), null)
  let log = await logOf(page, 'a')
  t.same(log.filter((e) => e.type === 'message').map((e) => [e.id, e.data]), [['3', 'three']], 'only what came after the kept id')
  t.same(log.filter((e) => e.type === 'state').map((e) => [e.state, e.reason]), [['connecting', undefined], ['open', undefined], ['ended', 'done']])
  t.equal(server.requests.filter((url) => url.startsWith('/answers/held?') && url.includes('lastEventId=2')).length, 1, 'the kept id wins over lastEventId')
  t.equal(await persistedIn(page, 'answer'), null, 'an ended stream is forgotten')
  t.equal(await page.evaluate(() => sessionStorage.getItem('answer')), null)

  // The same key, another URL: another stream, whose ids say nothing of the kept one's.
  await page.evaluate((origin) => sessionStorage.setItem('answer', JSON.stringify({ url: `${origin}/answers/held`, lastEventId: '2' })), server.origin)
  await open(page, 'b', '/answers/other', { persist: 'answer' })
  await waitForLog(page, 'b ended', (log) => log.some((e) => e.client === 'b' && e.state === 'ended'), null)
  log = await logOf(page, 'b')
  t.same(log.filter((e) => e.type === 'message').map((e) => e.data), ['one', 'two', 'three'], 'from its start')
  t.notOk(server.requests.some((url) => url.startsWith('/answers/other?') && url.includes('lastEventId')), 'no id sent')
  t.equal(await persistedIn(page, 'answer'), null, 'and forgotten at its end')
})

t.test('a push-stream:retry answer is a transient failure: never open, back no sooner than `after`', async (t) => {
  const server = await startServer(t, { maxConnections: 1, retry: 300 })
  const { app } = server
  const page = await openPage(await newContext(t, browser), server.origin)
  await open(page, 'first', '/events')
  await waitForLog(page, 'first open', (log) => log.some((e) => e.client === 'first' && e.state === 'open'), null)
  await open(page, 'second', '/events', { retry: 100 })
  await waitForLog(page, 'second retried twice', (log) => log.filter((e) => e.client === 'second' && e.state === 'reconnecting').length >= 2, null)
  t.equal(app.pushStream.stats().connections, 1)
  await invoke(page, 'first', 'close')
  await waitForLog(page, 'second open', (log) => log.some((e) => e.client === 'second' && e.state === 'open'), null)
  const id = await idOf(app.pushStream.publish('hello'))
  await waitForLog(page, 'second gets the event', (log) => log.some((e) => e.client === 'second' && e.type === 'message'), null)
  const log = await logOf(page, 'second')
  const seq = states(log)
  t.same(seq.slice(0, 3), ['connecting', 'reconnecting', 'connecting'])
  t.equal(seq.indexOf('open'), seq.length - 1, 'open only once a stream was accepted')
  const tries = reconnects(log)
  t.ok(tries.every((e) => (e.delay as number) >= 300 && (e.delay as number) <= 300 + 100 * 2 ** ((e.attempt as number) - 1)), `delays ${tries.map((e) => e.delay).join(', ')} ms: after + jitter`)
  t.same(messageIds(log), [id])
  t.same(states(await logOf(page, 'first')), ['connecting', 'open', 'closed'])
})

t.test('shareAcrossTabs: one connection for five tabs; when the leader goes, another leads within a second; no tab misses or repeats an event', async (t) => {
  const server = await startServer(t)
  const { app } = server
  const context = await newContext(t, browser)
  const pages: Page[] = []
  for (let i = 0; i < 5; i++) {
    const page = await openPage(context, server.origin)
    await open(page, 'tab', '/events', { shareAcrossTabs: true, channels: ['room'] })
    pages.push(page)
  }
  const isOpen = (log: LogEntry[]): boolean => log.filter((e) => e.type === 'state').pop()?.state === 'open'
  await Promise.all(pages.map((page) => waitForLog(page, 'open', isOpen, null)))
  await waitFor(() => app.pushStream.stats().connections === 1, 'one connection for five tabs')
  const roles = await Promise.all(pages.map((page) => handle(page, 'tab')))
  t.equal(roles.filter((r) => r.leader).length, 1, 'one leader')
  const leaderIndex = roles.findIndex((r) => r.leader)
  const leaderPage = pages[leaderIndex] as Page
  for (const [i, page] of pages.entries()) {
    const log = await logOf(page, 'tab')
    const last = log.filter((e) => e.type === 'state').pop() as LogEntry
    t.equal(last.leader, i === leaderIndex, `tab ${i}: its open state says whether it leads`)
  }

  const ids = await Promise.all([1, 2, 3].map((n) => idOf(app.pushStream.publish({ n }, { channel: 'room' }))))
  const haveIds = (log: LogEntry[], want: string[]): boolean => {
    const got = log.filter((e) => e.type === 'message').map((e) => e.id)
    return want.every((id) => got.includes(id))
  }
  await Promise.all(pages.map((page) => waitForLog(page, 'three events', haveIds, ids)))

  const followers = pages.filter((page) => page !== leaderPage)
  const closedAt = Date.now()
  await leaderPage.close()
  // Published while no tab leads: the next leader resumes from its last id and gets them by replay.
  ids.push(...await Promise.all([4, 5].map((n) => idOf(app.pushStream.publish({ n }, { channel: 'room' })))))
  const leads = (log: LogEntry[]): boolean => log.some((e) => e.type === 'state' && e.leader === true)
  const newLeader = await Promise.any(followers.map(async (page) => {
    await waitForLog(page, 'a new leader', leads, null, 5000)
    return page
  }))
  const takeover = (await logOf(newLeader, 'tab')).find((e) => e.type === 'state' && e.leader === true) as LogEntry
  t.ok(takeover.time - closedAt < 1000, `a tab leads ${takeover.time - closedAt} ms after the leader closed`)
  await Promise.all(followers.map((page) => waitForLog(page, 'open again', isOpen, null)))
  await waitFor(() => app.pushStream.stats().connections === 1, 'one connection again')
  ids.push(...await Promise.all([6, 7].map((n) => idOf(app.pushStream.publish({ n }, { channel: 'room' })))))
  await Promise.all(followers.map((page) => waitForLog(page, 'seven events', haveIds, ids)))
  for (const page of followers) {
    t.same(messageIds(await logOf(page, 'tab')), ids, `${page === newLeader ? 'new leader' : 'follower'}: every event once, in order`)
  }

  // A follower's pause only stops its own delivery; the shared connection goes on.
  const quiet = followers.find((page) => page !== newLeader) as Page
  await invoke(quiet, 'tab', 'pause')
  ids.push(await idOf(app.pushStream.publish({ n: 8 }, { channel: 'room' })))
  await Promise.all(followers.filter((page) => page !== quiet).map((page) => waitForLog(page, 'event 8', haveIds, ids)))
  t.equal(app.pushStream.stats().connections, 1)
  t.same(messageIds(await logOf(quiet, 'tab')), ids.slice(0, 7), 'the paused tab got nothing more')
  t.equal((await handle(quiet, 'tab')).state, 'paused')
  // Back from its pause, the follower is caught up by the leader: nothing lost, nothing twice.
  await invoke(quiet, 'tab', 'resume')
  await waitForLog(quiet, 'event 8 after resume', haveIds, ids)
  t.same(messageIds(await logOf(quiet, 'tab')), ids, 'the resumed follower got what was published during its pause, once')
  t.equal(app.pushStream.stats().connections, 1, 'still one connection')
})

t.test('shareAcrossTabs without Web Locks: each tab connects on its own', async (t) => {
  const server = await startServer(t)
  const { app } = server
  const context = await newContext(t, browser)
  await context.addInitScript(() => { delete (Navigator.prototype as { locks?: unknown }).locks })
  const pages = [await openPage(context, server.origin), await openPage(context, server.origin)]
  for (const page of pages) await open(page, 'tab', '/events', { shareAcrossTabs: true })
  await Promise.all(pages.map((page) => waitForLog(page, 'open', (log) => log.some((e) => e.state === 'open'), null)))
  await waitFor(() => app.pushStream.stats().connections === 2, 'one connection per tab')
  const id = await idOf(app.pushStream.publish('hi'))
  await Promise.all(pages.map((page) => waitForLog(page, 'the event', (log) => log.some((e) => e.type === 'message'), null)))
  for (const page of pages) {
    t.same(messageIds(await logOf(page, 'tab')), [id])
    t.equal((await handle(page, 'tab')).leader, true)
    t.same((await logOf(page, 'tab')).filter((e) => e.type === 'state').map((e) => [e.state, e.leader]), [['connecting', true], ['open', true]])
  }
})

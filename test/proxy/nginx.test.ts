// Behind real nginx (Debian's package, started here with its own config on a free port):
// the app process is stopped and a new one starts 2 s later, while nginx answers 502.
// Half the tabs use each transport. Every tab must come back to `open` and get every event once, in order, including the
// one published before any tab was back (replayed from history kept in Redis).
import t from 'tap'
import { browserMissing } from '../browser/helpers.js'
import { prepareAppProcess, startAppProcess } from './helpers.js'
import { freePort, nginxMissing, recommendedLocation, startNginx } from './nginx.js'

const TABS = 12
const DOWNTIME = 2000

const missing = browserMissing() ?? nginxMissing()
if (missing !== undefined) {
  t.plan(0, missing)
} else {
  const { skipUnlessRedis, redisUrl, testKey } = await import('../helpers/redis.js')
  const { launchBrowser, logOf, messageIds, newContext, open, openPage, waitForLog } = await import('../browser/helpers.js')

  t.test(`${TABS} tabs behind nginx; the app restarted with ${DOWNTIME / 1000} s of downtime: every tab back open, nothing lost`, skipUnlessRedis, async (t) => {
    const appPort = await freePort()
    const env = { PORT: String(appPort), RETRY: '1000', REDIS_URL: redisUrl, REDIS_KEY: testKey(t) }
    let app = await startAppProcess(t, env)
    const { port: proxyPort } = await startNginx(t, recommendedLocation(appPort))
    const origin = `http://127.0.0.1:${proxyPort}`
    const browser = await launchBrowser(t)
    // One context per tab: Chromium opens at most six HTTP/1.1 connections per host and context.
    const pages = await Promise.all(Array.from({ length: TABS }, async () => await openPage(await newContext(t, browser), origin)))
    // Half the tabs read with fetch (the default), half with EventSource, which must learn the 502 by a fetch of its own.
    for (const [i, page] of pages.entries()) await open(page, 'tab', '/events', i % 2 === 0 ? {} : { transport: 'eventsource' })
    const isOpen = (log: Array<{ type: string, state?: string }>): boolean => log.filter((e) => e.type === 'state').pop()?.state === 'open'
    await Promise.all(pages.map((page) => waitForLog(page, 'open through nginx', isOpen, null)))
    const ids = [await app.publish('one'), await app.publish('two')]
    const haveIds = (log: Array<{ type: string, id?: string }>, want: string[]): boolean => want.every((id) => log.some((e) => e.type === 'message' && e.id === id))
    await Promise.all(pages.map((page) => waitForLog(page, 'two events', haveIds, ids)))

    // The next process starts now and listens when told: the downtime is the scenario's, not tsx's start-up.
    const next = await prepareAppProcess(t, env)
    await app.close()
    const stoppedAt = Date.now()
    // nginx answers 502 meanwhile: every tab must have met one and be retrying, not stopped.
    await Promise.all(pages.map((page) => waitForLog(page, 'a 502 retried', (log) => log.some((e) => e.state === 'reconnecting' && e.status === 502), null)))
    await new Promise((resolve) => setTimeout(resolve, DOWNTIME - (Date.now() - stoppedAt)))
    app = await next.listen()
    const upAt = Date.now()
    // Published before any tab is back: they get it by replay.
    ids.push(await app.publish('three'))
    const backAt = await Promise.all(pages.map(async (page) => {
      await waitForLog(page, 'back open with the third event', (log, want) => want.every((id) => log.some((e) => e.type === 'message' && e.id === id)) &&
        log.filter((e) => e.type === 'state').pop()?.state === 'open', ids, 30000)
      return Date.now() - upAt
    }))
    ids.push(await app.publish('four'))
    await Promise.all(pages.map((page) => waitForLog(page, 'the fourth event', haveIds, ids)))

    const logs = await Promise.all(pages.map(async (page) => await logOf(page, 'tab')))
    const statuses = logs.flatMap((log) => log.filter((e) => e.state === 'reconnecting').map((e) => e.status ?? 'network'))
    t.comment(`stopped at 0 ms, new process listening at ${upAt - stoppedAt} ms; tabs back open within ${Math.max(...backAt)} ms of it (median ${backAt.sort((a, b) => a - b)[TABS >> 1]} ms)`)
    t.comment(`retries: ${statuses.length}, of which 502: ${statuses.filter((s) => s === 502).length}`)
    t.equal(logs.filter((log) => isOpen(log)).length, TABS, `${TABS} of ${TABS} tabs open`)
    t.same(logs.map((log) => messageIds(log)), Array(TABS).fill(ids), 'each tab: every event once, in order')
    t.same(logs.filter((log) => log.some((e) => e.type === 'reset')), [], 'no tab was told it missed events')
    t.notOk(logs.some((log) => log.some((e) => e.state === 'stopped')), 'no tab stopped')
  })
}

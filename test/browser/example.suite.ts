// The example app and its page in a real Chromium, checked through the page
// itself: the state indicator, the listed messages (data-id), the counters.
// Every wait is on something observable, bounded.
import { readFile } from 'node:fs/promises'
import { extname } from 'node:path'
import Fastify from 'fastify'
import t from 'tap'
import { CHANNELS, publishChat } from '../../example/server.js'
import type { Teardown } from '../helpers/teardown.js'
import { waitFor } from '../helpers/wait.js'
import { launchBrowser } from './helpers.js'
import {
  PHONE,
  counters,
  listedIds,
  snapshot,
  openDemo,
  screenshotIn,
  startExample,
  statesOf,
  waitForId,
  waitState
} from './example-helpers.js'

const INTERVAL = 300
// The base of the page's backoff: short, so a reconnect comes back quickly.
const RETRY = 300

const browser = await launchBrowser(t)

/** The ids the observer saw from `first` to `last`, both included. */
function idsBetween (seen: string[], first: string, last: string): string[] {
  const from = seen.indexOf(first)
  const to = seen.indexOf(last)
  if (from < 0 || to < from) throw new Error(`${first}..${last} not in the observed ids`)
  return seen.slice(from, to + 1)
}

t.test('the page on a live stream: open, generated and posted messages, a server gone and back, pause, channels', async (t) => {
  const errors: string[] = []
  const server = await startExample(t, { interval: INTERVAL, retry: RETRY })
  const { app } = server
  const observer = await server.observe(CHANNELS)
  const observed = (): string[] => observer.events.map((event) => event.id as string)
  // The observer's socket and the page's are read independently: the page may show an id first.
  const observedUpTo = async (id: string): Promise<void> => waitFor(() => observed().includes(id), `the observer sees ${id}`)

  const desktop = await openDemo(t, browser, `${server.origin}/`, { errors })
  const phone = await openDemo(t, browser, `${server.origin}/`, { viewport: PHONE, colorScheme: 'dark', errors })
  await waitState(desktop, 'open')
  const openedAt = Date.now()
  t.same((await statesOf(desktop)).slice(0, 2), ['connecting', 'open'], 'connecting, then open')
  t.equal(await desktop.textContent('#state-text'), 'Connected')
  t.equal(await desktop.getAttribute('#state', 'data-leader'), 'true')
  t.match(await desktop.textContent('#role'), /This tab holds the connection/)

  // The generator publishes every INTERVAL: one comes within an interval; the rest is headroom for a loaded machine.
  await desktop.waitForSelector('#messages li[data-id]', { state: 'attached', timeout: INTERVAL + 1200 })
  t.comment(`first generated message listed ${Date.now() - openedAt} ms after open (interval ${INTERVAL} ms)`)
  const firstId = await desktop.locator('#messages li[data-id]').first().getAttribute('data-id') as string
  // Pinned by id: `.first()` would move on to the next message when it arrives.
  const first = desktop.locator(`#messages li[data-id="${firstId}"]`)
  await observedUpTo(firstId)
  const firstEvent = observer.events.find((event) => event.id === firstId)
  t.ok(firstEvent, 'the listed id is one the server published')
  const firstData = JSON.parse(firstEvent?.data ?? '{}')
  t.equal(await first.getAttribute('data-channel'), firstData.channel, 'listed with its channel')
  t.equal(await first.getAttribute('data-event'), 'message')
  t.equal(await first.locator('.text').textContent(), firstData.text)
  t.equal(await first.locator('time').getAttribute('datetime'), firstData.time)
  t.equal(await first.locator('code').textContent(), firstId, 'its id is shown')

  // A message posted through the form reaches a page in another browser context.
  const other = await openDemo(t, browser, `${server.origin}/`, { errors })
  await waitState(other, 'open')
  await desktop.getByRole('textbox', { name: 'Message' }).fill('Hello from the first window')
  await desktop.getByLabel('Channel', { exact: true }).selectOption('news')
  await desktop.getByRole('button', { name: 'Send' }).click()
  const posted = other.locator('#messages li[data-event="chat"]', { hasText: 'Hello from the first window' })
  await posted.waitFor({ timeout: 5000 })
  t.equal(await posted.getAttribute('data-channel'), 'news')
  const postedId = await posted.getAttribute('data-id') as string
  await observedUpTo(postedId)
  t.equal(observer.events.find((event) => event.id === postedId)?.event, 'chat', 'under the id the server gave it')
  await waitForId(desktop, postedId)
  await desktop.waitForFunction(() => /^Sent as event \S+ on news\.$/.test(document.getElementById('publish-status')?.textContent ?? ''), undefined, { timeout: 5000 })
  t.equal(await desktop.inputValue('#text'), '', 'the field is emptied')

  await waitState(phone, 'open')
  await waitForId(phone, postedId)
  t.same(await phone.evaluate(() => [document.documentElement.scrollWidth, window.innerWidth]), [PHONE.width, PHONE.width], 'no sideways scrolling on a phone')
  await desktop.locator('#text').blur()
  await screenshotIn(desktop, 'open', 'desktop-open')
  await screenshotIn(phone, 'open', 'phone-open')

  // Refused input: the server's sentence is shown by the form.
  await desktop.getByRole('textbox', { name: 'Message' }).fill('   ')
  await desktop.getByRole('button', { name: 'Send' }).click()
  await desktop.waitForSelector('#publish-status[data-kind="error"]', { state: 'attached', timeout: 5000 })
  t.equal(await desktop.textContent('#publish-status'), 'Write a text: 1 to 500 characters, not only spaces.')
  t.equal(await desktop.getAttribute('#text', 'aria-invalid'), 'true')
  t.equal(await desktop.evaluate(() => document.activeElement?.id), 'text', 'focus goes back to the field')
  await desktop.getByRole('textbox', { name: 'Message' }).fill('')
  t.equal(await desktop.getAttribute('#text', 'aria-invalid'), null, 'typing clears the mark')

  // The server becomes unreachable; the same app, so its history survives.
  server.setDown(true)
  await Promise.all([waitState(desktop, 'reconnecting'), waitState(phone, 'reconnecting')])
  // Read in the page in the same moment as the state, which may move on to connecting at any time.
  const indicator = await (await desktop.waitForFunction(() => {
    const state = document.getElementById('state') as HTMLElement
    return state.dataset.state === 'reconnecting' &&
      [document.getElementById('state-text')?.textContent, document.getElementById('countdown')?.textContent]
  }, undefined, { timeout: 10000 })).jsonValue() as [string, string]
  t.match(indicator[0], /^Reconnecting \(attempt \d+\)$/, 'the attempt is shown')
  t.match(indicator[1], /^(next try in \d+\.\d s|trying now)$/, 'with the countdown')
  await screenshotIn(desktop, 'reconnecting', 'desktop-reconnecting')
  await screenshotIn(phone, 'reconnecting', 'phone-reconnecting')
  const lastBefore = (await listedIds(desktop)).at(-1) as string
  const awayFrom = observed().length
  publishChat(app.pushStream, 'Sent while you were away', 'default')
  await waitFor(() => observed().length >= awayFrom + 3, 'more published while the page is away')
  const missed = idsBetween(observed(), lastBefore, observed().at(-1) as string).slice(1)
  server.setDown(false)
  await Promise.all([waitState(desktop, 'open', 15000), waitState(phone, 'open', 15000)])
  const marker = (await publishChat(app.pushStream, 'Back again', 'alerts')).id
  await Promise.all([waitForId(desktop, marker), waitForId(phone, marker), observedUpTo(marker)])

  const seen = await snapshot(desktop)
  let ids = seen.ids
  t.same(ids.slice(0, ids.indexOf(marker) + 1), idsBetween(observed(), ids[0] as string, marker), 'every event across the gap, in order')
  t.equal(new Set(ids).size, ids.length, 'no duplicate')
  t.ok(missed.every((id) => seen.replayed.includes(id)), `the ${missed.length} events published while away are marked replayed`)
  t.notOk(seen.replayed.includes(marker), 'an event published after the reopening is live')
  t.ok(seen.counters.replayed >= missed.length && seen.counters.replayed === seen.replayed.length,
    `replayed counter ${seen.counters.replayed} (${missed.length} missed)`)
  t.equal(seen.counters.received, ids.length, 'received counts every listed message')
  const phoneIds = await listedIds(phone)
  t.same(phoneIds.slice(0, phoneIds.indexOf(marker) + 1), idsBetween(observed(), phoneIds[0] as string, marker), 'the phone page too')

  // Pause by keyboard, let events pass, resume: the page picks them up from its last id.
  await desktop.getByRole('button', { name: 'Pause' }).focus()
  await desktop.keyboard.press('Enter')
  await waitState(desktop, 'paused')
  t.equal(await desktop.textContent('#state-text'), 'Paused by you')
  t.equal(await desktop.textContent('#toggle'), 'Resume')
  const pausedAt = observed().length
  await waitFor(() => observed().length >= pausedAt + 3, 'three published while paused')
  await desktop.keyboard.press('Enter')
  await waitState(desktop, 'open')
  const marker2 = (await publishChat(app.pushStream, 'After the pause', 'news')).id
  await Promise.all([waitForId(desktop, marker2), observedUpTo(marker2)])
  ids = await listedIds(desktop)
  t.same(ids.slice(0, ids.indexOf(marker2) + 1), idsBetween(observed(), ids[0] as string, marker2), 'pause and resume lose nothing')
  t.equal(new Set(ids).size, ids.length, 'no duplicate')
  const [shownId, newest] = await desktop.evaluate(() => [
    document.getElementById('last-id')?.textContent,
    (document.querySelector('#messages li[data-id]') as HTMLElement | null)?.dataset.id
  ])
  t.equal(shownId, newest, 'the last event id is shown')

  // Channels: only news. The page reconnects on news alone and lists only news.
  await desktop.getByRole('checkbox', { name: 'default' }).uncheck()
  await desktop.getByRole('checkbox', { name: 'alerts' }).uncheck()
  await waitState(desktop, 'open')
  await waitFor(() => app.pushStream.stats().connections === 4, 'observer, phone, other page and the desktop page on news')
  const newsFrom = (await publishChat(app.pushStream, 'News first', 'news')).id
  publishChat(app.pushStream, 'Not for this page', 'default')
  publishChat(app.pushStream, 'Nor this', 'alerts')
  const newsTo = (await publishChat(app.pushStream, 'News last', 'news')).id
  await Promise.all([waitForId(desktop, newsTo), observedUpTo(newsTo)])
  ids = await listedIds(desktop)
  const newsIds = observer.events.filter((event) => JSON.parse(event.data).channel === 'news').map((event) => event.id)
  t.same(ids.slice(ids.indexOf(newsFrom), ids.indexOf(newsTo) + 1), idsBetween(newsIds as string[], newsFrom, newsTo), 'the news events, and only them')
  const shown = await desktop.$$eval('#messages li[data-id]:not([hidden])', (items) => items.map((item) => (item as HTMLElement).dataset.channel))
  t.ok(shown.length > 0 && shown.every((channel) => channel === 'news'), `only news is shown (${shown.length} messages)`)
  // Keeping the last id: nothing on news was lost by the switch.
  const listedNews = (await desktop.$$eval('#messages li[data-channel="news"]', (items) => items.map((item) => (item as HTMLElement).dataset.id as string))).reverse()
  t.same(listedNews.slice(0, listedNews.indexOf(newsTo) + 1), idsBetween(newsIds as string[], listedNews[0] as string, newsTo), 'every news event once, across the switch')
  // By keyboard: Space on the focused box.
  await desktop.getByRole('checkbox', { name: 'news' }).focus()
  await desktop.keyboard.press('Space')
  t.equal(await desktop.isChecked('#channels input[value="news"]'), true, 'the last channel cannot be unticked')
  t.equal(await desktop.textContent('#channels-hint'), 'Keep at least one channel.')

  // Clear empties the list; the counters are totals since the page opened.
  const count = await counters(desktop)
  const cleared = await listedIds(desktop)
  await desktop.getByRole('button', { name: 'Clear the list' }).click()
  // Live messages go on arriving: none of those listed before may remain.
  const left = await listedIds(desktop)
  t.ok(cleared.length > 0 && left.every((id) => !cleared.includes(id)), `the list was emptied (${cleared.length} cleared, ${left.length} new since)`)
  t.ok((await counters(desktop)).received >= count.received, 'the counters are kept')
  t.same(errors, [], 'no page error')
})

t.test('a reset when history cannot cover the gap: counted, announced, and the stream goes on', async (t) => {
  const errors: string[] = []
  const server = await startExample(t, { interval: 0, history: 5, retry: RETRY })
  const { app } = server
  const page = await openDemo(t, browser, `${server.origin}/`, { errors })
  await waitState(page, 'open')
  const before = (await publishChat(app.pushStream, 'Before the pause')).id
  await waitForId(page, before)

  await page.getByRole('button', { name: 'Pause' }).click()
  await waitState(page, 'paused')
  await waitFor(() => app.pushStream.stats().connections === 0, 'the paused page disconnected')
  // More than history holds: the page's last id falls out of it.
  for (let i = 1; i <= 8; i++) publishChat(app.pushStream, `While paused ${i}`)
  await page.getByRole('button', { name: 'Resume' }).click()
  await waitState(page, 'open')
  await page.waitForSelector('#notice:not([hidden])', { state: 'attached', timeout: 5000 })
  t.match(await page.textContent('#notice'), /You may have missed messages/)
  t.equal(await page.getAttribute('#notice', 'role'), 'alert')
  t.same(await counters(page), { received: 1, replayed: 0, resets: 1 })
  t.equal(app.pushStream.stats().resets, 1)

  const after = (await publishChat(app.pushStream, 'After the reset')).id
  await waitForId(page, after)
  t.same(await listedIds(page), [before, after], 'nothing replayed, live again')
  t.equal(await page.locator('#messages li.gap').count(), 1, 'the gap is marked in the list')
  t.equal(await page.textContent('#last-id'), after)

  // A refusal (here a 204 in the server's place) stops the client: said, and the button offers to reconnect.
  await page.route(/\/events\?/, (route) => route.fulfill({ status: 204 }))
  server.setDown(true)
  await waitState(page, 'stopped')
  t.equal(await page.textContent('#state-text'), 'Stopped by the server')
  t.equal(await page.textContent('#toggle'), 'Reconnect')
  await page.unroute(/\/events\?/)
  server.setDown(false)
  const missed = (await publishChat(app.pushStream, 'While stopped')).id
  await page.getByRole('button', { name: 'Reconnect' }).click()
  await waitState(page, 'open')
  await waitForId(page, missed)
  t.same(await listedIds(page), [before, after, missed], 'reconnected from the last id')
  t.same(errors, [])
})

/**
 * A server for the page's files only, on its own origin. The page's meta tag
 * names the server it talks to: whatever `point()` was last given.
 */
async function startPageHost (t: Teardown): Promise<{ origin: string, point: (server: string) => void }> {
  const host = Fastify()
  t.teardown(() => host.close())
  const pub = new URL('../../example/public/', import.meta.url)
  const types: Record<string, string> = { '.js': 'text/javascript', '.css': 'text/css' }
  let target = ''
  host.get('/', async (_request, reply) => {
    const html = await readFile(new URL('index.html', pub), 'utf8')
    const meta = '<meta name="push-stream-server" content="">'
    if (!html.includes(meta)) throw new Error('the page has no server meta tag')
    return reply.type('text/html; charset=utf-8').send(html.replace(meta, `<meta name="push-stream-server" content="${target}">`))
  })
  for (const file of ['app.js', 'style.css']) {
    host.get(`/${file}`, async (_request, reply) => reply.type(types[extname(file)] as string).send(await readFile(new URL(file, pub))))
  }
  await host.listen({ port: 0, host: '127.0.0.1' })
  const { port } = host.server.address() as { port: number }
  return { origin: `http://127.0.0.1:${port}`, point: (server) => { target = server } }
}

t.test('from another origin: works with the CORS option; without it the page says the client could not load', async (t) => {
  const errors: string[] = []
  const host = await startPageHost(t)
  const server = await startExample(t, { interval: 0, retry: RETRY, cors: host.origin })
  host.point(server.origin)
  t.not(host.origin, server.origin)

  const page = await openDemo(t, browser, `${host.origin}/`, { errors })
  await waitState(page, 'open')
  t.equal(new URL(page.url()).origin, host.origin)
  const id = (await publishChat(server.app.pushStream, 'Across origins', 'alerts')).id
  await waitForId(page, id)
  await page.getByRole('textbox', { name: 'Message' }).fill('Posted across origins')
  await page.getByLabel('Channel', { exact: true }).selectOption('alerts')
  await page.getByRole('button', { name: 'Send' }).click()
  const posted = page.locator('#messages li[data-event="chat"]', { hasText: 'Posted across origins' })
  await posted.waitFor({ timeout: 5000 })
  t.equal(await posted.getAttribute('data-channel'), 'alerts')
  t.match(await page.textContent('#publish-status'), /^Sent as event \S+ on alerts\.$/, 'the POST answer was readable (CORS on /messages, preflight included)')

  // A server that allows another origin: the browser refuses to load its client into this page.
  const elsewhere = await startExample(t, { interval: 0, cors: 'https://elsewhere.example' })
  host.point(elsewhere.origin)
  const refused = await openDemo(t, browser, `${host.origin}/`)
  await waitState(refused, 'stopped')
  t.equal(await refused.textContent('#state-text'), `Could not load the client from ${elsewhere.origin}/events/client.js`,
    'said on the page, not "Connecting…" forever')
  t.equal(await refused.textContent('#toggle'), 'Reload the page')
  t.same(errors, [])
})

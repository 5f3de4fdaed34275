// The example page's Ask panel with resumable answers, in a real Chromium: a
// reload mid-answer goes on with the same answer, a second tab follows it,
// and Stop in one tab ends it in every tab and releases its source. Every wait
// is on something observable, bounded; none is a sleep.
import type { BrowserContext, Page } from 'playwright-core'
import t from 'tap'
import { cannedAnswer, type AnswerStats } from '../../example/ask.js'
import type { BuildOptions } from '../../example/server.js'
import type { Teardown } from '../helpers/teardown.js'
import { launchBrowser } from './helpers.js'
import { openDemo, startExample, waitState } from './example-helpers.js'

// The pause before each word: an answer of a hundred words takes some seconds, time enough for a reload or a second tab.
const ANSWER_DELAY = 30
// No generated broadcast: the Ask panel alone is under test.
const OPTIONS: BuildOptions = { interval: 0, retry: 300, answerDelay: ANSWER_DELAY }

const browser = await launchBrowser(t)

/**
 * The instances the tabs of a check are served by: the first tab by the
 * first, a second tab by the last. One instance here. The variant with
 * REDIS_URL (answers recorded in Redis, followed from any instance) starts
 * two with `build({ redisUrl, resumable })` and sums their counts: the checks
 * below stay as they are.
 */
interface AskInstances {
  origins: readonly [string, ...string[]]
  /** The answer sources started and released, over every instance. */
  stats: () => Promise<AnswerStats>
}

async function startInstances (t: Teardown, options: BuildOptions = OPTIONS): Promise<AskInstances> {
  const server = await startExample(t, options)
  return {
    origins: [server.origin],
    stats: async () => await (await fetch(`${server.origin}/ask/stats`)).json() as AnswerStats
  }
}

/** One request of a page for an answer: `GET /ask/<key>`, its question and the id it resumed after. */
interface AnswerRequest {
  key: string
  q: string | null
  lastEventId: string | null
}

/** Records every answer request `page` makes, across its reloads. */
function recordAnswerRequests (page: Page): AnswerRequest[] {
  const requests: AnswerRequest[] = []
  page.on('request', (request) => {
    const url = new URL(request.url())
    const key = /^\/ask\/([^/]+)$/.exec(url.pathname)?.[1]
    if (request.method() !== 'GET' || key === undefined || key === 'stats') return
    requests.push({ key, q: url.searchParams.get('q'), lastEventId: url.searchParams.get('lastEventId') })
  })
  return requests
}

/**
 * Records in `window.__ask` every state and word count the Ask panel shows
 * (repeats folded), from the page's first parse: an init script, so it
 * records again after a reload.
 */
function recordAsk (): void {
  const seen: Array<{ state: string, words: number }> = []
  Object.assign(window, { __ask: seen })
  const start = (): void => {
    const panel = document.getElementById('ask') as HTMLElement
    const note = (): void => {
      const view = { state: panel.dataset.state as string, words: Number(panel.dataset.words) }
      const last = seen.at(-1)
      if (last?.state !== view.state || last.words !== view.words) seen.push(view)
    }
    note()
    new MutationObserver(note).observe(panel, { attributes: true, attributeFilter: ['data-state', 'data-words'] })
  }
  if (document.readyState === 'loading') document.addEventListener('DOMContentLoaded', start)
  else start()
}

async function askViews (page: Page): Promise<Array<{ state: string, words: number }>> {
  return await page.evaluate(() => (window as unknown as { __ask: Array<{ state: string, words: number }> }).__ask)
}

/** The demo at `url` in a new context, recording its Ask panel and its page errors. */
async function openAskPage (t: Teardown, url: string, errors: string[]): Promise<Page> {
  const page = await openDemo(t, browser, url, { errors })
  await page.context().addInitScript(recordAsk)
  // The first load ran before the init script was added: record it now.
  await page.evaluate(recordAsk)
  return page
}

/** A second tab of the same browser on `url`, recording its Ask panel, its answer requests (from its first) and its page errors. */
async function openTab (context: BrowserContext, url: string, errors: string[]): Promise<{ page: Page, requests: AnswerRequest[] }> {
  const page = await context.newPage()
  page.on('pageerror', (error) => { errors.push(String(error)) })
  const requests = recordAnswerRequests(page)
  await page.goto(url)
  return { page, requests }
}

async function ask (page: Page, question: string): Promise<string> {
  await page.getByRole('textbox', { name: 'Question' }).fill(question)
  await page.getByRole('button', { name: 'Ask', exact: true }).click()
  await page.waitForURL(/[?&]answer=/, { timeout: 10000 })
  return new URL(page.url()).searchParams.get('answer') as string
}

async function waitAsk (page: Page, state: string, timeout = 15000): Promise<void> {
  await page.waitForSelector(`#ask[data-state="${state}"]`, { state: 'attached', timeout })
}

/** Waits until the panel streams and shows at least `count` words. */
async function waitWords (page: Page, count: number): Promise<void> {
  await page.waitForFunction((count) => {
    const panel = document.getElementById('ask') as HTMLElement
    return panel.dataset.state === 'streaming' && Number(panel.dataset.words) >= count
  }, count, { timeout: 10000 })
}

/** Waits until the page shows `count` released answer sources. */
async function waitReleased (page: Page, count: number): Promise<void> {
  await page.waitForFunction((count) => document.getElementById('ask-released')?.textContent === String(count), count, { timeout: 10000 })
}

/** The words the answer shows, one per rendered word, in order. */
async function shownWords (page: Page): Promise<string[]> {
  return await page.$$eval('#answer span', (spans) => spans.map((span) => (span.textContent ?? '').trim()))
}

async function wordCount (page: Page): Promise<number> {
  return Number(await page.getAttribute('#ask', 'data-words'))
}

t.test('a reload mid-answer goes on with the same answer: the words shown come back, the rest arrive, each once', async (t) => {
  const errors: string[] = []
  const instances = await startInstances(t)
  const page = await openAskPage(t, `${instances.origins[0]}/`, errors)
  const requests = recordAnswerRequests(page)
  await waitState(page, 'open')
  const question = 'Does a reload lose the answer?'
  const expected = cannedAnswer(question)
  const key = await ask(page, question)
  t.match(key, /^[0-9a-f]{24}$/, 'the page made the answer a key of its own')
  t.equal(await page.getAttribute('#ask-follow a', 'href'), `${instances.origins[0]}/?answer=${key}`, 'the follow link names the answer')

  await waitWords(page, 5)
  const before = await wordCount(page)
  await page.reload()
  await waitState(page, 'open')
  t.equal(new URL(page.url()).searchParams.get('answer'), key, 'the reloaded page still names the answer')
  const firstView = (await askViews(page)).find((view) => view.words > 0)
  t.ok(firstView !== undefined && firstView.words >= before, `the ${before} words shown before the reload are back at once (${firstView?.words} shown)`)
  await waitAsk(page, 'done')

  t.same(await shownWords(page), expected, 'every word once, in order')
  t.equal(await page.textContent('#ask-status'), `Done: ${expected.length} words.`)
  t.same(requests.map((request) => request.key), [key, key], 'one request before the reload, one after')
  t.same(requests[0], { key, q: question, lastEventId: null }, 'the first request starts the answer')
  const resumed = Number(requests[1]?.lastEventId)
  t.equal(requests[1]?.q, question, 'the reload asks the URL the client kept')
  t.ok(resumed >= before && resumed < expected.length, `the reload goes on after word ${resumed}, mid-answer: only the rest comes from the server`)
  await waitReleased(page, 1)
  t.same(await instances.stats(), { started: 1, released: 1, lastEnd: 'done' }, 'the answer\'s source started once and ran to its end')

  // Ended: the client forgot the stream. A reload reads the answer the page's URL names again from the
  // recording, from its start, and no source starts.
  t.equal(await page.evaluate((key) => sessionStorage.getItem(`ask-stream:${key}`), key), null, 'the ended stream is no longer kept')
  await page.reload()
  await waitAsk(page, 'done')
  t.same(await shownWords(page), expected, 'the whole answer again, once')
  t.same(requests.at(-1), { key, q: null, lastEventId: '0' }, 'read from the start, never started')
  t.equal(requests.length, 3)
  t.same(await instances.stats(), { started: 1, released: 1, lastEnd: 'done' }, 'no source started again')
  t.same(errors, [], 'no page error')
})

t.test('a second tab opened on the answer follows it to its end', async (t) => {
  const errors: string[] = []
  const instances = await startInstances(t)
  const first = await openAskPage(t, `${instances.origins[0]}/`, errors)
  await waitState(first, 'open')
  const question = 'Can two tabs read one answer?'
  const expected = cannedAnswer(question)
  const key = await ask(first, question)
  await waitWords(first, 3)

  const { page: second, requests } = await openTab(first.context(), `${instances.origins.at(-1)}/?answer=${key}`, errors)
  await Promise.all([waitAsk(first, 'done'), waitAsk(second, 'done')])
  t.same(await shownWords(first), expected, 'the first tab: every word once, in order')
  t.same(await shownWords(second), expected, 'the second tab: the same words, from the first')
  t.same(requests, [{ key, q: null, lastEventId: '0' }], 'the second tab followed from the start, one request')
  t.equal(await second.textContent('#ask-status'), `Done: ${expected.length} words.`)
  await Promise.all([waitReleased(first, 1), waitReleased(second, 1)])
  t.same(await instances.stats(), { started: 1, released: 1, lastEnd: 'done' }, 'one source for both tabs')
  t.same(errors, [], 'no page error')
})

t.test('Stop in one tab cancels the answer in both, and its source is released', async (t) => {
  const errors: string[] = []
  const instances = await startInstances(t)
  const first = await openAskPage(t, `${instances.origins[0]}/`, errors)
  await waitState(first, 'open')
  const question = 'What if the other tab stops?'
  const expected = cannedAnswer(question)
  const key = await ask(first, question)
  const { page: second } = await openTab(first.context(), `${instances.origins.at(-1)}/?answer=${key}`, errors)
  await Promise.all([waitWords(first, 3), waitWords(second, 3)])

  // Stopped from the tab that did not ask.
  await second.getByRole('button', { name: 'Stop', exact: true }).click()
  await Promise.all([waitAsk(first, 'stopped'), waitAsk(second, 'stopped')])
  const shown = await shownWords(first)
  t.ok(shown.length >= 3 && shown.length < expected.length, `stopped mid-answer, after ${shown.length} of ${expected.length} words`)
  t.same(shown, expected.slice(0, shown.length), 'the words so far, in order')
  t.same(await shownWords(second), shown, 'both tabs end with the same words: all that was recorded before the cancel')
  for (const page of [first, second]) {
    t.equal(await page.textContent('#ask-status'), `Stopped after ${shown.length} words.`)
    t.ok(await page.isDisabled('#ask-stop'), 'nothing left to stop')
  }

  // The source's finally ran, and how it ended says why: the cancel, not a client that left.
  await Promise.all([waitReleased(first, 1), waitReleased(second, 1)])
  t.same(await instances.stats(), { started: 1, released: 1, lastEnd: 'FST_PUSH_STREAM_CANCELLED' })
  t.equal(await first.textContent('#ask-last-end'), 'FST_PUSH_STREAM_CANCELLED')
  t.equal(await wordCount(first), shown.length, 'nothing arrived after the end')
  t.same(errors, [], 'no page error')
})

t.test('a tab that leaves cancels nothing: the answer runs on for the others', async (t) => {
  const errors: string[] = []
  const instances = await startInstances(t)
  const first = await openAskPage(t, `${instances.origins[0]}/`, errors)
  await waitState(first, 'open')
  const question = 'Does closing a tab stop the answer?'
  const expected = cannedAnswer(question)
  const key = await ask(first, question)
  const { page: second } = await openTab(first.context(), `${instances.origins.at(-1)}/?answer=${key}`, errors)
  await waitWords(second, 3)

  await first.close()
  await waitAsk(second, 'done')
  t.same(await shownWords(second), expected, 'the other tab gets the whole answer')
  await waitReleased(second, 1)
  t.same(await instances.stats(), { started: 1, released: 1, lastEnd: 'done' }, 'released at its end, not when the tab left')
  t.same(errors, [], 'no page error')
})

import type { Browser, BrowserContext, Page } from 'playwright-core'
import type { Test } from 'tap'
import type { AnswerStats } from '../../example/ask.js'
import type { Teardown } from '../helpers/teardown.js'
import { openDemo } from './example-helpers.js'

/** One look at the Ask panel, as `window.__ask` records it. */
export interface AskView {
  state: string
  words: number
}

/** One request of a page for an answer: `GET <origin>/ask/<key>`, its question and the id it resumed after. */
export interface AnswerRequest {
  origin: string
  key: string
  q: string | null
  lastEventId: string | null
}

/** The counts of answer sources of the demo at `origin` (`GET /ask/stats`, with `query` if given). */
export async function answerStats (origin: string, query = ''): Promise<AnswerStats> {
  return await (await fetch(`${origin}/ask/stats${query}`)).json() as AnswerStats
}

/** Records every answer request `page` makes, across its reloads and navigations. */
export function recordAnswerRequests (page: Page): AnswerRequest[] {
  const requests: AnswerRequest[] = []
  page.on('request', (request) => {
    const url = new URL(request.url())
    const key = /^\/ask\/([^/]+)$/.exec(url.pathname)?.[1]
    if (request.method() !== 'GET' || key === undefined || key === 'stats') return
    requests.push({ origin: url.origin, key, q: url.searchParams.get('q'), lastEventId: url.searchParams.get('lastEventId') })
  })
  return requests
}

/** Records in `window.__ask` every state and word count the Ask panel shows (repeats folded): evaluated in a page, or as an init script (again after each reload). */
export function recordAsk (): void {
  const seen: AskView[] = []
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

/** What `recordAsk` recorded in the page, oldest first. */
export async function askViews (page: Page): Promise<AskView[]> {
  return await page.evaluate(() => (window as unknown as { __ask: AskView[] }).__ask)
}

/** The demo at `url` in a new context, recording its Ask panel (on every page of the context) and its page errors. */
export async function openAskPage (t: Teardown, browser: Browser, url: string, errors: string[]): Promise<Page> {
  const page = await openDemo(t, browser, url, { errors })
  await page.context().addInitScript(recordAsk)
  // The first load ran before the init script was added: record it now.
  await page.evaluate(recordAsk)
  return page
}

/** A second tab of the same browser, on `url` (blank without), recording its answer requests (from its first) and its page errors. */
export async function openTab (context: BrowserContext, errors: string[], url?: string): Promise<{ page: Page, requests: AnswerRequest[] }> {
  const page = await context.newPage()
  page.on('pageerror', (error) => { errors.push(String(error)) })
  const requests = recordAnswerRequests(page)
  if (url !== undefined) await page.goto(url)
  return { page, requests }
}

/** Asks `question` in the Ask panel and returns the answer's key, once the page's URL names it. */
export async function ask (page: Page, question: string): Promise<string> {
  await page.getByRole('textbox', { name: 'Question' }).fill(question)
  await page.getByRole('button', { name: 'Ask', exact: true }).click()
  await page.waitForURL(/[?&]answer=/, { timeout: 10000 })
  return new URL(page.url()).searchParams.get('answer') as string
}

/** Waits until the Ask panel is in `state`. */
export async function waitAsk (page: Page, state: string, timeout = 15000): Promise<void> {
  await page.waitForSelector(`#ask[data-state="${state}"]`, { state: 'attached', timeout })
}

/** Waits until the panel streams and shows at least `count` words. */
export async function waitWords (page: Page, count: number): Promise<void> {
  await page.waitForFunction((count) => {
    const panel = document.getElementById('ask') as HTMLElement
    return panel.dataset.state === 'streaming' && Number(panel.dataset.words) >= count
  }, count, { timeout: 10000 })
}

/** Waits until the page shows `count` released answer sources. */
export async function waitReleased (page: Page, count: number): Promise<void> {
  await page.waitForFunction((count) => document.getElementById('ask-released')?.textContent === String(count), count, { timeout: 10000 })
}

/** The words the answer shows, one per rendered word, in order. */
export async function shownWords (page: Page): Promise<string[]> {
  return await page.$$eval('#answer span', (spans) => spans.map((span) => (span.textContent ?? '').trim()))
}

/** The number of words the Ask panel says it shows (`data-words`). */
export async function wordCount (page: Page): Promise<number> {
  return Number(await page.getAttribute('#ask', 'data-words'))
}

/** Checks that `pages` all ended stopped mid-answer (at `least` words or more) with the same first words of `expected`, nothing left to stop; returns them. */
export async function checkStopped (t: Test, pages: readonly [Page, ...Page[]], expected: readonly string[], least: number): Promise<string[]> {
  const [first, ...others] = pages
  const shown = await shownWords(first)
  t.ok(shown.length >= least && shown.length < expected.length, `stopped mid-answer, after ${shown.length} of ${expected.length} words`)
  t.same(shown, expected.slice(0, shown.length), 'the words so far, in order')
  for (const page of others) t.same(await shownWords(page), shown, 'both tabs end with the same words: all that was recorded before the cancel')
  for (const page of pages) {
    t.equal(await page.textContent('#ask-status'), `Stopped after ${shown.length} words.`)
    t.ok(await page.isDisabled('#ask-stop'), 'nothing left to stop')
  }
  return shown
}

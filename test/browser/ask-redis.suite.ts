// The example page's resumable Ask panel on two demo instances that share
// one Redis, in a real Chromium: an answer started on instance A is followed
// from instance B, by the same tab moved there mid-answer and by another tab;
// Stop pressed on B ends it everywhere and releases its source on A. The
// answer's source runs once, on A: the counts of both instances are summed.
// Every wait is on something observable, bounded; none is a sleep.
//
// Each instance is its own origin (another port), so the tab moved to B has
// none of the sessionStorage its page kept on A (the words shown, and the
// client's persisted URL and last id): B's page follows the answer from its
// start (Last-Event-ID 0, which never starts a source). What the user sees is
// the whole answer, every word once and in order, the rest arriving live from
// B; back on A, the page finds what it kept there and goes on after it.
import type { Page } from 'playwright-core'
import t from 'tap'
import { cannedAnswer, type AnswerStats, type CancelAnswer } from '../../example/ask.js'
import type { BuildOptions } from '../../example/server.js'
import { redisUrl, testKey } from '../helpers/redis.js'
import type { Teardown } from '../helpers/teardown.js'
import { launchBrowser } from './helpers.js'
import { answerStats, ask, askViews, checkStopped, openAskPage, openTab, recordAnswerRequests, shownWords, waitAsk, waitWords, wordCount } from './ask-helpers.js'
import { startExample, waitState } from './example-helpers.js'

// The pause before each word: an answer of some 120 words takes about five seconds, time enough to move to B halfway.
const ANSWER_DELAY = 40
// No generated broadcast: the Ask panel alone is under test.
const OPTIONS: BuildOptions = { interval: 0, retry: 300, answerDelay: ANSWER_DELAY }

const browser = await launchBrowser(t)

/** One demo instance: its origin and its own counts of answer sources. */
interface Instance {
  origin: string
  stats: () => Promise<AnswerStats>
  /** The counts once more than `count` sources were released here (or as they are after the demo's wait of 10 s). */
  releasedAbove: (count: number) => Promise<AnswerStats>
}

/** Two demo instances on their own ports, sharing a Redis stream key of this test's own (deleted in teardown). */
async function startInstances (t: Teardown): Promise<[Instance, Instance]> {
  const redisKey = testKey(t)
  const start = async (): Promise<Instance> => {
    const { origin } = await startExample(t, { ...OPTIONS, redisUrl, redisKey })
    return { origin, stats: async () => await answerStats(origin), releasedAbove: async (count) => await answerStats(origin, `?releasedAbove=${count}`) }
  }
  return [await start(), await start()]
}

/** The answer sources started and released over every instance. */
async function total (instances: readonly Instance[]): Promise<{ started: number, released: number }> {
  const all = await Promise.all(instances.map(async (instance) => await instance.stats()))
  return all.reduce((sum, stats) => ({ started: sum.started + stats.started, released: sum.released + stats.released }), { started: 0, released: 0 })
}

/** Resolves once `page` has the response of `origin` to its request for answer `key`: that instance follows it for the page. */
async function answerResponse (page: Page, origin: string, key: string): Promise<void> {
  await page.waitForResponse((response) => {
    const url = new URL(response.url())
    return url.origin === origin && url.pathname === `/ask/${key}` && response.request().method() === 'GET'
  }, { timeout: 10000 })
}

t.test('a tab moved from A to B halfway through the answer shows it in full, each word once, the rest from B, one source', async (t) => {
  const errors: string[] = []
  const [a, b] = await startInstances(t)
  const page = await openAskPage(t, browser, `${a.origin}/`, errors)
  const requests = recordAnswerRequests(page)
  await waitState(page, 'open')
  const question = 'Does a reload on another instance lose the answer?'
  const expected = cannedAnswer(question)
  const key = await ask(page, question)

  await waitWords(page, Math.ceil(expected.length / 2))
  const before = await wordCount(page)
  const followed = answerResponse(page, b.origin, key)
  await page.goto(`${b.origin}/?answer=${key}`)
  await followed
  t.same(await total([a, b]), { started: 1, released: 0 }, 'B follows while the answer still runs on A')
  await waitAsk(page, 'done')

  t.same(await shownWords(page), expected, 'every word once, in order')
  t.equal(await page.textContent('#ask-status'), `Done: ${expected.length} words.`)
  const views = await askViews(page)
  t.ok(views.some((view) => view.state === 'streaming' && view.words > 0 && view.words < expected.length),
    'B\'s page showed the answer growing: it went on live, not read whole once it had ended')
  t.same(requests, [
    { origin: a.origin, key, q: question, lastEventId: null },
    { origin: b.origin, key, q: null, lastEventId: '0' }
  ], 'asked on A; on B, followed from its start without the question, which could not start it again')
  t.same(await a.releasedAbove(0), { started: 1, released: 1, lastEnd: 'done' }, 'the source ran on A, to its end')
  t.same(await b.stats(), { started: 0, released: 0, lastEnd: null }, 'none started on B')

  // Back on A, where the page kept the words it showed and the client its last id: the rest after that id, from the recording.
  await page.goto(`${a.origin}/?answer=${key}`)
  await waitAsk(page, 'done')
  const firstView = (await askViews(page)).find((view) => view.words > 0)
  t.ok(firstView !== undefined && firstView.words >= before, `the ${before} words A's page showed are back at once (${firstView?.words} shown)`)
  t.same(await shownWords(page), expected, 'the whole answer again, each word once')
  const back = requests.at(-1)
  t.equal(requests.length, 3)
  t.match(back, { origin: a.origin, key, q: question }, 'A\'s page asks the URL its client kept')
  const resumed = Number(back?.lastEventId)
  t.ok(resumed >= before && resumed < expected.length, `after word ${resumed}, the last A's page had: only the rest comes from the server`)
  t.same(await total([a, b]), { started: 1, released: 1 }, 'no source started again, on either instance')
  t.same(errors, [], 'no page error')
})

t.test('a second tab on B follows an answer started on A to its end', async (t) => {
  const errors: string[] = []
  const [a, b] = await startInstances(t)
  const first = await openAskPage(t, browser, `${a.origin}/`, errors)
  await waitState(first, 'open')
  const question = 'Can a tab on another instance read the answer?'
  const expected = cannedAnswer(question)
  const key = await ask(first, question)
  await waitWords(first, 3)

  const { page: second, requests } = await openTab(first.context(), errors)
  const followed = answerResponse(second, b.origin, key)
  await second.goto(`${b.origin}/?answer=${key}`)
  await followed
  t.same(await total([a, b]), { started: 1, released: 0 }, 'B follows while the answer still runs on A')
  await Promise.all([waitAsk(first, 'done'), waitAsk(second, 'done')])

  t.same(await shownWords(first), expected, 'the tab on A: every word once, in order')
  t.same(await shownWords(second), expected, 'the tab on B: the same words, from the first')
  t.same(requests, [{ origin: b.origin, key, q: null, lastEventId: '0' }], 'the tab on B followed from the start, one request')
  t.equal(await second.textContent('#ask-status'), `Done: ${expected.length} words.`)
  t.same(await a.releasedAbove(0), { started: 1, released: 1, lastEnd: 'done' }, 'the source ran on A, to its end')
  t.same(await b.stats(), { started: 0, released: 0, lastEnd: null }, 'none started on B')
  t.same(await total([a, b]), { started: 1, released: 1 }, 'one source for both tabs')
  t.same(errors, [], 'no page error')
})

t.test('Stop in the tab on B cancels the answer running on A: both tabs end stopped, and its source is released on A', async (t) => {
  const errors: string[] = []
  const [a, b] = await startInstances(t)
  const first = await openAskPage(t, browser, `${a.origin}/`, errors)
  await waitState(first, 'open')
  const question = 'What if a tab on the other instance stops?'
  const expected = cannedAnswer(question)
  const key = await ask(first, question)
  const { page: second } = await openTab(first.context(), errors, `${b.origin}/?answer=${key}`)
  await Promise.all([waitWords(first, 3), waitWords(second, 3)])

  const cancelled = second.waitForResponse(`${b.origin}/ask/${key}/cancel`, { timeout: 10000 })
  await second.getByRole('button', { name: 'Stop', exact: true }).click()
  const response = await cancelled
  t.same(await response.json() as CancelAnswer, { cancelled: true }, 'B cancels an answer whose producer runs on A')
  await Promise.all([waitAsk(first, 'stopped'), waitAsk(second, 'stopped')])

  const shown = await checkStopped(t, [first, second], expected, 3)

  // The source's finally ran on A, and how it ended says why: the cancel asked on B.
  t.same(await a.releasedAbove(0), { started: 1, released: 1, lastEnd: 'FST_PUSH_STREAM_CANCELLED' }, 'released on A, by the cancel')
  t.same(await b.stats(), { started: 0, released: 0, lastEnd: null }, 'none started on B')
  t.same(await total([a, b]), { started: 1, released: 1 }, 'one source in all')
  for (const page of [first, second]) t.equal(await wordCount(page), shown.length, 'nothing arrived after the end')
  t.same(errors, [], 'no page error')
})

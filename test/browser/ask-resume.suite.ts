// The example page's Ask panel with resumable answers, in a real Chromium: a
// reload mid-answer goes on with the same answer, a second tab follows it,
// and Stop in one tab ends it in every tab and releases its source. Every wait
// is on something observable, bounded; none is a sleep.
import t from 'tap'
import { cannedAnswer, type AnswerStats } from '../../example/ask.js'
import type { BuildOptions } from '../../example/server.js'
import type { Teardown } from '../helpers/teardown.js'
import { launchBrowser } from './helpers.js'
import { answerStats, ask, askViews, checkStopped, openAskPage, openTab, recordAnswerRequests, shownWords, waitAsk, waitReleased, waitWords, wordCount } from './ask-helpers.js'
import { startExample, waitState } from './example-helpers.js'

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
    stats: async () => await answerStats(server.origin)
  }
}

t.test('a reload mid-answer goes on with the same answer: the words shown come back, the rest arrive, each once', async (t) => {
  const errors: string[] = []
  const instances = await startInstances(t)
  const page = await openAskPage(t, browser, `${instances.origins[0]}/`, errors)
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
  t.same(requests[0], { origin: instances.origins[0], key, q: question, lastEventId: null }, 'the first request starts the answer')
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
  t.same(requests.at(-1), { origin: instances.origins[0], key, q: null, lastEventId: '0' }, 'read from the start, never started')
  t.equal(requests.length, 3)
  t.same(await instances.stats(), { started: 1, released: 1, lastEnd: 'done' }, 'no source started again')
  t.same(errors, [], 'no page error')
})

t.test('a second tab opened on the answer follows it to its end', async (t) => {
  const errors: string[] = []
  const instances = await startInstances(t)
  const first = await openAskPage(t, browser, `${instances.origins[0]}/`, errors)
  await waitState(first, 'open')
  const question = 'Can two tabs read one answer?'
  const expected = cannedAnswer(question)
  const key = await ask(first, question)
  await waitWords(first, 3)

  const { page: second, requests } = await openTab(first.context(), errors, `${instances.origins.at(-1)}/?answer=${key}`)
  await Promise.all([waitAsk(first, 'done'), waitAsk(second, 'done')])
  t.same(await shownWords(first), expected, 'the first tab: every word once, in order')
  t.same(await shownWords(second), expected, 'the second tab: the same words, from the first')
  t.same(requests, [{ origin: instances.origins.at(-1), key, q: null, lastEventId: '0' }], 'the second tab followed from the start, one request')
  t.equal(await second.textContent('#ask-status'), `Done: ${expected.length} words.`)
  await Promise.all([waitReleased(first, 1), waitReleased(second, 1)])
  t.same(await instances.stats(), { started: 1, released: 1, lastEnd: 'done' }, 'one source for both tabs')
  t.same(errors, [], 'no page error')
})

t.test('Stop in one tab cancels the answer in both, and its source is released', async (t) => {
  const errors: string[] = []
  const instances = await startInstances(t)
  const first = await openAskPage(t, browser, `${instances.origins[0]}/`, errors)
  await waitState(first, 'open')
  const question = 'What if the other tab stops?'
  const expected = cannedAnswer(question)
  const key = await ask(first, question)
  const { page: second } = await openTab(first.context(), errors, `${instances.origins.at(-1)}/?answer=${key}`)
  await Promise.all([waitWords(first, 3), waitWords(second, 3)])

  // Stopped from the tab that did not ask.
  await second.getByRole('button', { name: 'Stop', exact: true }).click()
  await Promise.all([waitAsk(first, 'stopped'), waitAsk(second, 'stopped')])
  const shown = await checkStopped(t, [first, second], expected, 3)

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
  const first = await openAskPage(t, browser, `${instances.origins[0]}/`, errors)
  await waitState(first, 'open')
  const question = 'Does closing a tab stop the answer?'
  const expected = cannedAnswer(question)
  const key = await ask(first, question)
  const { page: second } = await openTab(first.context(), errors, `${instances.origins.at(-1)}/?answer=${key}`)
  await waitWords(second, 3)

  await first.close()
  await waitAsk(second, 'done')
  t.same(await shownWords(second), expected, 'the other tab gets the whole answer')
  await waitReleased(second, 1)
  t.same(await instances.stats(), { started: 1, released: 1, lastEnd: 'done' }, 'released at its end, not when the tab left')
  t.same(errors, [], 'no page error')
})

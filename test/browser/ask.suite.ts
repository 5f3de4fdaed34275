// The example page's Ask panel in a real Chromium: an answer streamed word by
// word through reply.sse, which stays finished once done, and Stop, which
// cancels the answer and releases its source on the server. Every wait is on
// something observable, bounded. Reloads and other tabs: ask-resume.suite.ts.
import t from 'tap'
import { cannedAnswer, type AnswerStats } from '../../example/ask.js'
import { launchBrowser } from './helpers.js'
import { answerStats, askViews, recordAnswerRequests, recordAsk, waitAsk, waitReleased, waitWords, wordCount } from './ask-helpers.js'
import { listedIds, openDemo, startExample, waitState } from './example-helpers.js'

const INTERVAL = 300
const RETRY = 300
// The pause before each word: an answer of some ninety words takes a few seconds, time enough to press Stop in the middle.
const ANSWER_DELAY = 30

const browser = await launchBrowser(t)

t.test('Ask: the words arrive one by one, a finished answer stays finished, Stop releases the source', async (t) => {
  const errors: string[] = []
  const server = await startExample(t, { interval: INTERVAL, retry: RETRY, answerDelay: ANSWER_DELAY })
  const stats = async (): Promise<AnswerStats> => await answerStats(server.origin)
  const page = await openDemo(t, browser, `${server.origin}/`, { errors })
  // Every request the page makes for an answer (GET /ask/<key>).
  const requests = recordAnswerRequests(page)
  await waitState(page, 'open')
  await page.evaluate(recordAsk)
  t.equal(await page.getAttribute('#ask', 'data-state'), 'idle')
  t.equal(await page.textContent('#ask-released'), '0')
  t.ok(await page.isDisabled('#ask-stop'), 'nothing to stop yet')
  const question = page.getByRole('textbox', { name: 'Question' })

  // A whole answer.
  const first = 'Why do streams end?'
  const firstWords = cannedAnswer(first)
  await question.fill(first)
  await page.getByRole('button', { name: 'Ask', exact: true }).click()
  await waitAsk(page, 'done')
  const views = await askViews(page)
  const counts = views.filter((view) => view.state === 'streaming' && view.words > 0).map((view) => view.words)
  t.ok(counts.length > 1, `the words came one after another: ${counts.length} renders while streaming`)
  t.ok(counts.every((count, i) => i === 0 || count > (counts[i - 1] as number)), 'each render shows more words')
  t.same(views.at(-1), { state: 'done', words: firstWords.length }, 'then done, with every word')
  t.equal(await page.textContent('#answer'), firstWords.join(' '))
  t.equal(await page.textContent('#ask-status'), `Done: ${firstWords.length} words.`)
  t.ok(await page.isDisabled('#ask-stop'))
  t.notOk(await page.isDisabled('#ask-submit'), 'ready for the next question')
  await waitReleased(page, 1)
  t.same(await stats(), { started: 1, released: 1, lastEnd: 'done' }, 'the source ran to its end and its finally ran')
  t.equal(await page.textContent('#ask-last-end'), 'done')

  // The done answer does not come back: while the page's own stream lists three more generated messages
  // (two INTERVALs at least, twice the longest wait of a reconnection, RETRY), no request for an answer is made.
  const listed = (await listedIds(page)).length
  await page.waitForFunction((listed) => document.querySelectorAll('#messages li[data-id]').length >= listed + 3, listed, { timeout: 10000 })
  t.same(requests.map((request) => request.q), [first], 'one request for the first answer, none after its end')
  t.same(await stats(), { started: 1, released: 1, lastEnd: 'done' }, 'no source started again')
  t.equal(await page.getAttribute('#ask', 'data-state'), 'done')
  t.equal(await page.textContent('#answer'), firstWords.join(' '))

  // Stopped mid-answer: the page asks the server to cancel the answer, whose source is released, and the page's count shows it.
  const second = 'And what if I stop?'
  const secondWords = cannedAnswer(second)
  await question.fill(second)
  await question.press('Enter')
  await waitWords(page, 3)
  await page.getByRole('button', { name: 'Stop', exact: true }).click()
  await waitAsk(page, 'stopped')
  const shown = await wordCount(page)
  t.ok(shown >= 3 && shown < secondWords.length, `stopped mid-answer, after ${shown} of ${secondWords.length} words`)
  t.equal(await page.textContent('#answer'), secondWords.slice(0, shown).join(' '), 'the words so far, in order')
  t.equal(await page.textContent('#ask-status'), `Stopped after ${shown} words.`)
  await waitReleased(page, 2)
  const { started, released, lastEnd } = await stats()
  t.same({ started, released }, { started: 2, released: 2 }, 'the stopped source\'s finally ran')
  // Not because a client left (leaving cancels nothing): because the page asked for it.
  t.equal(lastEnd, 'FST_PUSH_STREAM_CANCELLED', 'its signal aborted with the cancel')
  t.equal(await page.textContent('#ask-started'), '2')
  t.equal(await page.textContent('#ask-last-end'), lastEnd, 'the page shows how it ended')
  t.equal(await wordCount(page), shown, 'nothing arrived after Stop')
  t.ok(await page.isDisabled('#ask-stop'))
  t.same(requests.map((request) => request.q), [first, second], 'one request per question')
  t.same(errors, [], 'no page error')
})

/* global location, history, sessionStorage */
// The demo page: one stream through the package's browser client (shared by
// the tabs of this origin), a state that is always the client's own, the
// messages with their ids, counters, channels, pause and a form to publish;
// and the Ask panel, an answer streamed word by word that survives a reload,
// can be followed from another tab, and that Stop cancels for every tab.
const MAX_MESSAGES = 200
// Posted messages are `chat` events; an EventSource reports only the names it is asked for.
const CHAT_EVENT = 'chat'

const LABELS = {
  connecting: 'Connecting…',
  open: 'Connected',
  reconnecting: 'Reconnecting',
  paused: 'Paused by you',
  stopped: 'Stopped by the server',
  closed: 'Closed'
}

const $ = (id) => document.getElementById(id)
const stateEl = $('state')
const stateText = $('state-text')
const countdownEl = $('countdown')
const roleEl = $('role')
const toggleEl = $('toggle')
const clearEl = $('clear')
const channelsEl = $('channels')
const channelsHint = $('channels-hint')
const lastIdEl = $('last-id')
const receivedEl = $('received')
const replayedEl = $('replayed')
const resetsEl = $('resets')
const noticeEl = $('notice')
const listEl = $('messages')
const formEl = $('publish')
const textEl = $('text')
const postChannelEl = $('post-channel')
const publishStatus = $('publish-status')
const askEl = $('ask')
const askForm = $('ask-form')
const questionEl = $('question')
const askSubmit = $('ask-submit')
const askStop = $('ask-stop')
const askFollow = $('ask-follow')
const askFollowLink = askFollow.querySelector('a')
const answerEl = $('answer')
const askStatus = $('ask-status')
const askStartedEl = $('ask-started')
const askReleasedEl = $('ask-released')
const askLastEndEl = $('ask-last-end')

// The server: this page's origin, unless the page names another one (which must allow it by CORS).
const configured = document.querySelector('meta[name="push-stream-server"]')?.content.trim()
const server = new URL(configured || location.origin, location.href)
const clientUrl = new URL('/events/client.js', server).href

let handle = null
// Bumped for every new connection: callbacks of a replaced one are ignored.
let generation = 0
// The channels the current connection subscribed to.
let channels = []
// The last event id this page knows; a new connection resumes from it.
let knownId
// The id the current connection asked to resume from; undefined for a fresh start.
let resumingFrom
// When (page clock) the current connection opened, and the attempt shown while reconnecting.
let openedAt = 0
let attempt = 0
let countdownTimer
let received = 0
let replayed = 0
let resets = 0

function selectedChannels () {
  return [...channelsEl.querySelectorAll('input:checked')].map((input) => input.value)
}

function sameSet (a, b) {
  return a.length === b.length && a.every((name) => b.includes(name))
}

function showLastId () {
  lastIdEl.textContent = knownId ?? 'none yet'
}

function stopCountdown () {
  clearInterval(countdownTimer)
  countdownTimer = undefined
  countdownEl.textContent = ''
}

function startCountdown (delay) {
  stopCountdown()
  const deadline = Date.now() + delay
  const tick = () => {
    const left = deadline - Date.now()
    countdownEl.textContent = left > 0 ? `next try in ${(left / 1000).toFixed(1)} s` : 'trying now'
    if (left <= 0) stopCountdown()
  }
  tick()
  countdownTimer = setInterval(tick, 100)
}

function describeRole (change) {
  // Present only with shareAcrossTabs, which this page always asks for.
  if (change.leader === undefined) return ''
  switch (change.state) {
    case 'open':
    case 'reconnecting':
      return change.leader
        ? 'This tab holds the connection; other tabs of this page follow it.'
        : 'This tab follows the connection of another tab.'
    case 'connecting':
      return change.leader ? 'This tab opens the connection.' : ''
    case 'paused':
      return 'This tab receives nothing until you resume.'
    default:
      return ''
  }
}

function showState (change) {
  const { state } = change
  knownId = handle?.lastEventId ?? knownId
  if (state === 'connecting') resumingFrom = knownId
  if (state === 'open') {
    openedAt = Date.now()
    attempt = 0
  }
  if (state === 'reconnecting') attempt = change.attempt ?? attempt + 1

  let text = LABELS[state] ?? state
  if (state === 'reconnecting') text = `Reconnecting (attempt ${attempt})`
  if (state === 'connecting' && attempt > 0) text = `Connecting (attempt ${attempt})…`
  stateEl.dataset.state = state
  stateEl.dataset.leader = String(change.leader === true)
  stateText.textContent = text
  if (state === 'reconnecting' && change.delay !== undefined) startCountdown(change.delay)
  else stopCountdown()
  roleEl.textContent = describeRole(change)

  toggleEl.textContent = state === 'paused' ? 'Resume' : state === 'stopped' || state === 'closed' ? 'Reconnect' : 'Pause'
  showLastId()
}

/**
 * Replayed: an event that arrives on a connection that resumed from a known id
 * and was published (the `time` the server put in its data) before that
 * connection opened (this page's clock). Those are the events the server sent
 * again from its history; live ones are published after the opening.
 * It assumes the page's clock and the server's agree (the same machine, or
 * both NTP-synced): an event published within the clock difference of the
 * reopening may be put on the wrong side.
 */
function isReplay (data) {
  if (resumingFrom === undefined) return false
  const published = Date.parse(data?.time)
  return Number.isFinite(published) && published < openedAt
}

function tag (className, text) {
  const span = document.createElement('span')
  span.className = className
  span.textContent = text
  return span
}

function visible (item) {
  const channel = item.dataset.channel
  return channel === '' || selectedChannels().includes(channel)
}

/** Keeps the last MAX_MESSAGES messages; a gap marker left below the oldest one then marks nothing and goes too. */
function trim () {
  const items = listEl.querySelectorAll('li[data-id]')
  if (items.length <= MAX_MESSAGES) return
  for (let i = MAX_MESSAGES; i < items.length; i++) items[i].remove()
  while (listEl.lastElementChild?.dataset.id === undefined && listEl.lastElementChild !== null) listEl.lastElementChild.remove()
}

function render (message, replay) {
  const data = message.data !== null && typeof message.data === 'object' ? message.data : { text: message.raw }
  const item = document.createElement('li')
  item.dataset.id = message.id
  item.dataset.event = message.event
  item.dataset.channel = typeof data.channel === 'string' ? data.channel : ''
  if (replay) item.dataset.replayed = 'true'
  item.hidden = !visible(item)

  const text = document.createElement('p')
  text.className = 'text'
  text.textContent = String(data.text ?? message.raw)

  const meta = document.createElement('p')
  meta.className = 'meta'
  const id = document.createElement('code')
  id.textContent = message.id
  meta.append(id, ' ', tag('tag', message.event))
  if (item.dataset.channel !== '') meta.append(' ', tag('tag channel', item.dataset.channel))
  const date = new Date(data.time)
  if (!Number.isNaN(date.getTime())) {
    const time = document.createElement('time')
    time.dateTime = date.toISOString()
    time.textContent = date.toLocaleTimeString()
    meta.append(' ', time)
  }
  if (replay) meta.append(' ', tag('tag replayed', 'replayed'))

  item.append(text, meta)
  listEl.prepend(item)
  trim()
}

function onMessage (message) {
  const replay = isReplay(message.data)
  knownId = message.id
  received++
  if (replay) replayed++
  receivedEl.textContent = String(received)
  replayedEl.textContent = String(replayed)
  showLastId()
  render(message, replay)
}

function onReset (message) {
  knownId = message.id
  resets++
  resetsEl.textContent = String(resets)
  showLastId()
  const now = new Date().toLocaleTimeString()
  noticeEl.textContent = `You may have missed messages (${now}): the server no longer held every event after this page's last one, so it carried on from now.`
  noticeEl.hidden = false
  // Where the gap is, in the list itself.
  const item = document.createElement('li')
  item.className = 'gap'
  item.textContent = 'Messages may be missing here'
  listEl.prepend(item)
}

/** Opens a connection on the picked channels, resuming from the last known id; the previous one is closed. */
function start (connect) {
  const mine = ++generation
  const from = handle?.lastEventId ?? knownId
  // Closed after the generation moved on: its `closed` state is not shown.
  handle?.close()
  handle = null
  knownId = from
  channels = selectedChannels()
  handle = connect(new URL('/events', server).href, {
    channels,
    lastEventId: from,
    shareAcrossTabs: true,
    events: [CHAT_EVENT],
    onState: (change) => { if (mine === generation) showState(change) },
    onMessage: (message) => { if (mine === generation) onMessage(message) },
    onReset: (message) => { if (mine === generation) onReset(message) }
  })
}

function wireStream (connect) {
  toggleEl.addEventListener('click', () => {
    const state = handle?.state
    if (state === 'paused') {
      channelsHint.textContent = ''
      if (sameSet(channels, selectedChannels())) handle.resume()
      else start(connect)
    } else if (state === 'stopped' || state === 'closed') {
      start(connect)
    } else {
      handle?.pause()
    }
  })

  channelsEl.addEventListener('change', (event) => {
    const picked = selectedChannels()
    if (picked.length === 0) {
      event.target.checked = true
      channelsHint.textContent = 'Keep at least one channel.'
      return
    }
    for (const item of listEl.querySelectorAll('li[data-id]')) item.hidden = !visible(item)
    if (handle?.state === 'paused') {
      channelsHint.textContent = 'The new channels apply when you resume.'
      return
    }
    channelsHint.textContent = ''
    if (!sameSet(picked, channels)) start(connect)
  })

  start(connect)
}

clearEl.addEventListener('click', () => {
  listEl.replaceChildren()
  noticeEl.hidden = true
})

textEl.addEventListener('input', () => textEl.removeAttribute('aria-invalid'))

formEl.addEventListener('submit', async (event) => {
  event.preventDefault()
  const submit = formEl.querySelector('button[type="submit"]')
  const channel = postChannelEl.value
  submit.disabled = true
  publishStatus.dataset.kind = ''
  publishStatus.textContent = 'Sending…'
  try {
    const response = await fetch(new URL('/messages', server), {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ text: textEl.value, channel })
    })
    const body = await response.json().catch(() => ({}))
    if (response.ok) {
      const unseen = selectedChannels().includes(channel) ? '' : ` (not shown here: this page is not on ${channel})`
      publishStatus.textContent = `Sent as event ${body.id} on ${body.channel}${unseen}.`
      publishStatus.dataset.kind = 'ok'
      textEl.value = ''
    } else {
      publishStatus.textContent = typeof body.message === 'string' ? body.message : `The server answered ${response.status}.`
      publishStatus.dataset.kind = 'error'
      textEl.setAttribute('aria-invalid', 'true')
    }
  } catch {
    publishStatus.textContent = 'Could not reach the server.'
    publishStatus.dataset.kind = 'error'
  } finally {
    submit.disabled = false
    textEl.focus()
  }
})

// The Ask panel. Each answer has a key, made here, under which the server
// keeps it (a resumable stream): the page's URL carries it (?answer=<key>), so
// a reload or another tab opened on that URL follows the same answer. The
// stream is this tab's own (not shared); the client keeps its URL and last id
// under `persist`, and this page the words it has shown, both written in the
// same callback, so that after a reload they agree.
const ANSWER_PARAM = 'answer'
const ANSWER_KEY = /^[A-Za-z0-9_-]{8,64}$/
let askHandle = null
// Bumped for every answer followed: callbacks of an earlier answer's client are ignored.
let askGeneration = 0
// The key of the answer shown, and its words so far.
let answerKey = null
let words = []
// The highest release count shown: counts only grow, so an answer that comes late changes nothing.
let releasedShown = 0

/** The client's `persist` key for an answer, and this page's key for its words. */
const streamSlot = (key) => `ask-stream:${key}`
const wordsSlot = (key) => `ask-words:${key}`

/** A key no other answer has: 96 random bits in hex (crypto.randomUUID needs a secure context). */
function newAnswerKey () {
  return Array.from(crypto.getRandomValues(new Uint8Array(12)), (byte) => byte.toString(16).padStart(2, '0')).join('')
}

function answerUrl (key) {
  return new URL(`/ask/${key}`, server)
}

function keptWords (key) {
  try {
    const kept = JSON.parse(sessionStorage.getItem(wordsSlot(key)))
    return Array.isArray(kept) ? kept.filter((word) => typeof word === 'string') : []
  } catch {
    return []
  }
}

function keepWords () {
  try {
    sessionStorage.setItem(wordsSlot(answerKey), JSON.stringify(words))
  } catch {}
}

function forgetWords () {
  try {
    sessionStorage.removeItem(wordsSlot(answerKey))
  } catch {}
}

function showAsk (state, text) {
  askEl.dataset.state = state
  askStatus.textContent = text
  const streaming = state === 'streaming'
  askSubmit.disabled = streaming
  askStop.disabled = !streaming
  answerEl.setAttribute('aria-busy', String(streaming))
}

function appendWord (text) {
  // Kept scrolled to the newest word, unless the reader scrolled up.
  const atEnd = answerEl.scrollHeight - answerEl.scrollTop - answerEl.clientHeight < 2
  const word = document.createElement('span')
  word.textContent = (words.length > 0 ? ' ' : '') + text
  answerEl.append(word)
  if (atEnd) answerEl.scrollTop = answerEl.scrollHeight
  words.push(text)
  askEl.dataset.words = String(words.length)
}

function addWord (message) {
  const text = message.data?.text
  if (typeof text !== 'string') return
  appendWord(text)
  keepWords()
}

/**
 * Shows the server's counts of answer sources. `afterRelease`: asked when an
 * answer ended, the server answers once a source more than shown has been
 * released (its `finally` ran), so the count goes up without polling.
 */
async function showAskStats (afterRelease) {
  const url = new URL('/ask/stats', server)
  if (afterRelease) url.searchParams.set('releasedAbove', String(releasedShown))
  try {
    const response = await fetch(url, { cache: 'no-store' })
    if (!response.ok) return
    const stats = await response.json()
    if (stats.released < releasedShown) return
    releasedShown = stats.released
    askStartedEl.textContent = String(stats.started)
    askReleasedEl.textContent = String(stats.released)
    askLastEndEl.textContent = stats.lastEnd ?? 'none yet'
  } catch {}
}

function onAskState (change) {
  const count = words.length
  switch (change.state) {
    case 'connecting':
    case 'open':
      showAsk('streaming', 'Answering…')
      break
    case 'reconnecting':
      showAsk('streaming', `Connection lost: going on after word ${count}…`)
      break
    case 'ended':
      // The server's last event: the client makes no further request, and forgets the stream.
      forgetWords()
      if (change.reason === 'unknown-stream') {
        showAsk('expired', 'This answer is no longer kept on the server: ask again.')
        break
      }
      if (change.reason === 'cancelled') showAsk('stopped', `Stopped after ${count} words.`)
      else showAsk('done', `Done: ${count} words.`)
      showAskStats(true)
      break
    case 'failed':
      forgetWords()
      showAsk('failed', `The answer failed on the server (${change.code ?? 'no code'}).`)
      showAskStats(true)
      break
    case 'stopped':
      showAsk('failed', `The server refused the question (${change.status}).`)
      break
  }
}

/** Shows answer `key` (its words so far: `shown`) and follows its stream at `url`; the page's URL and the follow link name it. */
function followAnswer (connect, key, shown, url, options = {}) {
  const mine = ++askGeneration
  askHandle?.close()
  answerKey = key
  words = []
  answerEl.replaceChildren()
  for (const text of shown) appendWord(text)
  askEl.dataset.words = String(words.length)
  const page = new URL(location.href)
  page.searchParams.set(ANSWER_PARAM, key)
  history.replaceState(null, '', page)
  askFollowLink.href = page.href
  askFollow.hidden = false
  askHandle = connect(url, {
    ...options,
    persist: streamSlot(key),
    onState: (change) => { if (mine === askGeneration) onAskState(change) },
    onMessage: (message) => { if (mine === askGeneration) addWord(message) }
  })
}

/**
 * The answer the page's URL names, if any: after a reload, the words this tab
 * kept and the rest after the client's kept id; in a tab that never followed
 * it (or after it ended), every word from the start. A Last-Event-ID of 0
 * never starts an answer: one no longer kept ends as `unknown-stream`.
 */
function followNamedAnswer (client) {
  const key = new URL(location.href).searchParams.get(ANSWER_PARAM)
  if (key === null || !ANSWER_KEY.test(key)) return
  const kept = client.persisted(streamSlot(key))
  if (kept !== undefined) followAnswer(client.connect, key, keptWords(key), kept.url)
  else followAnswer(client.connect, key, [], answerUrl(key).href, { lastEventId: '0' })
}

function wireAsk (client) {
  askForm.addEventListener('submit', (event) => {
    event.preventDefault()
    if (askEl.dataset.state === 'streaming') return
    const key = newAnswerKey()
    const url = answerUrl(key)
    url.searchParams.set('q', questionEl.value)
    followAnswer(client.connect, key, [], url.href)
  })
  // Stop cancels the answer on the server: every tab that follows it ends with `cancelled`, this one too.
  askStop.addEventListener('click', async () => {
    askStop.disabled = true
    askStatus.textContent = 'Stopping…'
    try {
      const response = await fetch(new URL(`/ask/${answerKey}/cancel`, server), { method: 'POST' })
      if (!response.ok) throw new Error(`status ${response.status}`)
    } catch {
      askStatus.textContent = 'Could not reach the server to stop the answer.'
      askStop.disabled = askEl.dataset.state !== 'streaming'
    }
    questionEl.focus()
  })
  showAskStats(false)
  followNamedAnswer(client)
}

// Imported here rather than by a static `import`, so that the server may be
// another origin and a client that cannot load is reported on the page.
let client
try {
  client = await import(clientUrl)
} catch (error) {
  // Without the client there is no stream: say so rather than "Connecting…" forever.
  stateEl.dataset.state = 'stopped'
  stateText.textContent = `Could not load the client from ${clientUrl}`
  toggleEl.textContent = 'Reload the page'
  toggleEl.addEventListener('click', () => location.reload())
  askSubmit.disabled = true
  askStatus.textContent = 'Asking needs the client, which could not load.'
  console.error(error)
}
if (client !== undefined) {
  wireStream(client.connect)
  wireAsk(client)
}

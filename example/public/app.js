/* global EventSource */
const MAX_MESSAGES = 200

const STATE_TEXT = {
  connecting: 'Connecting…',
  open: 'Connected',
  reconnecting: 'Reconnecting…',
  closed: 'Disconnected'
}

const stateEl = document.getElementById('state')
const lastIdEl = document.getElementById('last-id')
const resetsEl = document.getElementById('resets')
const toggleEl = document.getElementById('toggle')
const listEl = document.getElementById('messages')

let source = null
let lastEventId = ''
let resets = 0

function setState (state, text = STATE_TEXT[state]) {
  stateEl.dataset.state = state
  stateEl.textContent = text
}

function rememberId (id) {
  if (id === '') return
  lastEventId = id
  lastIdEl.textContent = id
}

function setPaused (paused) {
  toggleEl.textContent = paused ? 'Resume' : 'Pause'
  toggleEl.setAttribute('aria-pressed', String(paused))
}

function parse (text) {
  try {
    const value = JSON.parse(text)
    if (value !== null && typeof value === 'object') return value
  } catch {}
  // Not the demo's JSON: show the raw text.
  return { text }
}

function render (event) {
  const message = parse(event.data)
  const item = document.createElement('li')
  item.dataset.id = event.lastEventId

  const text = document.createElement('p')
  text.className = 'text'
  text.textContent = String(message.text ?? event.data)

  const meta = document.createElement('p')
  meta.className = 'meta'
  const id = document.createElement('code')
  id.textContent = event.lastEventId
  meta.append('event ', id)
  const date = message.time === undefined ? null : new Date(message.time)
  if (date !== null && !Number.isNaN(date.getTime())) {
    const time = document.createElement('time')
    time.dateTime = date.toISOString()
    time.textContent = date.toLocaleTimeString()
    meta.append(' at ', time)
  }

  item.append(text, meta)
  listEl.prepend(item)
  while (listEl.children.length > MAX_MESSAGES) listEl.lastElementChild.remove()
}

function connect () {
  // The query carries the id across a pause; the browser's own reconnects send Last-Event-ID instead.
  const url = lastEventId === '' ? '/events' : `/events?lastEventId=${encodeURIComponent(lastEventId)}`
  const es = new EventSource(url)
  source = es
  setState('connecting')
  setPaused(false)

  es.addEventListener('open', () => setState('open'))
  es.addEventListener('error', () => {
    if (es.readyState === EventSource.CONNECTING) {
      setState('reconnecting')
    } else if (es.readyState === EventSource.CLOSED) {
      // The browser gave up (an error status, for one): the button tries again.
      source = null
      setState('closed')
      setPaused(true)
    }
  })
  es.addEventListener('message', (event) => {
    rememberId(event.lastEventId)
    render(event)
  })
  es.addEventListener('reset', (event) => {
    resets++
    resetsEl.textContent = String(resets)
    rememberId(event.lastEventId)
  })
}

toggleEl.addEventListener('click', () => {
  if (source === null) {
    connect()
    return
  }
  source.close()
  source = null
  setState('closed', 'Paused')
  setPaused(true)
})

connect()

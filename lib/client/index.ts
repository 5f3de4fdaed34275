/**
 * The browser client of fastify-push-stream: an `EventSource` with the
 * reconnection policy in the page's hands (full-jitter backoff, capped at
 * `maxDelay`, 30 s by default), resume from the last id, optional
 * persistence across reloads and one shared connection for all tabs.
 * Served as one script: it imports nothing.
 *
 * @example
 * import { connect } from '/events/client.js'
 * const stream = connect('/events', { onMessage: (m) => console.log(m.data) })
 */

/**
 * Where a client stands. `open`: the server's opening event has arrived (so an
 * answer that only says "retry later" never counts as open). `stopped`: the
 * server refused (any answer but 200 `text/event-stream`, such as 204); no request follows.
 */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'paused' | 'stopped' | 'closed'

/** A change of state, as given to `onState`. */
export interface StateChange {
  state: ConnectionState
  /** With `reconnecting`: the attempt, counted from 1 since the last stable connection. */
  attempt?: number
  /** With `reconnecting`: milliseconds until the next try. */
  delay?: number
  /** With `shareAcrossTabs`: true when this tab holds the connection, false when it follows another tab's. */
  leader?: boolean
}

/** One event as delivered to the application. */
export interface StreamMessage<T = unknown> {
  /** The event's id (the stream's last event id when it came). */
  id: string
  /** The event name; `'message'` for an unnamed event. */
  event: string
  /** The data, parsed when it is valid JSON, else the text itself. */
  data: T
  /** The data text as received. */
  raw: string
}

/** The options of `connect`. `Events` maps event names to their data types. */
export interface ConnectOptions<Events extends object = Record<string, unknown>> {
  /** Channels to subscribe to (`?channel=`); none means the server's default channel. */
  channels?: string[]
  /** The id to start after; the stream starts from now when absent. */
  lastEventId?: string
  /** Every event received, whatever its name, except `reset` and the `push-stream:*` control events. */
  onMessage?: (message: StreamMessage) => void
  /** A handler per event name (`'message'` for unnamed events); the names given are listened for. */
  onEvent?: { [K in keyof Events & string]?: (data: Events[K], message: StreamMessage<Events[K]>) => void }
  /** Every change of state; called with `connecting` before `connect` returns. */
  onState?: (change: StateChange) => void
  /** The server could not replay from the last id: events may have been missed. */
  onReset?: (message: StreamMessage) => void
  /** More event names to listen for (an `EventSource` only reports the names it is asked for). */
  events?: string[]
  /** Base delay (ms) of the backoff until the server has sent its own. Default 3000. */
  retry?: number
  /** Cap (ms) of any reconnection delay. Default 30000. */
  maxDelay?: number
  /** Milliseconds a connection must stay open before the attempt counter starts again from 1. Default 5000. */
  stableAfter?: number
  /** Keep the last id in `sessionStorage` (under this key, or `'push-stream:' + url`) and resume from it after a reload. */
  persist?: boolean | string
  /** One connection for all tabs of this origin with the same URL and channels; the others follow it. */
  shareAcrossTabs?: boolean
  /** Passed to `EventSource` (send cookies cross-origin). */
  withCredentials?: boolean
  /** The `EventSource` to use. Default `globalThis.EventSource`. */
  EventSource?: typeof EventSource
}

/** A running client. */
export interface StreamHandle {
  /** The current state. */
  readonly state: ConnectionState
  /** The id the client resumes from; undefined until it knows one. */
  readonly lastEventId: string | undefined
  /** True when this tab's own connection serves it (always without `shareAcrossTabs`). */
  readonly leader: boolean
  /** Stops for good: no connection, no timer, no callback. Idempotent. */
  close(): void
  /** Stops delivering until `resume()`; this tab's connection closes (a leader hands it to another tab). */
  pause(): void
  /** After `pause()` (or `stopped`, in a tab with its own connection): connects again from the last id. */
  resume(): void
}

// Between tabs: a message or reset (m, r), a state (s), "who leads?" (q),
// a request to catch up after an id (c) and its answer for one tab (b; null: cannot).
type Relay =
  | { t: 'm' | 'r', m: StreamMessage }
  | { t: 's', c: StateChange, i: string | undefined }
  | { t: 'q' }
  | { t: 'c', i: string, k: string }
  | { t: 'b', k: string, m: StreamMessage[] | null }

type Handler = (data: unknown, message: StreamMessage) => void

const PREFIX = 'push-stream:'
const OPEN_EVENT = PREFIX + 'open'
const RETRY_EVENT = PREFIX + 'retry'
const RESET_EVENT = 'reset'
// Ids remembered to drop a repeat, which a change of leader can cause.
const SEEN_MAX = 500

function parse (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

function number (value: unknown, key: string): number | undefined {
  const n = (value as Record<string, unknown> | null)?.[key]
  return typeof n === 'number' && n >= 0 ? n : undefined
}

/** A callback's throw is reported but never stops the client. */
function call<A extends unknown[]> (fn: ((...args: A) => void) | undefined, ...args: A): void {
  try {
    fn?.(...args)
  } catch (error) {
    queueMicrotask(() => { throw error })
  }
}

/**
 * Opens a stream and keeps it open: reconnects after a network error or the
 * end of the stream with full-jitter backoff (a random delay up to
 * `min(maxDelay, base * 2 ** (attempt - 1))`, `base` being the server's `retry`),
 * resuming from the last id. A refusal (any status but 200, such as 204)
 * stops it for good.
 */
export function connect<Events extends object = Record<string, unknown>> (url: string, options: ConnectOptions<Events> = {}): StreamHandle {
  const ES = options.EventSource ?? globalThis.EventSource
  const channels = options.channels ?? []
  const maxDelay = options.maxDelay ?? 30000
  const handlers = (options.onEvent ?? {}) as Record<string, Handler | undefined>
  const names = new Set(['message', ...Object.keys(handlers), ...(options.events ?? [])])
  const target = new URL(url, globalThis.location?.href)
  const lockName = PREFIX + target.href + '#' + [...channels].sort().join()
  for (const channel of channels) target.searchParams.append('channel', channel)
  target.searchParams.set('handshake', '1')

  const key = typeof options.persist === 'string' ? options.persist : PREFIX + url
  let storage: Storage | undefined
  try {
    if (options.persist) storage = sessionStorage
  } catch {}
  let lastEventId = storage?.getItem(key) ?? options.lastEventId
  const shared = options.shareAcrossTabs === true && globalThis.navigator?.locks !== undefined && typeof BroadcastChannel === 'function'

  let state: ConnectionState = 'connecting'
  let current: StateChange = { state }
  let lastKey = ''
  let leader = !shared
  let source: EventSource | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  let stableTimer: ReturnType<typeof setTimeout> | undefined
  let attempt = 0
  let base = options.retry ?? 3000
  const seen = new Set<string>()
  // The last messages delivered, so a leader can catch up a tab that paused or reloaded.
  const recent: StreamMessage[] = []
  const tabKey = Math.random().toString(36).slice(2)
  // Shared mode: the tab's channel, the hold on the lock, and the way to withdraw a pending request.
  let bus: BroadcastChannel | undefined
  let release: (() => void) | undefined
  let abort: AbortController | undefined

  function relay (message: Relay): void {
    if (leader) bus?.postMessage(message)
  }

  function setState (next: ConnectionState, tries?: number, delay?: number): void {
    const change: StateChange = { state: next }
    if (tries !== undefined) change.attempt = tries
    if (delay !== undefined) change.delay = delay
    if (options.shareAcrossTabs) change.leader = leader
    // A follower hears the leader's state again when another tab joins: report changes only.
    const changeKey = [next, tries, change.leader].join()
    if (changeKey === lastKey) return
    lastKey = changeKey
    state = next
    current = change
    relay({ t: 's', c: change, i: lastEventId })
    call(options.onState, change)
  }

  function track (id: string | undefined): void {
    // An empty id (a block without `id:`) says nothing about the position: the known id stays.
    if (id === undefined || id === '') return
    lastEventId = id
    try {
      storage?.setItem(key, id)
    } catch {}
  }

  function deliver (kind: 'm' | 'r', message: StreamMessage): void {
    if (kind === 'm' && message.id !== '') {
      if (seen.has(message.id)) return
      seen.add(message.id)
      if (seen.size > SEEN_MAX) seen.delete(seen.values().next().value as string)
      recent.push(message)
      if (recent.length > SEEN_MAX) recent.shift()
    }
    track(message.id)
    relay({ t: kind, m: message })
    if (kind === 'r') {
      call(options.onReset, message)
    } else {
      call(options.onMessage, message)
      call(handlers[message.event], message.data, message)
    }
  }

  function opened (): void {
    if (state === 'open') return
    stableTimer = setTimeout(() => { attempt = 0 }, options.stableAfter ?? 5000)
    setState('open')
  }

  function drop (): void {
    source?.close()
    source = undefined
    clearTimeout(timer)
    clearTimeout(stableTimer)
  }

  function retryLater (after: number): void {
    drop()
    attempt++
    // A base of at least 1 ms: with a server retry of 0 the cap still grows, so a dead server is not hammered.
    const delay = Math.round(after + Math.random() * Math.min(maxDelay, Math.max(base, 1) * 2 ** (attempt - 1)))
    // Set before onState runs, so a callback that calls close() or pause() can clear it.
    timer = setTimeout(start, delay)
    setState('reconnecting', attempt, delay)
  }

  function start (): void {
    drop()
    const href = new URL(target)
    if (lastEventId !== undefined) href.searchParams.set('lastEventId', lastEventId)
    const es = new ES(href.href, { withCredentials: options.withCredentials === true })
    source = es
    const on = (name: string, fn: (event: MessageEvent<string>) => void): void => {
      // Events of a replaced EventSource may still be queued: only the current one counts.
      es.addEventListener(name, (event) => { if (source === es) fn(event as MessageEvent<string>) })
    }
    const message = (event: MessageEvent<string>): StreamMessage =>
      ({ id: event.lastEventId, event: event.type, data: parse(event.data), raw: event.data })
    on(OPEN_EVENT, (event) => {
      track(event.lastEventId)
      base = number(parse(event.data), 'retry') ?? base
      opened()
    })
    on(RETRY_EVENT, (event) => retryLater(number(parse(event.data), 'after') ?? 0))
    on(RESET_EVENT, (event) => {
      opened()
      deliver('r', message(event))
    })
    for (const name of names) {
      if (!name.startsWith(PREFIX) && name !== RESET_EVENT) {
        on(name, (event) => {
          opened()
          deliver('m', message(event))
        })
      }
    }
    on('error', () => {
      // CLOSED: the server answered with another status or type; the browser would not retry either.
      if (es.readyState === 2) {
        drop()
        setState('stopped')
      } else {
        retryLater(0)
      }
    })
    // Last, as in every transition: onState may close the client.
    setState('connecting')
  }

  /** The messages after `id` this tab delivered, or null when it cannot tell (the id is not among them). */
  function since (id: string): StreamMessage[] | null {
    if (id === lastEventId) return []
    const at = recent.findIndex((message) => message.id === id)
    return at < 0 ? null : recent.slice(at + 1)
  }

  function receive (data: Relay): void {
    if (data.t === 's') {
      track(data.i)
      setState(data.c.state, data.c.attempt, data.c.delay)
    } else if (data.t === 'm' || data.t === 'r') {
      deliver(data.t, data.m)
    } else if (data.t === 'b' && data.k === tabKey) {
      if (data.m !== null) for (const message of data.m) deliver('m', message)
      else deliver('r', { id: '', event: RESET_EVENT, data: { reason: 'unknown-last-event-id' }, raw: '{"reason":"unknown-last-event-id"}' })
    }
  }

  function join (): void {
    leader = false
    const channel = bus = new BroadcastChannel(lockName)
    channel.onmessage = (event: MessageEvent<Relay>) => {
      const data = event.data
      if (!leader) receive(data)
      else if (data.t === 'q') relay({ t: 's', c: current, i: lastEventId })
      else if (data.t === 'c') relay({ t: 'b', k: data.k, m: since(data.i) })
    }
    const controller = abort = new AbortController()
    navigator.locks.request(lockName, { signal: controller.signal }, async () => {
      // Granted after this tab left (or left and joined again): let the next tab have it.
      if (abort !== controller) return
      leader = true
      start()
      if (abort !== controller) return
      // Held for the tab's life: the browser lets go of it when the tab goes away.
      await new Promise<void>((resolve) => { release = resolve })
    }).catch(() => {})
    channel.postMessage({ t: 'q' } satisfies Relay)
    // A tab back from a pause or a reload asks the leader for what it missed meanwhile.
    if (lastEventId !== undefined) channel.postMessage({ t: 'c', i: lastEventId, k: tabKey } satisfies Relay)
    setState('connecting')
  }

  function leave (): void {
    drop()
    release?.()
    abort?.abort()
    bus?.close()
    release = abort = bus = undefined
    leader = !shared
  }

  function onPageHide (): void {
    // The tab goes away (or into the back-forward cache): the next tab takes over now.
    leave()
  }

  function onPageShow (event: PageTransitionEvent): void {
    if (event.persisted && state !== 'paused' && state !== 'closed') join()
  }

  if (shared) {
    addEventListener('pagehide', onPageHide)
    addEventListener('pageshow', onPageShow)
    join()
  } else {
    start()
  }

  return {
    get state () { return state },
    get lastEventId () { return lastEventId },
    get leader () { return leader },
    close () {
      if (state === 'closed') return
      if (shared) {
        removeEventListener('pagehide', onPageHide)
        removeEventListener('pageshow', onPageShow)
      }
      leave()
      leader = false
      setState('closed')
    },
    pause () {
      if (state === 'closed' || state === 'paused') return
      leave()
      if (shared) leader = false
      setState('paused')
    },
    resume () {
      if (state !== 'paused' && !(state === 'stopped' && leader)) return
      attempt = 0
      if (shared && !leader) join()
      else start()
    }
  }
}

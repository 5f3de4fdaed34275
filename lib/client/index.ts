/**
 * The client of fastify-push-stream, for the browser and Node 20+: a stream
 * read with `fetch` (or the browser's `EventSource`) with the reconnection
 * policy in the client's hands: full-jitter backoff capped at `maxDelay`,
 * retries that depend on the HTTP status, a watchdog for silent connections,
 * resume from the last id, optional persistence across reloads and one
 * shared connection for all tabs. Served as one script: it imports nothing
 * once built (the SSE parser is bundled in).
 *
 * @example
 * import { connect } from '/events/client.js'
 * const stream = connect('/events', { onMessage: (m) => console.log(m.data) })
 */
import { createParser } from 'eventsource-parser'

/**
 * Where a client stands.
 * - `connecting`: a request is on its way.
 * - `open`: the server's opening event (or any event) has arrived.
 * - `reconnecting`: the connection failed or ended; a new try is scheduled.
 * - `paused`: `pause()` was called, or the tab is hidden with `pauseWhenHidden`.
 * - `stopped`: the server refused (204, 401/403 not retried, 404, 500, …): `status` says which. No request follows.
 * - `ended`: the server ended a per-request stream (`push-stream:end`): `reason` says why. No request follows.
 * - `failed`: the server's source failed (`push-stream:error`): `code` says how. No request follows.
 * - `closed`: `close()` was called, the `signal` aborted or an iteration stopped.
 */
export type ConnectionState = 'connecting' | 'open' | 'reconnecting' | 'paused' | 'stopped' | 'ended' | 'failed' | 'closed'

/** A change of state, as given to `onState`. */
export interface StateChange {
  state: ConnectionState
  /** With `reconnecting`: the attempt, counted from 1 since the last stable connection. */
  attempt?: number
  /** With `reconnecting`: milliseconds until the next try. */
  delay?: number
  /** With `shareAcrossTabs`: true when this tab holds the connection, false when it follows another tab's. */
  leader?: boolean
  /** With `stopped`: the HTTP status of the refusal (0 when none could be read). With `reconnecting`: the status being retried (502, 503, 504, 429, 401, 403), if any. */
  status?: number
  /** With `ended`: the server's reason, from the `push-stream:end` data. */
  reason?: string
  /** With `failed`: the server's error code, from the `push-stream:error` data. */
  code?: string
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

/** Request headers, or a function (possibly async) that gives them before every attempt. */
export type HeadersOption = Record<string, string> | (() => Record<string, string> | Promise<Record<string, string>>)

/** The options of `connect`. `Events` maps event names to their data types. */
export interface ConnectOptions<Events extends object = Record<string, unknown>> {
  /** Channels to subscribe to (`?channel=`); none means the server's default channel. */
  channels?: string[]
  /** The id to start after; the stream starts from now when absent. */
  lastEventId?: string
  /** Every event received, whatever its name, except `reset` and the `push-stream:*` control events. */
  onMessage?: (message: StreamMessage) => void
  /** A handler per event name (`'message'` for unnamed events). */
  onEvent?: { [K in keyof Events & string]?: (data: Events[K], message: StreamMessage<Events[K]>) => void }
  /** Every change of state; called with `connecting` (or `closed`, for an aborted `signal`) before `connect` returns. */
  onState?: (change: StateChange) => void
  /** The server could not replay from the last id: events may have been missed. */
  onReset?: (message: StreamMessage) => void
  /**
   * Called on a 401 or 403 answer, with its status: resolve to true to try
   * again (after refreshing what `headers` gives), false to stop. Without it,
   * 401 and 403 stop the client.
   */
  onUnauthorized?: (status: number) => boolean | Promise<boolean>
  /** More event names for `onMessage`, with the `eventsource` transport only (an `EventSource` reports only the names it is asked for). */
  events?: string[]
  /**
   * How to read the stream. Default `'fetch'` where `fetch` exists (every
   * current browser, Node 20+), unless an `EventSource` is given; then
   * `'eventsource'`. Headers, method, body and the stall watchdog need `'fetch'`.
   */
  transport?: 'fetch' | 'eventsource'
  /** Request headers, or a function (possibly async) called before every attempt, so a refreshed token is used on the next one. Fetch only. */
  headers?: HeadersOption
  /** The request method. Default `'GET'`. Fetch only. */
  method?: string
  /** The request body, sent on every attempt (so not a stream). Fetch only. */
  body?: string | Blob | FormData | URLSearchParams | ArrayBuffer | null
  /** Fetch's `credentials`. Default `'include'` with `withCredentials`, else `'same-origin'`. */
  credentials?: RequestCredentials
  /** The `fetch` to use. Default `globalThis.fetch`. */
  fetch?: typeof fetch
  /**
   * Milliseconds without a byte after which a connection counts as dead and
   * is replaced from the last id. Default 2.5 times the heartbeat the server
   * announces in its opening event (none when its heartbeat is 0); 0 turns the
   * watchdog off. Fetch only: an `EventSource` hides the heartbeat.
   */
  stallTimeout?: number
  /** Base delay (ms) of the backoff until the server has sent its own. Default 3000. */
  retry?: number
  /** Cap (ms) of any reconnection delay (not of a server's `Retry-After`). Default 30000. */
  maxDelay?: number
  /** Milliseconds a connection must stay open before the attempt counter starts again from 1. Default 5000. */
  stableAfter?: number
  /**
   * Keep the stream's URL and last id in `sessionStorage` (under this key, or
   * `'push-stream:' + url`) and resume from that id after a reload, when
   * `connect` is given the same URL again; `persisted(key)` reads them back.
   * A stream that ends or fails is forgotten. Default false.
   */
  persist?: boolean | string
  /** One connection for all tabs of this origin with the same URL and channels; the others follow it. Default false. */
  shareAcrossTabs?: boolean
  /** Pause while the page is hidden, resume from the last id when it shows again. Default false: a hidden tab keeps its stream. */
  pauseWhenHidden?: boolean
  /** Closes the client when it aborts (at once when already aborted). */
  signal?: AbortSignal
  /** Send cookies cross-origin (`EventSource`'s `withCredentials`, fetch's `credentials: 'include'`). Default false. */
  withCredentials?: boolean
  /** The `EventSource` to use; giving one chooses the `eventsource` transport. Default `globalThis.EventSource`. */
  EventSource?: typeof EventSource
}

/** A running client. Iterate it (`for await`) to get its messages; leaving the loop closes it. */
export interface StreamHandle extends AsyncIterable<StreamMessage> {
  /** The current state. */
  readonly state: ConnectionState
  /** The id the client resumes from; undefined until it knows one. */
  readonly lastEventId: string | undefined
  /** True when this tab's own connection serves it (always without `shareAcrossTabs`). */
  readonly leader: boolean
  /** Stops for good: no connection, no timer, no callback but `onState` with `closed`. Idempotent. */
  close(): void
  /** Stops delivering until `resume()`; this tab's connection closes (a leader hands it to another tab). */
  pause(): void
  /** After `pause()` (or `stopped`, `ended`, `failed`, in a tab with its own connection): connects again from the last id. */
  resume(): void
}

/** A stream kept by `persist`, as `persisted(key)` gives it. */
export interface PersistedStream {
  /** The stream's URL, absolute, as `connect` was given it (without its channels). */
  url: string
  /** The id it resumes after. */
  lastEventId: string
}

/**
 * What an iteration throws when the client is `stopped` or `failed`: an
 * `Error` carrying that state change (`state`, `status`, `code`).
 */
export type StreamError = Error & StateChange

// Between tabs: a message or reset (m, r; f: it carried its own id), a state (s), "who leads?" (q),
// a request to catch up after an id (c) and its answer for one tab (b; null: cannot).
type Relay =
  | { t: 'm' | 'r', m: StreamMessage, f: boolean }
  | { t: 's', c: StateChange, i: string | undefined }
  | { t: 'q' }
  | { t: 'c', i: string, k: string }
  | { t: 'b', k: string, m: StreamMessage[] | null }

type Handler = (data: unknown, message: StreamMessage) => void

const PREFIX = 'push-stream:'
const OPEN_EVENT = PREFIX + 'open'
const RETRY_EVENT = PREFIX + 'retry'
const END_EVENT = PREFIX + 'end'
const ERROR_EVENT = PREFIX + 'error'
const RESET_EVENT = 'reset'
const FINAL = ['stopped', 'ended', 'failed', 'closed']
// Ids remembered to drop a repeat, which a change of leader can cause.
const SEEN_MAX = 500
// The watchdog's threshold in heartbeats: the server is never silent longer than one; the rest is the margin for a slow network or a busy server.
const STALL_BEATS = 2.5

function parse (text: string): unknown {
  try {
    return JSON.parse(text)
  } catch {
    return text
  }
}

function field (value: unknown, key: string): unknown {
  return (value as Record<string, unknown> | null)?.[key]
}

function number (value: unknown, key: string): number | undefined {
  const n = field(value, key)
  return typeof n === 'number' && n >= 0 ? n : undefined
}

function text (value: unknown, key: string): string | undefined {
  const s = field(value, key)
  return typeof s === 'string' ? s : undefined
}

/** A callback's throw is reported but never stops the client. */
function call<A extends unknown[]> (fn: ((...args: A) => unknown) | undefined, ...args: A): void {
  try {
    fn?.(...args)
  } catch (error) {
    report(error)
  }
}

function report (error: unknown): void {
  queueMicrotask(() => { throw error })
}

/**
 * The stream kept under `key` (the `persist` string, or `'push-stream:' + url`
 * for `true`), so that a page can find after a reload the per-request stream
 * it was reading and `connect` to its URL again. Undefined when none is kept:
 * never stored, ended, failed, or no `sessionStorage` (Node).
 */
export function persisted (key: string): PersistedStream | undefined {
  try {
    const kept = JSON.parse(sessionStorage.getItem(key) as string) as Partial<PersistedStream> | null
    if (typeof kept?.url === 'string' && typeof kept.lastEventId === 'string') return { url: kept.url, lastEventId: kept.lastEventId }
  } catch {}
  return undefined
}

/**
 * Opens a stream and keeps it open: reconnects after a network error, a
 * 502/503/504/429 answer, a silent connection or the end of the stream with
 * full-jitter backoff (a random delay up to `min(maxDelay, base * 2 ** (attempt - 1))`,
 * `base` being the server's `retry`, after at least its `Retry-After`),
 * resuming from the last id. Any other refusal stops it for good.
 */
export function connect<Events extends object = Record<string, unknown>> (url: string, options: ConnectOptions<Events> = {}): StreamHandle {
  const ES = options.EventSource ?? globalThis.EventSource
  const fetcher = options.fetch ?? globalThis.fetch
  const useFetch = (options.transport ?? (options.EventSource === undefined && typeof fetcher === 'function' ? 'fetch' : 'eventsource')) === 'fetch'
  const channels = options.channels ?? []
  const maxDelay = options.maxDelay ?? 30000
  const handlers = (options.onEvent ?? {}) as Record<string, Handler | undefined>
  const names = new Set(['message', OPEN_EVENT, RETRY_EVENT, END_EVENT, ERROR_EVENT, RESET_EVENT, ...Object.keys(handlers), ...(options.events ?? [])])
  const target = new URL(url, globalThis.location?.href)
  const address = target.href
  const lockName = PREFIX + address + '#' + [...channels].sort().join()
  for (const channel of channels) target.searchParams.append('channel', channel)
  target.searchParams.set('handshake', '1')
  const signal = options.signal
  const hasDocument = typeof document === 'object'

  const key = typeof options.persist === 'string' ? options.persist : PREFIX + url
  let storage: Storage | undefined
  try {
    if (options.persist) storage = sessionStorage
  } catch {}
  // An id kept for another URL under the same key belongs to another stream: ids of two answers do not mix.
  const kept = storage && persisted(key)
  let lastEventId = (kept?.url === address ? kept.lastEventId : undefined) ?? options.lastEventId
  const shared = options.shareAcrossTabs === true && hasDocument && globalThis.navigator?.locks !== undefined && typeof BroadcastChannel === 'function'

  let state: ConnectionState = 'connecting'
  let current: StateChange = { state }
  let lastKey = ''
  let leader = !shared
  // Bumped by drop(): a callback of an earlier attempt sees another value and does nothing.
  let run = 0
  let source: EventSource | undefined
  let request: AbortController | undefined
  let timer: ReturnType<typeof setTimeout> | undefined
  let stableTimer: ReturnType<typeof setTimeout> | undefined
  let stallTimer: ReturnType<typeof setTimeout> | undefined
  let stallAfter = 0
  let attempt = 0
  // Auth retries since the last open: the first goes at once (fresh credentials), later ones back off.
  let authTries = 0
  let hiddenPause = false
  let base = options.retry ?? 3000
  const seen = new Set<string>()
  // The last messages delivered, so a leader can catch up a tab that paused or reloaded.
  const recent: StreamMessage[] = []
  const tabKey = Math.random().toString(36).slice(2)
  // Shared mode: the tab's channel, the hold on the lock, and the way to withdraw a pending request.
  let bus: BroadcastChannel | undefined
  let release: (() => void) | undefined
  let abort: AbortController | undefined
  // Iterations: one queue each, and the waits to end on a message or a change of state.
  const queues = new Set<StreamMessage[]>()
  let wakers: Array<() => void> = []

  function wake (): void {
    const waiting = wakers
    wakers = []
    for (const resolve of waiting) resolve()
  }

  function relay (message: Relay): void {
    if (leader) bus?.postMessage(message)
  }

  function setState (next: ConnectionState, extra: Omit<StateChange, 'state'> = {}): void {
    const change: StateChange = { state: next }
    for (const [name, value] of Object.entries(extra)) if (value !== undefined && name !== 'leader') (change as unknown as Record<string, unknown>)[name] = value
    if (options.shareAcrossTabs) change.leader = leader
    // A follower hears the leader's state again when another tab joins: report changes only.
    const changeKey = JSON.stringify([next, change.attempt, change.leader, change.status])
    if (changeKey === lastKey) return
    lastKey = changeKey
    state = next
    current = change
    // Over for good on the server's word: a reload must not follow it again.
    if (next === 'ended' || next === 'failed') forget()
    relay({ t: 's', c: change, i: lastEventId })
    wake()
    call(options.onState, change)
  }

  function track (id: string | undefined): void {
    // An empty id (a block without `id:`) says nothing about the position: the known id stays.
    if (id === undefined || id === '') return
    lastEventId = id
    try {
      storage?.setItem(key, JSON.stringify({ url: address, lastEventId: id }))
    } catch {}
  }

  function forget (): void {
    try {
      storage?.removeItem(key)
    } catch {}
  }

  function deliver (kind: 'm' | 'r', message: StreamMessage, fresh = true): void {
    if (kind === 'm' && fresh && message.id !== '') {
      if (seen.has(message.id)) return
      seen.add(message.id)
      if (seen.size > SEEN_MAX) seen.delete(seen.values().next().value as string)
      recent.push(message)
      if (recent.length > SEEN_MAX) recent.shift()
    }
    track(message.id)
    relay({ t: kind, m: message, f: fresh })
    if (kind === 'r') {
      call(options.onReset, message)
    } else {
      for (const queue of queues) queue.push(message)
      wake()
      call(options.onMessage, message)
      call(handlers[message.event], message.data, message)
    }
  }

  function opened (): void {
    if (state === 'open') return
    authTries = 0
    stableTimer = setTimeout(() => { attempt = 0 }, options.stableAfter ?? 5000)
    setState('open')
  }

  /** Called for every chunk read: a connection silent for `stallAfter` ms is replaced. */
  function watch (): void {
    clearTimeout(stallTimer)
    if (stallAfter > 0) stallTimer = setTimeout(() => retryLater(0), stallAfter)
  }

  function drop (): void {
    run++
    source?.close()
    request?.abort()
    source = request = undefined
    clearTimeout(timer)
    clearTimeout(stableTimer)
    clearTimeout(stallTimer)
  }

  function finish (next: ConnectionState, extra?: Omit<StateChange, 'state'>): void {
    drop()
    setState(next, extra)
  }

  function retryLater (after: number, status?: number, now?: boolean): void {
    drop()
    attempt++
    // A base of at least 1 ms: with a server retry of 0 the cap still grows, so a dead server is not hammered.
    const delay = Math.round(after + (now ? 0 : Math.random() * Math.min(maxDelay, Math.max(base, 1) * 2 ** (attempt - 1))))
    // Set before onState runs, so a callback that calls close() or pause() can clear it.
    timer = setTimeout(start, delay)
    setState('reconnecting', { attempt, delay, status })
  }

  /** One event of the current connection, from either transport. `fresh`: it carried its own id. */
  function receive (name: string, raw: string, id: string | undefined, fresh: boolean): void {
    const data = parse(raw)
    if (name === OPEN_EVENT) {
      track(id)
      base = number(data, 'retry') ?? base
      stallAfter = options.stallTimeout ?? STALL_BEATS * (number(data, 'heartbeat') ?? 0)
      opened()
      watch()
    } else if (name === RETRY_EVENT) {
      retryLater(number(data, 'after') ?? 0)
    } else if (name === END_EVENT) {
      finish('ended', { reason: text(data, 'reason') })
    } else if (name === ERROR_EVENT) {
      finish('failed', { code: text(data, 'code') })
    } else if (!name.startsWith(PREFIX)) {
      opened()
      deliver(name === RESET_EVENT ? 'r' : 'm', { id: id || lastEventId || '', event: name, data, raw }, fresh)
    }
  }

  /** An answer that is not a stream: retried (502, 503, 504, 429; 401 and 403 if `onUnauthorized` says so) or final. */
  async function refused (response: Response, mine: number): Promise<void> {
    const status = response.status
    if (status === 429 || (status > 501 && status < 505)) {
      const header = response.headers.get('retry-after')
      const seconds = Number(header ?? 0)
      // Retry-After is either seconds or an HTTP date.
      retryLater(Math.max(0, (Number.isNaN(seconds) ? Date.parse(header as string) - Date.now() : seconds * 1000) || 0), status)
      return
    }
    let again = false
    if ((status === 401 || status === 403) && options.onUnauthorized) {
      try {
        again = await options.onUnauthorized(status) === true
      } catch (error) {
        report(error)
      }
    }
    if (mine !== run) return
    if (again) retryLater(0, status, authTries++ === 0)
    else finish('stopped', { status })
  }

  /**
   * One attempt over fetch. `probe`: only learn the status of the URL an
   * `EventSource` gave up on, then retry or stop by it.
   */
  async function fetchStream (href: string, mine: number, probe?: boolean): Promise<void> {
    const controller = request = new AbortController()
    const headers = typeof options.headers === 'function' ? await options.headers() : options.headers
    if (mine !== run) return
    const response = await fetcher(href, {
      method: options.method,
      headers: { accept: 'text/event-stream', ...headers },
      body: options.body,
      credentials: options.credentials ?? (options.withCredentials ? 'include' : 'same-origin'),
      cache: 'no-store',
      signal: controller.signal
    })
    if (mine !== run) return
    if (response.status !== 200 || !/^text\/event-stream/i.test(response.headers.get('content-type') ?? '')) {
      response.body?.cancel().catch(() => {})
      return await refused(response, mine)
    }
    if (probe || response.body === null) {
      controller.abort()
      return retryLater(0)
    }
    const reader = response.body.getReader()
    const decoder = new TextDecoder()
    const parser = createParser({
      onEvent: (event) => { if (mine === run) receive(event.event ?? 'message', event.data, event.id, event.id !== undefined) }
    })
    for (;;) {
      const { done, value } = await reader.read()
      if (mine !== run) return
      if (done) break
      watch()
      parser.feed(decoder.decode(value, { stream: true }))
    }
    // The server ended the stream without saying it was over: come back from the last id.
    if (mine === run) retryLater(0)
  }

  function start (): void {
    drop()
    const href = new URL(target)
    if (lastEventId !== undefined) href.searchParams.set('lastEventId', lastEventId)
    const mine = run
    const failed = (error: unknown): void => {
      if (mine !== run) return
      // A TypeError is fetch's network error; anything else is the application's (headers, fetch) and is reported too.
      if (!(error instanceof TypeError)) report(error)
      retryLater(0)
    }
    if (useFetch) {
      fetchStream(href.href, mine).catch(failed)
    } else {
      const es = source = new ES(href.href, { withCredentials: options.withCredentials === true })
      for (const name of names) {
        // Events of a replaced EventSource may still be queued: only the current one counts.
        es.addEventListener(name, (event) => {
          if (mine === run) receive(name, (event as MessageEvent<string>).data, (event as MessageEvent<string>).lastEventId, true)
        })
      }
      es.onerror = () => {
        if (mine !== run) return
        // CLOSED: the server answered with another status or type, which EventSource hides; a fetch learns which.
        if (es.readyState !== 2) {
          retryLater(0)
        } else if (typeof fetcher !== 'function') {
          finish('stopped', { status: 0 })
        } else {
          es.close()
          fetchStream(href.href, mine, true).catch(failed)
        }
      }
    }
    // Last, as in every transition: onState may close the client.
    setState('connecting')
  }

  /** The messages after `id` this tab delivered, or null when it cannot tell (the id is not among them). */
  function since (id: string): StreamMessage[] | null {
    if (id === lastEventId) return []
    const at = recent.findIndex((message) => message.id === id)
    return at < 0 ? null : recent.slice(at + 1)
  }

  function receiveRelay (data: Relay): void {
    if (data.t === 's') {
      track(data.i)
      setState(data.c.state, data.c)
    } else if (data.t === 'm' || data.t === 'r') {
      deliver(data.t, data.m, data.f)
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
      if (!leader) receiveRelay(data)
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

  function onVisibility (): void {
    if (document.hidden) {
      if (state === 'paused' || FINAL.includes(state)) return
      handle.pause()
      hiddenPause = true
    } else if (hiddenPause) {
      handle.resume()
    }
  }

  const watchVisibility = options.pauseWhenHidden === true && hasDocument

  const handle: StreamHandle = {
    get state () { return state },
    get lastEventId () { return lastEventId },
    get leader () { return leader },
    close () {
      if (state === 'closed') return
      if (shared) {
        removeEventListener('pagehide', onPageHide)
        removeEventListener('pageshow', onPageShow)
      }
      if (watchVisibility) document.removeEventListener('visibilitychange', onVisibility)
      signal?.removeEventListener('abort', handle.close)
      leave()
      leader = false
      setState('closed')
    },
    pause () {
      hiddenPause = false
      if (state === 'closed' || state === 'paused') return
      leave()
      if (shared) leader = false
      setState('paused')
    },
    resume () {
      hiddenPause = false
      if (state !== 'paused' && !(FINAL.includes(state) && state !== 'closed' && leader)) return
      attempt = 0
      if (shared && !leader) join()
      else start()
    },
    [Symbol.asyncIterator] () {
      const queue: StreamMessage[] = []
      queues.add(queue)
      return {
        async next (): Promise<IteratorResult<StreamMessage, undefined>> {
          while (queue.length === 0 && !FINAL.includes(state)) await new Promise<void>((resolve) => wakers.push(resolve))
          if (queue.length > 0) return { value: queue.shift() as StreamMessage, done: false }
          queues.delete(queue)
          if (state === 'stopped' || state === 'failed') throw Object.assign(new Error(`push-stream: ${state}`), current)
          return { value: undefined, done: true }
        },
        async return (): Promise<IteratorResult<StreamMessage, undefined>> {
          queues.delete(queue)
          handle.close()
          return { value: undefined, done: true }
        }
      }
    }
  }

  if (signal?.aborted) {
    handle.close()
    return handle
  }
  signal?.addEventListener('abort', handle.close)
  if (watchVisibility) document.addEventListener('visibilitychange', onVisibility)
  if (shared) {
    addEventListener('pagehide', onPageHide)
    addEventListener('pageshow', onPageShow)
    join()
  } else {
    start()
  }
  if (watchVisibility && document.hidden) onVisibility()
  return handle
}

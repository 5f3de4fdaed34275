// Checked by `tsc --noEmit` (npm test): the browser client's types as a page sees them.
// Each @ts-expect-error fails the check if the line it marks ever type-checks.
import {
  connect,
  type ConnectionState,
  type ConnectOptions,
  type StateChange,
  type StreamHandle,
  type StreamMessage
} from '../../lib/client/index.js'

// An interface works as the event map, as a type alias does.
interface Events {
  chat: { text: string, from: string }
  count: number
}

/** Keeps the values read below in use. */
const seen: unknown[] = []

export function usage (): void {
  const handle: StreamHandle = connect<Events>('/events', {
    channels: ['room-1', 'room-2'],
    lastEventId: '1795679038939-0',
    onEvent: {
      chat: (data, message) => {
        const text: string = data.text
        const same: { text: string, from: string } = message.data
        const id: string = message.id
        seen.push(text, same, id)
      },
      count: (data) => {
        const n: number = data
        seen.push(n)
      }
    },
    onMessage: (message: StreamMessage) => {
      const event: string = message.event
      const raw: string = message.raw
      const data: unknown = message.data
      seen.push(event, raw, data)
    },
    onState: (change: StateChange) => {
      const state: ConnectionState = change.state
      const attempt: number | undefined = change.attempt
      const delay: number | undefined = change.delay
      const leader: boolean | undefined = change.leader
      seen.push(state, attempt, delay, leader)
    },
    onReset: (message) => { seen.push(message.id) },
    events: ['typing'],
    retry: 3000,
    maxDelay: 30000,
    stableAfter: 5000,
    persist: 'my-key',
    shareAcrossTabs: true,
    withCredentials: true,
    EventSource
  })
  // The fetch transport's options; the handle iterates.
  const controller = new AbortController()
  const job = connect('/job', {
    transport: 'fetch',
    headers: async () => ({ authorization: 'Bearer token' }),
    method: 'POST',
    body: JSON.stringify({ prompt: 'hi' }),
    credentials: 'include',
    fetch: globalThis.fetch,
    onUnauthorized: async (status) => status === 401,
    stallTimeout: 45000,
    pauseWhenHidden: true,
    signal: controller.signal,
    onState: (change) => { seen.push(change.status, change.reason, change.code) }
  })
  connect('/events', { headers: { authorization: 'Bearer token' }, transport: 'eventsource' })
  seen.push(async () => {
    for await (const message of job) {
      const data: unknown = message.data
      if (data === 'last') break
    }
  })
  const final: ConnectionState[] = ['ended', 'failed', 'stopped', 'closed']
  seen.push(final)
  const state: ConnectionState = handle.state
  const id: string | undefined = handle.lastEventId
  const leader: boolean = handle.leader
  handle.pause()
  handle.resume()
  handle.close()
  seen.push(state, id, leader)

  // Untyped: any event name, data unknown.
  connect('/events', { onEvent: { anything: (data) => { seen.push(data) } }, persist: true })
  connect('/events')

  connect<Events>('/events', {
    onEvent: {
      // @ts-expect-error the chat data has no `body`
      chat: (data) => data.body
    }
  })
  connect<Events>('/events', {
    onEvent: {
      // @ts-expect-error count's data is a number
      count: (data: string) => data
    }
  })
  connect<Events>('/events', {
    onEvent: {
      // @ts-expect-error no such event in Events
      typing: () => {}
    }
  })
  // @ts-expect-error channels is a list
  connect('/events', { channels: 'room-1' })
  // @ts-expect-error headers are strings
  connect('/events', { headers: { 'x-count': 1 } })
  // @ts-expect-error not a transport
  connect('/events', { transport: 'websocket' })
  // @ts-expect-error persist is a boolean or a key
  connect('/events', { persist: 1 })
  // @ts-expect-error the state is read-only
  handle.state = 'open'
  // @ts-expect-error not a state
  const wrong: ConnectionState = 'errored'
  seen.push(wrong)
  const options: ConnectOptions<Events> = {}
  seen.push(options)
}

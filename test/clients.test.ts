// Real SSE clients that nobody here wrote, against the real server: each one dropped before and after
// its first event gets every event once, in order, with its text intact.
import t from 'tap'
import { EventSource } from 'eventsource'
import { createEventSource } from 'eventsource-client'
import { fetchEventSource } from '@microsoft/fetch-event-source'
import { createParser } from 'eventsource-parser'
import { connect } from '../lib/client/index.js'
import { CutProxy } from './helpers/cut-proxy.js'
import { startApp } from './helpers/sse.js'
import { waitFor } from './helpers/wait.js'

/** One client: opened on `url`, it hands each message event's data to `record`; `close` ends it for good. */
type OpenClient = (url: string, record: (data: string) => void) => { close: () => void }

// fetch-event-source is written for pages: its timers are window's, and it lets go of a document listener.
;(globalThis as { window?: unknown }).window ??= globalThis
;(globalThis as { document?: unknown }).document ??= { hidden: false, addEventListener: () => {}, removeEventListener: () => {} }

const clients: Record<string, OpenClient> = {
  eventsource: (url, record) => {
    const source = new EventSource(url)
    source.onmessage = (event) => record(event.data)
    return { close: () => source.close() }
  },
  'eventsource-client': (url, record) => {
    const source = createEventSource({
      url,
      onMessage: (message) => { if (message.event === undefined) record(message.data) }
    })
    return { close: () => source.close() }
  },
  '@microsoft/fetch-event-source': (url, record) => {
    const controller = new AbortController()
    fetchEventSource(url, {
      signal: controller.signal,
      openWhenHidden: true,
      fetch,
      onmessage: (message) => { if (message.event === '') record(message.data) },
      // A stream the server ended is retried only if onclose throws; onerror then waits its retry.
      onclose: () => { throw new Error('the stream ended') },
      onerror: () => undefined
    }).catch(() => {})
    return { close: () => controller.abort() }
  },
  'a Node fetch reader (eventsource-parser)': (url, record) => {
    const controller = new AbortController()
    let lastEventId: string | undefined
    let retry = 1000
    const read = async (): Promise<void> => {
      while (!controller.signal.aborted) {
        try {
          const response = await fetch(url, { signal: controller.signal, headers: lastEventId === undefined ? {} : { 'last-event-id': lastEventId } })
          const parser = createParser({
            onEvent: (event) => {
              if (event.id !== undefined) lastEventId = event.id
              if (event.event === undefined) record(event.data)
            },
            onRetry: (ms) => { retry = ms }
          })
          const decoder = new TextDecoder()
          for await (const chunk of response.body as unknown as AsyncIterable<Uint8Array>) parser.feed(decoder.decode(chunk, { stream: true }))
        } catch {}
        await new Promise((resolve) => setTimeout(resolve, retry))
      }
    }
    read().catch(() => {})
    return { close: () => controller.abort() }
  },
  'fastify-push-stream/client': (url, record) => {
    const handle = connect(url, {
      onMessage: (message) => {
        if (message.event === 'message') record(typeof message.data === 'string' ? message.data : JSON.stringify(message.data))
      }
    })
    return { close: () => handle.close() }
  }
}

// Text that breaks naive encoders and parsers: CR, LF and CRLF (inside JSON), a leading space, 4-byte characters.
const FIRST = { n: 1, text: 'carriage\rreturn, line\nfeed, both\r\nhere', emoji: '😀𝄞' }
const WHILE_AWAY = ' a leading space,\nthen a second line 𝄞😀'
const LIVE = { n: 3, text: '  two spaces 😀' }

for (const [name, open] of Object.entries(clients)) {
  for (const [when, blocks] of [['before', 1], ['after', 2]] as const) {
    t.test(`${name}, dropped ${when} its first event: every event once, in order, intact`, async (t) => {
      const { app, url } = await startApp(t, { retry: 200, heartbeat: 0 })
      const port = Number(new URL(url).port)
      const published: string[] = []
      const publish = async (data: unknown): Promise<void> => {
        await app.pushStream.publish(data)
        published.push(typeof data === 'string' ? data : JSON.stringify(data))
      }
      const proxy = await CutProxy.start(t, port, [
        // The first connection is cut after its opening block, or after the first event too.
        { blocks },
        // An event is published while the client is away: only a resume from the id it holds gets it.
        { before: async () => await publish(WHILE_AWAY) }
      ])
      const got: string[] = []
      const client = open(`${proxy.url}/events`, (data) => got.push(data))
      t.teardown(() => client.close())
      if (blocks === 2) {
        await waitFor(() => app.pushStream.stats().connections === 1, 'the first connection')
        await publish(FIRST)
      }
      await waitFor(() => got.length === published.length, `the client to get ${published.length === 1 ? 'the event published while it was away' : 'both events'}`, 10_000)
      await waitFor(() => app.pushStream.stats().connections === 1, 'the client to be back')
      await publish(LIVE)
      await waitFor(() => got.length === published.length, 'the live event', 5000)
      t.same(got, published, 'every event once, in order, its text intact')
      t.match(proxy.requests[1], /last-event-id: \d+-\d+|lastEventId=\d+-\d+/i, 'the reconnect named the id the client held')
    })
  }
}

// Real SSE clients that nobody here wrote, against the real server: each one dropped before and after
// its first event gets every event once, in order, with its text intact.
import t from 'tap'
import { EventSource } from 'eventsource'
import { createEventSource } from 'eventsource-client'
import { fetchEventSource } from '@microsoft/fetch-event-source'
import { createParser } from 'eventsource-parser'
import { connect } from '../lib/client/index.js'
import { testDroppedClient, type OpenClient } from './helpers/client-matrix.js'

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

for (const [name, open] of Object.entries(clients)) testDroppedClient(t, name, open)

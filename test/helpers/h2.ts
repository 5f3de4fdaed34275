import type http2 from 'node:http2'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { isAppEvent } from './sse.js'

/** One SSE stream on an HTTP/2 session: its response headers, the events and retries it parsed, and its end. */
export function openH2Stream (session: http2.ClientHttp2Session, path: string, headers: Record<string, string> = {}) {
  const events: EventSourceMessage[] = []
  const retries: number[] = []
  let wake = (): void => {}
  const stream = session.request({ ':path': path, ...headers })
  const decoder = new TextDecoder()
  const parser = createParser({
    onEvent: (event) => { if (isAppEvent(event)) events.push(event); wake() },
    onRetry: (retry) => { retries.push(retry) }
  })
  const response = new Promise<http2.IncomingHttpHeaders>((resolve) => stream.once('response', resolve))
  stream.on('data', (chunk: Buffer) => parser.feed(decoder.decode(chunk, { stream: true })))
  stream.on('error', () => {})
  const ended = new Promise<void>((resolve) => stream.once('close', resolve))
  const take = async (n: number): Promise<EventSourceMessage[]> => {
    while (events.length < n) await new Promise<void>((resolve) => { wake = resolve })
    return events.slice(0, n)
  }
  return { stream, response, take, ended, events, retries }
}

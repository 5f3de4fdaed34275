import http, { type IncomingHttpHeaders } from 'node:http'
import { once } from 'node:events'
import net from 'node:net'
import Fastify, { type FastifyInstance, type FastifyServerOptions } from 'fastify'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import pushStream, { OPEN_EVENT, type PublishedEvent, type PushStreamOptions } from '../../lib/index.js'
import type { Teardown } from './teardown.js'

/**
 * False for a stream's opening event (`push-stream:open`): the readers here keep the
 * events an application sees, as an `onmessage`, which a named event never reaches.
 */
export function isAppEvent (event: EventSourceMessage): boolean {
  return event.event !== OPEN_EVENT
}

/** The id `publish` gave an event. */
export async function idOf (published: Promise<PublishedEvent<unknown>>): Promise<string> {
  return (await published).id
}

/**
 * Starts a Fastify app with the plugin on a real port; closed in teardown.
 * `configure` runs before the plugin is registered (hooks, other routes).
 */
export async function startApp (
  t: Teardown,
  options: PushStreamOptions = {},
  configure?: (app: FastifyInstance) => void | Promise<void>,
  serverOptions: FastifyServerOptions & { http2?: boolean } = {}
): Promise<{ app: FastifyInstance, url: string }> {
  // One code path for HTTP/1.1 and HTTP/2 apps: the tests only use what both share.
  const app = Fastify(serverOptions as FastifyServerOptions) as unknown as FastifyInstance
  t.teardown(() => app.close())
  if (configure !== undefined) await configure(app)
  await app.register(pushStream, { interval: 0, ...options })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return { app, url: `http://127.0.0.1:${address.port}` }
}

/**
 * A client that reads a stream over a raw socket and parses it with a real
 * SSE parser, keeping every event, comment and retry it saw, and the raw text.
 */
export class StreamClient {
  /** The stream's opening event (`push-stream:open`), kept apart: an `onmessage` never sees it. */
  opening: EventSourceMessage | undefined
  /** Every event after the opening one. */
  readonly events: EventSourceMessage[] = []
  readonly comments: string[] = []
  readonly retries: number[] = []
  /** Every byte received, decoded as UTF-8. */
  raw = ''
  status = 0
  headers: IncomingHttpHeaders = {}
  /** Resolves when the response ends or the socket closes. */
  readonly ended: Promise<void>
  readonly request: http.ClientRequest
  #waiters: Array<() => void> = []
  #endedFlag = false

  constructor (url: string, headers: Record<string, string> = {}) {
    const decoder = new TextDecoder()
    const parser = createParser({
      onEvent: (event) => {
        if (event.event === OPEN_EVENT && this.opening === undefined && this.events.length === 0) this.opening = event
        else this.events.push(event)
        this.#wake()
      },
      onComment: (comment) => { this.comments.push(comment); this.#wake() },
      onRetry: (retry) => { this.retries.push(retry); this.#wake() }
    })
    let endResolve: () => void
    this.ended = new Promise((resolve) => { endResolve = resolve })
    const finish = (): void => {
      if (this.#endedFlag) return
      this.#endedFlag = true
      endResolve()
      this.#wake()
    }
    this.request = http.get(url, { headers, agent: false }, (res) => {
      this.status = res.statusCode ?? 0
      this.headers = res.headers
      this.#wake()
      res.on('data', (chunk: Buffer) => {
        const text = decoder.decode(chunk, { stream: true })
        this.raw += text
        parser.feed(text)
        this.#wake()
      })
      res.on('end', finish)
      res.on('close', finish)
    })
    this.request.on('error', finish)
    this.request.on('close', finish)
  }

  /** True once the stream has ended. */
  get isEnded (): boolean {
    return this.#endedFlag
  }

  /** Resolves once `test()` holds (checked on every chunk), or rejects when the stream ends first. */
  async until (test: () => boolean, what = 'condition'): Promise<void> {
    while (!test()) {
      if (this.#endedFlag) throw new Error(`stream ended before ${what}; got ${JSON.stringify(this.raw.slice(-500))}`)
      await new Promise<void>((resolve) => this.#waiters.push(resolve))
    }
  }

  /** Resolves once the response headers arrived. */
  async opened (): Promise<this> {
    await this.until(() => this.status !== 0, 'headers')
    return this
  }

  /** Resolves with the opening event once it arrived. */
  async open (): Promise<EventSourceMessage> {
    await this.until(() => this.opening !== undefined, 'the opening event')
    return this.opening as EventSourceMessage
  }

  /** Resolves with the first `n` events once they arrived. */
  async take (n: number): Promise<EventSourceMessage[]> {
    await this.until(() => this.events.length >= n, `${n} events`)
    return this.events.slice(0, n)
  }

  /** Closes the socket from the client side. */
  close (): void {
    this.request.destroy()
  }

  #wake (): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }
}

/** Opens a stream and waits for its headers. */
export async function openStream (url: string, headers: Record<string, string> = {}): Promise<StreamClient> {
  return new StreamClient(url, headers).opened()
}

/** A plain request (with an optional body), answered in full: status, headers and body. */
export async function request (url: string, options: http.RequestOptions = {}, body?: string): Promise<{ status: number, headers: IncomingHttpHeaders, body: string }> {
  const req = http.request(url, { agent: false, ...options })
  req.end(body)
  const [res] = await once(req, 'response') as [http.IncomingMessage]
  let text = ''
  res.setEncoding('utf8')
  for await (const chunk of res) text += chunk
  return { status: res.statusCode ?? 0, headers: res.headers, body: text }
}

/**
 * An app whose `authorize` waits for close to begin: its decision (allow)
 * comes from a preClose hook that runs after the plugin's own, and that hook
 * then waits for the client given to `hold` to end.
 */
export async function startAppClosingDuringAuthorize (options: PushStreamOptions = {}): Promise<{
  app: FastifyInstance
  url: string
  authorizing: Promise<void>
  hold: (client: StreamClient) => void
}> {
  let allow = (): void => {}
  let asked = (): void => {}
  const authorizing = new Promise<void>((resolve) => { asked = resolve })
  const held: { client?: StreamClient } = {}
  const app = Fastify()
  await app.register(pushStream, {
    interval: 0,
    ...options,
    authorize: () => new Promise<boolean>((resolve) => {
      allow = () => resolve(true)
      asked()
    })
  })
  app.addHook('preClose', async () => {
    allow()
    await held.client?.ended
  })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address() as { port: number }
  return { app, url: `http://127.0.0.1:${address.port}`, authorizing, hold: (client) => { held.client = client } }
}

/** Opens a raw TCP connection and sends a GET request; the caller decides whether to read. */
export function rawGet (port: number, path: string, headers: Record<string, string> = {}, localAddress?: string): net.Socket {
  const socket = net.connect({ port, host: '127.0.0.1', localAddress })
  socket.on('error', () => {})
  const lines = Object.entries({ host: 'localhost', ...headers }).map(([name, value]) => `${name}: ${value}\r\n`).join('')
  socket.write(`GET ${path} HTTP/1.1\r\n${lines}\r\n`)
  return socket
}

import { existsSync } from 'node:fs'
import { readFile } from 'node:fs/promises'
import type { Socket } from 'node:net'
import Fastify, { type FastifyInstance } from 'fastify'
import { chromium, type Browser, type BrowserContext, type Page } from 'playwright-core'
import pushStream, { type PushStreamOptions } from '../../lib/index.js'
import type { Teardown } from '../helpers/teardown.js'

/** The built client the plugin serves; `npm run build` (its last step, `node scripts/build-client.js`) makes it. */
export const CLIENT_FILE = new URL('../../dist/client/index.js', import.meta.url)
const PAGE_FILE = new URL('./fixtures/index.html', import.meta.url)

/** One entry of the page's `window.__log`. */
export interface LogEntry {
  client: string
  type: 'state' | 'message' | 'reset' | 'event' | 'headers' | 'unauthorized' | 'item' | 'done'
  time: number
  state?: string
  attempt?: number
  delay?: number
  leader?: boolean
  id?: string
  event?: string
  name?: string
  data?: unknown
  raw?: string
  status?: number
  reason?: string
  code?: string
}

/** A test server: the plugin, the page, and switches to make it unreachable. */
export interface TestServer {
  app: FastifyInstance
  origin: string
  /** The URL of every request the server has seen, in order. */
  requests: string[]
  /** While down, every open socket is destroyed and every new one is closed on accept, as if the server were gone. */
  setDown: (down: boolean) => void
}

const BROWSER_ARGS = [
  '--headless',
  '--no-sandbox',
  '--disable-gpu',
  '--disable-quic',
  '--no-first-run',
  '--disable-background-networking',
  '--disable-component-update',
  '--disable-sync'
]

/** Debian's Chromium, or the build named by CHROMIUM_PATH; never a downloaded browser. */
export const CHROMIUM_PATH = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

/**
 * Why the browser tests cannot run on this machine, or undefined when they
 * can. With BROWSER_REQUIRED=1 (set by .ci/run) a missing browser fails the
 * run instead, so CI can never skip them silently.
 */
export function browserMissing (): string | undefined {
  if (existsSync(CHROMIUM_PATH)) return undefined
  const why = `Chromium not found at ${CHROMIUM_PATH}: apt-get install -y chromium, or set CHROMIUM_PATH`
  if (process.env.BROWSER_REQUIRED === '1') throw new Error(why)
  return why
}

/** Launches the system chromium; closed in teardown. */
export async function launchBrowser (t: Teardown): Promise<Browser> {
  if (!existsSync(CLIENT_FILE)) throw new Error('dist/client/index.js is missing: run `npm run build` first')
  const browser = await chromium.launch({ executablePath: CHROMIUM_PATH, args: BROWSER_ARGS })
  t.teardown(() => browser.close())
  return browser
}

/**
 * Starts a Fastify app on a free port with the plugin (`interval: 0`, the
 * client served at `/events/client.js`) and the test page at `/`.
 * `configure` runs before the plugin is registered. Closed in teardown.
 */
export async function startServer (
  t: Teardown,
  options: PushStreamOptions = {},
  configure?: (app: FastifyInstance) => void | Promise<void>
): Promise<TestServer> {
  const app = Fastify()
  const requests: string[] = []
  const setDown = unreachableSwitch(t, app)
  app.addHook('onRequest', async (request) => { requests.push(request.url) })
  const page = await readFile(PAGE_FILE, 'utf8')
  app.get('/', async (_request, reply) => reply.type('text/html; charset=utf-8').send(page))
  if (configure !== undefined) await configure(app)
  await app.register(pushStream, { interval: 0, client: true, ...options })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const address = app.server.address()
  if (address === null || typeof address === 'string') throw new Error('no port')
  return {
    app,
    origin: `http://127.0.0.1:${address.port}`,
    requests,
    setDown
  }
}

/**
 * Makes `app` unreachable on demand, as a crashed or cut-off server is: while
 * down, its sockets (but those `keep` spares) are destroyed and new ones as
 * they arrive. Closes the app in teardown, its sockets first: a stream
 * holding its socket would keep close() waiting until the plugin ends it.
 */
export function unreachableSwitch (t: Teardown, app: FastifyInstance, keep: (socket: Socket) => boolean = () => false): (down: boolean) => void {
  const sockets = new Set<Socket>()
  let down = false
  app.server.on('connection', (socket: Socket) => {
    if (down) {
      socket.destroy()
      return
    }
    sockets.add(socket)
    socket.once('close', () => sockets.delete(socket))
  })
  t.teardown(async () => {
    for (const socket of sockets) socket.destroy()
    await app.close()
  })
  return (value) => {
    down = value
    if (value) for (const socket of sockets) if (!keep(socket)) socket.destroy()
  }
}

/** A fresh browser context, closed in teardown. */
export async function newContext (t: Teardown, browser: Browser): Promise<BrowserContext> {
  const context = await browser.newContext()
  t.teardown(() => context.close())
  return context
}

/** Opens the test page in `context` and waits until its script has loaded the client. */
export async function openPage (context: BrowserContext, origin: string): Promise<Page> {
  const page = await context.newPage()
  // A page error would otherwise pass unseen: it fails the wait that follows.
  page.on('pageerror', (error) => { console.error('page error:', error) })
  await page.goto(`${origin}/`)
  await page.waitForFunction(() => (window as unknown as { __ready?: boolean }).__ready === true, undefined, { timeout: 10000 })
  return page
}

/** Starts a client named `name` in the page: `connect(url, options)` with every callback recorded. */
export async function open (page: Page, name: string, url: string, options: Record<string, unknown> = {}): Promise<void> {
  await page.evaluate(([name, url, options]) => {
    (window as unknown as { __open: (n: string, u: string, o: unknown) => void }).__open(name, url, options)
  }, [name, url, options] as const)
}

/** Calls a method of a client's handle in the page. */
export async function invoke (page: Page, name: string, method: 'close' | 'pause' | 'resume'): Promise<void> {
  await page.evaluate(([name, method]) => {
    (window as unknown as { __clients: Record<string, Record<string, () => void>> }).__clients[name]![method]!()
  }, [name, method] as const)
}

/** A client's handle as plain data: state, lastEventId, leader. */
export async function handle (page: Page, name: string): Promise<{ state: string, lastEventId: string | undefined, leader: boolean }> {
  return await page.evaluate((name) => {
    const h = (window as unknown as { __clients: Record<string, { state: string, lastEventId: string | undefined, leader: boolean }> }).__clients[name]!
    return { state: h.state, lastEventId: h.lastEventId, leader: h.leader }
  }, name)
}

/** The page's log, or one client's part of it. */
export async function logOf (page: Page, name?: string): Promise<LogEntry[]> {
  const log = await page.evaluate(() => (window as unknown as { __log: LogEntry[] }).__log)
  return name === undefined ? log : log.filter((entry) => entry.client === name)
}

/** One client's states, in order. */
export function states (log: LogEntry[]): string[] {
  return log.filter((entry) => entry.type === 'state').map((entry) => entry.state as string)
}

/** One client's message ids, in order. */
export function messageIds (log: LogEntry[]): string[] {
  return log.filter((entry) => entry.type === 'message').map((entry) => entry.id as string)
}

/**
 * Waits until `predicate(log, arg)` holds for the page's log, checked in the
 * page at every animation frame; fails after `timeout` ms with `what` and the
 * log. The predicate runs in the page: it may use only its two arguments.
 */
export async function waitForLog<A> (
  page: Page,
  what: string,
  predicate: (log: LogEntry[], arg: A) => boolean,
  arg: A,
  timeout = 10000
): Promise<void> {
  const expression = `(${predicate.toString()})(window.__log, ${JSON.stringify(arg) ?? 'undefined'})`
  try {
    await page.waitForFunction(expression, undefined, { timeout })
  } catch (error) {
    const log = await page.evaluate(() => (window as unknown as { __log: LogEntry[] }).__log).catch(() => [])
    throw new Error(`${what}: not within ${timeout} ms (${String(error)}); log: ${JSON.stringify(log)}`)
  }
}

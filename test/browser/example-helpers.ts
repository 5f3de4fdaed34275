import { mkdir } from 'node:fs/promises'
import { fileURLToPath } from 'node:url'
import type { FastifyInstance } from 'fastify'
import type { Browser, Page } from 'playwright-core'
import { build, type BuildOptions } from '../../example/server.js'
import { openStream, type StreamClient } from '../helpers/sse.js'
import type { Teardown } from '../helpers/teardown.js'
import { unreachableSwitch } from './helpers.js'

/** Where the test run writes its screenshots (git-ignored). */
export const SCREENSHOTS = fileURLToPath(new URL('../../.screenshots/', import.meta.url))

export const DESKTOP = { width: 1280, height: 800 }
export const PHONE = { width: 390, height: 844 }

/** The example app on a free port, with a switch to make it unreachable while keeping its history. */
export interface ExampleServer {
  app: FastifyInstance
  origin: string
  /** While down, every open socket but the observer's is destroyed and every new one is closed on accept. */
  setDown: (down: boolean) => void
  /** A stream on every channel that the server never cuts: what the server published, in order. */
  observe: (channels: readonly string[]) => Promise<StreamClient>
}

/** Builds the example with `options` and listens on a free port; closed in teardown. */
export async function startExample (t: Teardown, options: BuildOptions = {}): Promise<ExampleServer> {
  const app = await build({ logger: false, ...options })
  // Client-side ports of the observers' sockets: setDown leaves them alone.
  const kept = new Set<number>()
  const setDown = unreachableSwitch(t, app, (socket) => kept.has(socket.remotePort as number))
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  const origin = `http://127.0.0.1:${port}`
  return {
    app,
    origin,
    setDown,
    async observe (channels) {
      const query = channels.map((name) => `channel=${encodeURIComponent(name)}`).join('&')
      const client = await openStream(`${origin}/events?${query}`)
      t.teardown(() => client.close())
      kept.add(client.request.socket?.localPort as number)
      return client
    }
  }
}

/** Records every value the page's `#state[data-state]` takes, in `window.__states` (repeats folded). */
function recordStates (): void {
  const states: string[] = []
  Object.assign(window, { __states: states })
  new MutationObserver((records) => {
    for (const record of records) {
      const element = record.target as HTMLElement
      if (element.id !== 'state') continue
      if (states.length === 0 && record.oldValue !== null) states.push(record.oldValue)
      const state = element.dataset.state as string
      if (state !== states.at(-1)) states.push(state)
    }
  }).observe(document, { subtree: true, attributes: true, attributeOldValue: true, attributeFilter: ['data-state'] })
}

/** A page of the demo at `url` in a new context (its own tab group: no tab sharing with other contexts); closed in teardown. */
export async function openDemo (
  t: Teardown,
  browser: Browser,
  url: string,
  options: { viewport?: { width: number, height: number }, colorScheme?: 'light' | 'dark', errors?: string[] } = {}
): Promise<Page> {
  const context = await browser.newContext({ viewport: options.viewport ?? DESKTOP, colorScheme: options.colorScheme ?? 'light' })
  t.teardown(() => context.close())
  await context.addInitScript(recordStates)
  const page = await context.newPage()
  page.on('pageerror', (error) => { options.errors?.push(String(error)) })
  await page.goto(url)
  return page
}

/** Waits until the indicator shows `state`. */
export async function waitState (page: Page, state: string, timeout = 10000): Promise<void> {
  await page.waitForSelector(`#state[data-state="${state}"]`, { state: 'attached', timeout })
}

/** The states the indicator took since the page loaded. */
export async function statesOf (page: Page): Promise<string[]> {
  return await page.evaluate(() => (window as unknown as { __states: string[] }).__states)
}

/** The event ids of the listed messages, oldest first. */
export async function listedIds (page: Page): Promise<string[]> {
  return (await page.$$eval('#messages li[data-id]', (items) => items.map((item) => (item as HTMLElement).dataset.id as string))).reverse()
}

/** Waits until a message with event id `id` is listed. */
export async function waitForId (page: Page, id: string, timeout = 10000): Promise<void> {
  await page.waitForSelector(`#messages li[data-id="${id}"]`, { state: 'attached', timeout })
}

export interface Counters {
  received: number
  replayed: number
  resets: number
}

/** The page's counters as numbers. */
export async function counters (page: Page): Promise<Counters> {
  return (await snapshot(page)).counters
}

/** The listed ids (oldest first), the ids marked replayed and the counters, read at one moment. */
export async function snapshot (page: Page): Promise<{ ids: string[], replayed: string[], counters: Counters }> {
  return await page.evaluate(() => {
    const n = (id: string): number => Number(document.getElementById(id)?.textContent)
    const ids = (selector: string): string[] => [...document.querySelectorAll<HTMLElement>(selector)].map((item) => item.dataset.id as string).reverse()
    return {
      ids: ids('#messages li[data-id]'),
      replayed: ids('#messages li[data-replayed="true"]'),
      counters: { received: n('received'), replayed: n('replayed'), resets: n('resets') }
    }
  })
}

/**
 * Writes `.screenshots/<name>.png` while the indicator shows `state`: taken
 * again if the state moved while the picture was taken.
 */
export async function screenshotIn (page: Page, state: string, name: string): Promise<void> {
  await mkdir(SCREENSHOTS, { recursive: true })
  for (let i = 0; i < 5; i++) {
    await waitState(page, state)
    const before = (await statesOf(page)).length
    await page.screenshot({ path: `${SCREENSHOTS}${name}.png` })
    const after = await statesOf(page)
    if (after.length === before && after.at(-1) === state) return
  }
  throw new Error(`no screenshot in state ${state}: it kept changing`)
}

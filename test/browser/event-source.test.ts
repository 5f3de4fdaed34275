// The browser's own EventSource, in Chromium, as one more column of test/clients.test.ts: dropped before and
// after its first event, it gets every event once, in order, its text intact. Run where a Chromium is installed
// (skipped, visibly, where none is).
import t from 'tap'
import type { Browser } from 'playwright-core'
import { testDroppedClient, type OpenClient } from '../helpers/client-matrix.js'
import { browserMissing, launchBrowser } from './helpers.js'

/**
 * Opens a page on the stream's origin and runs `new EventSource(url)` there, each message's data handed to
 * `record`. The page is served by the browser itself (`route.fulfill`), not through the origin: the proxy in
 * front of the app plans its connections in order, so the EventSource's must be the only ones it sees.
 */
function browserEventSource (browser: Browser): OpenClient {
  return async (url, record) => {
    const pageUrl = `${new URL(url).origin}/page.html`
    const context = await browser.newContext()
    try {
      const page = await context.newPage()
      page.on('pageerror', (error) => { console.error('page error:', error) })
      // An empty icon: no favicon request reaches the proxy either.
      await page.route(pageUrl, (route) => route.fulfill({
        contentType: 'text/html; charset=utf-8',
        body: '<!doctype html><meta charset="utf-8"><link rel="icon" href="data:,"><title>EventSource</title>'
      }))
      await page.exposeFunction('record', record)
      await page.goto(pageUrl)
      await page.evaluate((url) => {
        const source = new EventSource(url)
        source.onmessage = (event) => { (window as unknown as { record: (data: string) => void }).record(event.data) }
      }, url)
    } catch (error) {
      await context.close()
      throw error
    }
    return { close: () => context.close() }
  }
}

const missing = browserMissing()
if (missing === undefined) {
  const browser = await launchBrowser(t)
  testDroppedClient(t, "the browser's EventSource (Chromium)", browserEventSource(browser))
} else {
  t.plan(0, missing)
}

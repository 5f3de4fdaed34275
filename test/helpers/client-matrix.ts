import type { Test } from 'tap'
import { CutProxy } from './cut-proxy.js'
import { startApp } from './sse.js'
import { waitFor } from './wait.js'

/**
 * One client: opened on `url`, it hands each message event's data to `record`; `close` ends it for good.
 * A client that takes time to start (a browser page) returns a promise of its handle.
 */
export type OpenClient = (url: string, record: (data: string) => void) => ClientHandle | Promise<ClientHandle>

/** What an opened client gives back. */
export interface ClientHandle {
  close: () => unknown
}

// Text that breaks naive encoders and parsers: CR, LF and CRLF (inside JSON), a leading space, 4-byte characters.
const FIRST = { n: 1, text: 'carriage\rreturn, line\nfeed, both\r\nhere', emoji: '😀𝄞' }
const WHILE_AWAY = ' a leading space,\nthen a second line 𝄞😀'
const LIVE = { n: 3, text: '  two spaces 😀' }

/**
 * The two tests every client of the matrix runs against the real server through a CutProxy:
 * dropped before, then after, its first event, it gets every event once, in order, its text
 * intact, and its reconnect names the id it held. The steps are held in order: the first
 * connection is cut (after FIRST, in the second test); WHILE_AWAY is published while the client
 * is away, so only a resume from the id it holds gets it; LIVE is published only once the
 * reconnect is open at the server and has caught up, so it goes out live, not from history.
 */
export function testDroppedClient (t: Test, name: string, open: OpenClient): void {
  for (const [when, blocks] of [['before', 1], ['after', 2]] as const) {
    t.test(`${name}, dropped ${when} its first event: every event once, in order, intact`, async (t) => {
      const { app, url } = await startApp(t, { retry: 200, heartbeat: 0 })
      const port = Number(new URL(url).port)
      const published: string[] = []
      const publish = async (data: unknown): Promise<void> => {
        await app.pushStream.publish(data)
        published.push(typeof data === 'string' ? data : JSON.stringify(data))
      }
      // Settles as the publish of WHILE_AWAY does, once the reconnect has reached the proxy.
      let publishingWhileAway!: (publishing: Promise<void>) => void
      const whileAwayPublished = new Promise<void>((resolve) => { publishingWhileAway = resolve })
      const proxy = await CutProxy.start(t, port, [
        // The first connection is cut after its opening block, or after the first event too.
        { blocks },
        // An event is published while the client is away: only a resume from the id it holds gets it.
        {
          before: async () => {
            const publishing = publish(WHILE_AWAY)
            publishingWhileAway(publishing)
            await publishing
          }
        }
      ])
      const expected = [...(blocks === 2 ? [JSON.stringify(FIRST)] : []), WHILE_AWAY, JSON.stringify(LIVE)]
      const got: string[] = []
      const client = await open(`${proxy.url}/events`, (data) => got.push(data))
      t.teardown(() => client.close())
      if (blocks === 2) {
        await waitFor(() => app.pushStream.stats().connections === 1, 'the first connection')
        await publish(FIRST)
        await waitFor(() => got.length === 1, 'the client to get the first event on its first connection')
      }
      // The first connection is cut; the reconnect reaches the proxy, which publishes WHILE_AWAY before letting it through.
      await waitFor(() => proxy.requests.length === 2, 'the client to reconnect', 10_000)
      await waitFor(whileAwayPublished, 'the event published while the client was away')
      // Only the reconnect carries WHILE_AWAY, so once the client has it and the app counts one stream, the
      // first connection is gone and the reconnect is open and caught up: LIVE now goes out live.
      await waitFor(
        () => app.pushStream.stats().connections === 1 && got.length >= published.length,
        () => `the reconnect to catch up (connections: ${app.pushStream.stats().connections}, got: ${JSON.stringify(got)})`,
        10_000
      )
      const gotBeforeLive = [...got]
      const replayedBeforeLive = app.pushStream.stats().replayed
      await publish(LIVE)
      await waitFor(() => got.length >= published.length, 'the live event', 5000)
      t.same(published, expected, blocks === 2 ? 'published FIRST, WHILE_AWAY, LIVE' : 'published WHILE_AWAY, LIVE')
      t.same(gotBeforeLive, expected.slice(0, -1), 'the client had every earlier event before LIVE was published')
      t.same(got, published, 'every event once, in order, its text intact')
      t.equal(replayedBeforeLive, 1, 'WHILE_AWAY came by resuming from the id the client held')
      t.equal(app.pushStream.stats().replayed, replayedBeforeLive, 'LIVE went out live, not replayed')
      t.equal(proxy.requests.length, 2, 'one reconnect')
      t.match(proxy.requests[1], /last-event-id: \d+-\d+|lastEventId=\d+-\d+/i, 'the reconnect named the id the client held')
    })
  }
}

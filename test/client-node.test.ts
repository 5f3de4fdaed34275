// The client under Node (its fetch transport), against the real server: the same module and API as in the page.
import t from 'tap'
import { connect, type StateChange, type StreamMessage } from '../lib/client/index.js'
import { idOf, startApp } from './helpers/sse.js'
import type { Teardown } from './helpers/teardown.js'
import { waitFor } from './helpers/wait.js'
import { startAppProcess } from './proxy/helpers.js'

/** Connects with every state and message recorded; closed in teardown. */
function record (t: Teardown, url: string, options: Parameters<typeof connect>[1] = {}): { changes: StateChange[], messages: StreamMessage[], handle: ReturnType<typeof connect> } {
  const changes: StateChange[] = []
  const messages: StreamMessage[] = []
  const handle = connect(url, { ...options, onState: (change) => changes.push(change), onMessage: (message) => messages.push(message) })
  t.teardown(() => handle.close())
  return { changes, messages, handle }
}

const stateOf = (changes: StateChange[]): string | undefined => changes.at(-1)?.state

t.test('for await gets the events, parsed; break closes the stream; the last id resumes', async (t) => {
  const { app, url } = await startApp(t)
  const changes: StateChange[] = []
  const stream = connect(`${url}/events`, { onState: (change) => changes.push(change) })
  await waitFor(() => stateOf(changes) === 'open', 'open')
  // An iteration gets the messages from when it starts: it starts before the events go out
  // (an awaited publish has written them to the stream).
  const messages = stream[Symbol.asyncIterator]()
  const ids = [await idOf(app.pushStream.publish({ n: 1 })), await idOf(app.pushStream.publish('two', { event: 'chat' }))]
  const got: StreamMessage[] = []
  for await (const message of { [Symbol.asyncIterator]: () => messages }) {
    got.push(message)
    if (got.length === 2) break
  }
  t.same(got.map((m) => [m.id, m.event, m.data]), [[ids[0], 'message', { n: 1 }], [ids[1], 'chat', 'two']], 'every event name, without listing it')
  t.same(changes.map((c) => c.state), ['connecting', 'open', 'closed'], 'leaving the loop closes the client')
  await waitFor(() => app.pushStream.stats().connections === 0, 'its stream ended')

  ids.push(await idOf(app.pushStream.publish('three')))
  const resumed = record(t, `${url}/events`, { lastEventId: ids[1] })
  await waitFor(() => resumed.messages.length === 1, 'the replayed event')
  t.same(resumed.messages.map((m) => m.id), [ids[2]], 'resumed after the given id')
})

t.test('headers from a function before every attempt: a 401 calls onUnauthorized, the next attempt sends the new token', async (t) => {
  const seen: string[] = []
  const { url } = await startApp(t, {}, (app) => {
    app.addHook('onRequest', async (request, reply) => {
      seen.push(String(request.headers.authorization))
      if (request.headers.authorization !== 'Bearer 2') return await reply.code(401).send()
    })
  })
  let token = 1
  const client = record(t, `${url}/events`, {
    headers: async () => ({ authorization: `Bearer ${token}` }),
    onUnauthorized: (status) => { token++; return status === 401 }
  })
  await waitFor(() => stateOf(client.changes) === 'open', 'open')
  t.same(seen, ['Bearer 1', 'Bearer 2'])
  t.same(client.changes.map((c) => [c.state, c.status]), [['connecting', undefined], ['reconnecting', 401], ['connecting', undefined], ['open', undefined]])
})

t.test('an aborted signal: closed at once, no request; a signal that aborts later closes it', async (t) => {
  const { app, url } = await startApp(t)
  const already = record(t, `${url}/events`, { signal: AbortSignal.abort() })
  t.same(already.changes, [{ state: 'closed' }])
  const controller = new AbortController()
  const later = record(t, `${url}/events`, { signal: controller.signal })
  await waitFor(() => stateOf(later.changes) === 'open', 'open')
  t.equal(app.pushStream.stats().connections, 1, 'only the second client connected')
  controller.abort()
  t.equal(stateOf(later.changes), 'closed')
  await waitFor(() => app.pushStream.stats().connections === 0, 'the stream ended')
})

t.test('the stall watchdog: a frozen server (SIGSTOP) is noticed after 2.5 heartbeats; once it runs again the client resumes from the last id', async (t) => {
  const heartbeat = 200
  const server = await startAppProcess(t, { HEARTBEAT: String(heartbeat), RETRY: '50' })
  const url = `http://127.0.0.1:${server.port}/events`
  const watched = record(t, url, { maxDelay: 200 })
  // The control: the same client with the watchdog off stays `open` on a dead connection.
  const unwatched = record(t, url, { maxDelay: 200, stallTimeout: 0 })
  await waitFor(() => stateOf(watched.changes) === 'open' && stateOf(unwatched.changes) === 'open', 'both open')
  const ids = [await server.publish('before')]
  await waitFor(() => watched.messages.length === 1 && unwatched.messages.length === 1, 'the first event')

  server.child.kill('SIGSTOP')
  const frozenAt = Date.now()
  await waitFor(() => watched.changes.some((c) => c.state === 'reconnecting'), 'the watched client gives the connection up', 5000)
  const noticed = Date.now() - frozenAt
  t.comment(`frozen server noticed after ${noticed} ms (heartbeat ${heartbeat} ms)`)
  t.ok(noticed >= 2 * heartbeat, `not before two heartbeats could have passed (${noticed} ms)`)
  t.ok(noticed < 6 * heartbeat, `within a few heartbeats (${noticed} ms)`)
  t.equal(stateOf(unwatched.changes), 'open', 'without the watchdog the dead connection still looks open')

  server.child.kill('SIGCONT')
  ids.push(await server.publish('after'))
  await waitFor(() => watched.messages.length === 2, 'the event published after the freeze')
  t.same(watched.messages.map((m) => m.id), ids, 'each event once, in order')
  t.same(watched.changes.map((c) => c.state).slice(0, 4), ['connecting', 'open', 'reconnecting', 'connecting'])
  t.equal(stateOf(watched.changes), 'open')
})

import t from 'tap'
import Fastify from 'fastify'
import pushStream from '../../lib/index.js'
import { openStream, rawGet, startApp, type StreamClient } from '../helpers/sse.js'
import { waitFor } from '../helpers/wait.js'
import { nextMessage, portOf, spawnFixture, stopChild } from './helpers.js'

const MiB = 1024 * 1024
const RESET_DATA = '{"reason":"unknown-last-event-id"}'

/** Hostile ids, each made from the newest id at the moment it is sent, so "from the future" stays in the future. */
const HOSTILE: Record<string, (newest: string) => string> = {
  '8 KiB of x': () => 'x'.repeat(8192),
  '8 KiB in the form of an id': (newest) => `${newest.split('-')[0]}-${'0'.repeat(8000)}1`,
  'not an id: a word': () => 'hello',
  'not an id: a dash': () => '-',
  'not an id: no sequence': (newest) => `${newest.split('-')[0]}-`,
  'not an id: negative': (newest) => `-${newest}`,
  'not an id: a fraction': (newest) => `${newest.split('-')[0]}.5-0`,
  'not an id: hexadecimal': (newest) => `0x${Number(newest.split('-')[0]).toString(16)}-0`,
  'not an id: three parts': (newest) => `${newest}-0`,
  'not an id: spaces inside': (newest) => newest.replace('-', ' - '),
  'from the future: an hour ahead': (newest) => `${Number(newest.split('-')[0]) + 3_600_000}-0`,
  'from the future: the same ms, a later sequence': (newest) => `${newest.split('-')[0]}-${Number(newest.split('-')[1]) + 1000}`,
  'from the future: the largest ms an id may hold': () => '99999999999999-0'
}

t.test('a hostile Last-Event-ID gets a reset, no replay, and the stream goes on', async (t) => {
  const { app, url } = await startApp(t, { history: 100 })
  const bystander = await openStream(`${url}/events`)
  t.teardown(() => bystander.close())
  let newest = ''
  let published = 0
  const publish = async (data: string): Promise<void> => {
    published++
    newest = (await app.pushStream.publish(data)).id
  }
  for (let n = 0; n < 20; n++) await publish(String(n))

  /** The client's first event is a reset to the newest id; the next one is live; nothing was replayed. */
  async function expectReset (name: string, client: StreamClient, resetTo: string): Promise<void> {
    const before = app.pushStream.stats()
    await waitFor(client.take(1), `${name}: the reset`, 5000)
    t.equal(client.status, 200, `${name}: 200`)
    t.same(client.events.map((e) => [e.event, e.id, e.data]), [['reset', resetTo, RESET_DATA]], `${name}: one reset to the newest id`)
    await publish(`after ${name}`)
    await waitFor(client.take(2), `${name}: a live event`, 5000)
    t.equal(client.events[1]?.data, `after ${name}`, `${name}: then the live event, nothing replayed`)
    t.equal(app.pushStream.stats().replayed, before.replayed, `${name}: stats().replayed unchanged`)
    client.close()
  }

  for (const [name, make] of Object.entries(HOSTILE)) {
    const resetTo = newest
    await expectReset(`${name} (header)`, await openStream(`${url}/events`, { 'last-event-id': make(newest) }), resetTo)
    const again = newest
    await expectReset(`${name} (query)`, await openStream(`${url}/events?lastEventId=${encodeURIComponent(make(newest))}`), again)
  }

  const nulQuery = newest
  await expectReset('NUL inside (query)', await openStream(`${url}/events?lastEventId=${encodeURIComponent(`${newest}\0`)}`), nulQuery)
  const utf8 = newest
  await expectReset('not an id: non-ASCII (query)', await openStream(`${url}/events?lastEventId=${encodeURIComponent('１２３-０')}`), utf8)

  // A header with a NUL cannot be sent by Node's client: written by hand. Node's HTTP parser may refuse
  // the request outright (400) before any route runs; either way there is no replay and no crash.
  const before = app.pushStream.stats()
  const socket = rawGet(portOf(url), '/events', { 'last-event-id': `${newest.slice(0, 4)}\0${newest.slice(4)}` })
  let answer = ''
  socket.setEncoding('latin1')
  socket.on('data', (chunk: string) => { answer += chunk })
  await waitFor(new Promise<void>((resolve) => {
    const check = (): void => { if (/^HTTP\/1\.1 400/.test(answer) || /event: reset\n/.test(answer)) resolve() }
    socket.on('data', check)
    socket.once('close', () => resolve())
  }), 'an answer to a NUL header', 5000)
  socket.destroy()
  t.match(answer, /^HTTP\/1\.1 (400|200 OK[\s\S]*event: reset\n)/, `NUL inside (header): ${answer.split('\r\n')[0]}`)
  t.equal(app.pushStream.stats().replayed, before.replayed, 'NUL inside (header): nothing replayed')

  await publish('the end')
  await waitFor(bystander.take(published), 'the bystander', 5000)
  t.equal(bystander.events.length, published, `a client that sent nothing hostile received all ${published} events throughout`)
  t.equal(bystander.events.at(-1)?.data, 'the end', 'in order, up to the last one')
})

// The replay storm's budgets, for 2,000 clients each 1,000 small events behind.
const CLIENTS = 2_000
const BEHIND = 1_000
const TIME_BUDGET_MS = 10_000
const HEAP_BUDGET = 128 * MiB

t.test(`replay storm: ${CLIENTS} clients reconnect at once, each ${BEHIND} events behind`, async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(pushStream, { interval: 0, history: BEHIND * 2, heartbeat: 0, maxConnections: CLIENTS + 10 })
  // A backlog that holds every connection at once, so none waits out a dropped SYN.
  await app.listen({ port: 0, host: '127.0.0.1', backlog: 4096 })
  const port = (app.server.address() as { port: number }).port

  for (let n = 0; n < 100; n++) app.pushStream.publish(String(-n))
  const lastSeen = (await app.pushStream.publish('0')).id
  for (let n = 1; n <= BEHIND; n++) app.pushStream.publish(String(n))

  const clients = spawnFixture('replay-clients.ts')
  t.teardown(() => stopChild(clients))
  await nextMessage(clients, 'ready')

  // Sampled during the storm without forcing a GC: the peak includes garbage, which the budget allows for.
  const { heapUsed: baseHeap, arrayBuffers: baseBuffers } = process.memoryUsage()
  let peak = 0
  const sampler = setInterval(() => {
    const { heapUsed, arrayBuffers } = process.memoryUsage()
    peak = Math.max(peak, heapUsed + arrayBuffers - baseHeap - baseBuffers)
  }, 5)
  t.teardown(() => clearInterval(sampler))

  const caughtUp = nextMessage<{ type: 'caught-up', ms: number }>(clients, 'caught-up')
  clients.send({ type: 'connect', port, clients: CLIENTS, lastEventId: lastSeen, first: 1, expect: BEHIND })
  const { ms } = await waitFor(caughtUp, 'every client to catch up', TIME_BUDGET_MS * 2)
  clearInterval(sampler)
  t.equal(app.pushStream.stats().connections, CLIENTS, `${CLIENTS} streams open`)
  t.equal(app.pushStream.stats().replayed, CLIENTS * BEHIND, `stats().replayed is ${CLIENTS} × ${BEHIND}`)
  t.equal(app.pushStream.stats().resets, 0, 'no reset')

  const done = nextMessage<{ type: 'done', exact: number, wrong: string[] }>(clients, 'done')
  app.pushStream.publish(String(BEHIND + 1))
  const { exact, wrong } = await waitFor(done, 'the live event', 10_000)
  t.equal(exact, CLIENTS, `every client got exactly events 1..${BEHIND} then the live one${wrong.length > 0 ? `; ${wrong.join('; ')}` : ''}`)
  t.ok(ms < TIME_BUDGET_MS, `all caught up in ${ms.toFixed(0)} ms (budget ${TIME_BUDGET_MS} ms)`)
  t.ok(peak < HEAP_BUDGET, `server memory peaked ${(peak / MiB).toFixed(1)} MiB above where it started (budget ${HEAP_BUDGET / MiB} MiB)`)
})

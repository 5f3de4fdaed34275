import t from 'tap'
import http from 'node:http'
import { once } from 'node:events'
import type { AddressInfo } from 'node:net'
import type { Connection } from '../lib/connection.js'
import type { Engine } from '../lib/engine/engine.js'
import { LocalEngine } from '../lib/engine/local.js'
import { SharedEngine } from '../lib/engine/shared.js'
import type { HistoryEntry } from '../lib/history.js'
import { Hub } from '../lib/hub.js'
import { Resume, type ResumeState } from '../lib/resume.js'
import { formatEventId } from '../lib/wire/event-id.js'
import { RESET_DATA, RESET_EVENT } from '../lib/wire/protocol.js'
import { SharedLog } from './helpers/log-adapter.js'
import { StreamClient } from './helpers/sse.js'
import type { Teardown } from './helpers/teardown.js'
import { waitFor } from './helpers/wait.js'

const HEADERS = { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-cache' }
const LAST = Buffer.from('retry: 5000\n\n')

/** What an adapter logged at `warn`. */
type Warnings = Array<{ obj: object, msg: string }>

/**
 * A hub, an engine and a `Resume` put together the way `lib/broker.ts` does
 * (each tick's events recorded in history, broadcast, then `afterTick()`),
 * behind a node:http server on 127.0.0.1 whose requests open a stream:
 * subscribed at once without a `Last-Event-ID`, else resumed after it.
 * `ticks` records, after each tick, its newest id and the state of every
 * stream the test watches. Everything is closed in teardown.
 */
async function assemble (t: Teardown, makeEngine: (deliver: (entry: HistoryEntry) => void) => Engine) {
  let pending: HistoryEntry[] = []
  const watched = new Set<Connection>()
  const ticks: Array<{ newest: string, states: Array<ResumeState | undefined> }> = []
  const flush = (): void => {
    const entries = pending
    if (entries.length === 0) return
    pending = []
    for (const entry of entries) engine.history.append(entry)
    hub.broadcast(entries)
    resume.afterTick()
    ticks.push({ newest: formatEventId(engine.history.newest), states: [...watched].map((connection) => resume.stateOf(connection)) })
  }
  const engine = makeEngine((entry) => {
    pending.push(entry)
    if (pending.length === 1) setImmediate(flush)
  })
  const hub: Hub = new Hub({ heartbeatMs: 0, maxBufferedBytes: 1024 * 1024, onEnd: (connection) => { resume.forget(connection) } })
  const resume = new Resume(hub, engine)

  const opening: Array<(opened: { connection: Connection, stateAtStart: ResumeState | undefined }) => void> = []
  const server = http.createServer((req, res) => {
    const lastEventId = req.headers['last-event-id']
    const channels = new Set(String(req.headers['x-channels'] ?? 'default').split(','))
    const connection = hub.open(res, HEADERS, { channels, address: '127.0.0.1', log: { debug: () => {} } })
    if (lastEventId === undefined) hub.subscribe(connection)
    else resume.start(connection, lastEventId as string)
    opening.shift()?.({ connection, stateAtStart: resume.stateOf(connection) })
  })
  t.teardown(async () => {
    hub.closeAll(() => LAST)
    server.closeAllConnections()
    await new Promise((resolve) => server.close(resolve))
    await engine.close()
  })
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as AddressInfo

  /** Opens a stream, resuming after `lastEventId` when given; `stateAtStart` is its state right after `Resume.start`. */
  const connect = async (lastEventId?: string, channels = 'default') => {
    const opened = new Promise<{ connection: Connection, stateAtStart: ResumeState | undefined }>((resolve) => opening.push(resolve))
    const headers: Record<string, string> = { 'x-channels': channels }
    if (lastEventId !== undefined) headers['last-event-id'] = lastEventId
    const client = new StreamClient(`http://127.0.0.1:${port}/events`, headers)
    t.teardown(() => { client.close() })
    const { connection, stateAtStart } = await opened
    await client.opened()
    return { client, connection, stateAtStart }
  }

  /** Publishes through the engine and waits until this instance has delivered it. */
  const publish = async (text: string, channel = 'default'): Promise<string> => {
    const id = await engine.append({ event: undefined, channel, text })
    await waitFor(() => formatEventId(engine.history.newest) === id, `${id} to be delivered`)
    return id
  }

  return { hub, resume, engine, connect, publish, ticks, watch: (connection: Connection) => watched.add(connection) }
}

/** Assembles the pieces on a `SharedEngine`; `adapter` is this instance's, for `lag()` and `catchUp()`. */
async function assembleShared (t: Teardown, log: SharedLog, historySize: number, warnings: Warnings = []) {
  let adapter: ReturnType<SharedLog['adapter']> | undefined
  let started: Promise<void> = Promise.resolve()
  const parts = await assemble(t, (deliver) => {
    const adapterLog = { info: () => {}, warn: (obj: object, msg: string) => { warnings.push({ obj, msg }) }, error: () => {} }
    adapter = log.adapter()
    const engine = new SharedEngine(adapter, historySize, { deliver, lost: () => {} }, adapterLog)
    started = engine.start(false)
    return engine
  })
  await started
  return { ...parts, adapter: adapter as ReturnType<SharedLog['adapter']> }
}

/** The ids and data a client parsed. */
const seen = (client: StreamClient): Array<Array<string | undefined>> => client.events.map((e) => [e.id, e.data])

t.test('LocalEngine: a known id is replayed from history and the stream goes live at once', async (t) => {
  const { hub, resume, connect, publish } = await assemble(t, (deliver) => new LocalEngine(100, deliver))
  const one = await publish('one')
  const other = await publish('other', 'b')
  const two = await publish('two')
  const three = await publish('three')
  const { client, connection, stateAtStart } = await connect(one)
  t.equal(stateAtStart, undefined, 'no state: replayed and subscribed in the same step')
  t.equal(resume.stateOf(connection), undefined)
  t.equal(hub.replayed, 2, 'the events after the id, on its channels only')
  // Published before the client has read its replay: it is already subscribed.
  const four = await publish('four')
  await client.take(3)
  t.same(seen(client), [[two, 'two'], [three, 'three'], [four, 'four']], 'the replay, then live, each once')
  t.notOk(seen(client).some(([id]) => id === other), 'nothing from another channel')
  t.equal(hub.resets, 0)
})

t.test('LocalEngine: an id at the newest event replays nothing and goes live', async (t) => {
  const { hub, connect, publish } = await assemble(t, (deliver) => new LocalEngine(100, deliver))
  const one = await publish('one')
  const { client, stateAtStart } = await connect(one)
  t.equal(stateAtStart, undefined)
  const two = await publish('two')
  await client.take(1)
  t.same(seen(client), [[two, 'two']], 'the next event, live')
  t.equal(hub.replayed, 0)
  t.equal(hub.resets, 0)
})

t.test('LocalEngine: an unknown or malformed id gets a reset at once, then live events', async (t) => {
  const { hub, resume, engine, connect, publish } = await assemble(t, (deliver) => new LocalEngine(2, deliver))
  const one = await publish('one')
  await publish('two')
  await publish('three')
  await publish('four') // history holds three and four; one is gone, and so is two (after which it could replay)
  const newest = formatEventId(engine.history.newest)
  const ids = [one, '1-1', '99999999999999-0', 'not-an-id', '']
  const streams = []
  for (const id of ids) streams.push(await connect(id))
  for (const [i, { connection, stateAtStart }] of streams.entries()) {
    t.equal(stateAtStart, undefined, `${JSON.stringify(ids[i])}: no state, nothing to ask`)
    t.equal(resume.stateOf(connection), undefined)
  }
  t.equal(hub.resets, ids.length)
  t.equal(hub.replayed, 0)
  const five = await publish('five')
  for (const [i, { client }] of streams.entries()) {
    const events = await client.take(2)
    t.same(events.map((e) => [e.id, e.event, e.data]), [[newest, RESET_EVENT, RESET_DATA], [five, undefined, 'five']], `${JSON.stringify(ids[i])}: a reset at the newest id, then live`)
  }
})

t.test('SharedEngine: an id older than history is asked of the log; the stream waits in "asking", then gets older and newer events once, then live', async (t) => {
  const log = new SharedLog()
  const { hub, resume, connect, publish } = await assembleShared(t, log, 2)
  const ids = [await publish('one'), await publish('two'), await publish('three'), await publish('four'), await publish('five')]
  let answer = (): void => {}
  log.hold = new Promise((resolve) => { answer = resolve })
  const { client, connection, stateAtStart } = await connect(ids[0])
  t.same(stateAtStart, { phase: 'asking' })
  const watcher = await connect()
  ids.push(await publish('six'))
  await watcher.client.take(1)
  t.same(resume.stateOf(connection), { phase: 'asking' }, 'still asking while the log has not answered')
  t.same(client.events, [], 'nothing written while asking, not even an event published meanwhile')
  t.equal(hub.replayed, 0)

  answer()
  await client.take(5)
  t.equal(resume.stateOf(connection), undefined, 'live once answered')
  t.equal(hub.replayed, 5)
  ids.push(await publish('seven'))
  await watcher.client.take(2)
  await client.take(6)
  t.same(seen(client), [
    [ids[1], 'two'], [ids[2], 'three'], [ids[3], 'four'], // from the log
    [ids[4], 'five'], [ids[5], 'six'], // from history, six published while asking
    [ids[6], 'seven'] // live
  ], 'in order, each once')
  t.equal(hub.resets, 0)
})

t.test('SharedEngine: a client ahead of this instance waits in "waiting" until the instance caught up, then goes live with nothing twice', async (t) => {
  const log = new SharedLog()
  const { hub, resume, connect, publish, adapter, ticks, watch } = await assembleShared(t, log, 10)
  // The faster instance: it publishes to the same log.
  const faster = log.adapter()
  await faster.start({ deliver: () => {}, lost: () => {}, log: { info: () => {}, warn: () => {}, error: () => {} } })
  t.teardown(() => faster.close())
  const ids = [await publish('one'), await publish('two')]
  adapter.holdDeliveries()
  for (const text of ['three', 'four', 'five']) ids.push(await faster.publish({ channel: 'default', event: undefined, data: text }))

  // The client saw four on the faster instance; this one has delivered two.
  const { client, connection, stateAtStart } = await connect(ids[3])
  watch(connection)
  t.same(stateAtStart, { phase: 'asking' }, 'history cannot answer for an id it has not seen: the log is asked')
  await waitFor(() => resume.stateOf(connection)?.phase === 'waiting', 'the stream to wait')
  t.same(resume.stateOf(connection), { phase: 'waiting', lastId: { ms: 1, seq: 4 } })
  t.same(client.events, [])

  await adapter.catchUp()
  t.same(ticks.slice(-3), [
    { newest: ids[2], states: [{ phase: 'waiting', lastId: { ms: 1, seq: 4 } }] },
    { newest: ids[3], states: [undefined] },
    { newest: ids[4], states: [undefined] }
  ], 'still waiting after three; released by the tick that delivered four; live for five')
  ids.push(await faster.publish({ channel: 'default', event: undefined, data: 'six' }))
  await client.take(2)
  t.same(seen(client), [[ids[4], 'five'], [ids[5], 'six']], 'only what it had not seen, once each')
  t.equal(hub.resets, 0)
  t.equal(hub.replayed, 0)
})

t.test('SharedEngine: a stream that ends while asking is forgotten, and nothing is written for it', async (t) => {
  const log = new SharedLog()
  const { hub, resume, connect, publish } = await assembleShared(t, log, 1)
  const ids = [await publish('one'), await publish('two'), await publish('three')]
  let answer = (): void => {}
  log.hold = new Promise((resolve) => { answer = resolve })
  const leaving = await connect(ids[0])
  const staying = await connect(ids[0])
  t.same(resume.stateOf(leaving.connection), { phase: 'asking' })
  leaving.client.close()
  await waitFor(() => hub.size === 1, 'the stream to end')
  t.equal(resume.stateOf(leaving.connection), undefined, 'forgotten at its end')
  answer()
  // Both were asked with the same hold; the one that stayed had its answer after the one that left.
  await staying.client.take(2)
  t.same(seen(staying.client), [[ids[1], 'two'], [ids[2], 'three']])
  t.equal(hub.replayed, 2, 'only the stream that stayed was replayed to')
  t.equal(hub.resets, 0)
  t.equal(hub.size, 1, 'the one that left is not back')
})

t.test('SharedEngine: a stream that ends while waiting is forgotten', async (t) => {
  const log = new SharedLog()
  const { hub, resume, engine, connect, publish, adapter } = await assembleShared(t, log, 10)
  await publish('one')
  adapter.holdDeliveries()
  // Stored in the log, not yet delivered here: a client that saw it elsewhere is ahead of this instance.
  const two = await engine.append({ event: undefined, channel: 'default', text: 'two' })
  const leaving = await connect(two)
  await waitFor(() => resume.stateOf(leaving.connection)?.phase === 'waiting', 'the stream to wait')
  leaving.client.close()
  await waitFor(() => hub.size === 0, 'the stream to end')
  t.equal(resume.stateOf(leaving.connection), undefined, 'forgotten at its end')
  await adapter.catchUp()
  const watcher = await connect()
  await publish('three')
  await watcher.client.take(1)
  t.equal(resume.stateOf(leaving.connection), undefined)
  t.equal(hub.size, 1, 'only the watcher')
  t.equal(hub.replayed, 0)
  t.equal(hub.resets, 0)
})

t.test('SharedEngine: a log that fails to answer, or does not know the id, gets the client a reset, then live events', async (t) => {
  const log = new SharedLog()
  const warnings: Warnings = []
  const { hub, resume, engine, connect, publish } = await assembleShared(t, log, 1, warnings)
  const ids = [await publish('one'), await publish('two'), await publish('three')]
  const newest = formatEventId(engine.history.newest)
  log.failure = new Error('the log is unreachable')
  const failed = await connect(ids[0])
  t.same(failed.stateAtStart, { phase: 'asking' })
  await failed.client.take(1)
  t.equal(resume.stateOf(failed.connection), undefined)
  t.same(failed.client.events.map((e) => [e.id, e.event, e.data]), [[newest, RESET_EVENT, RESET_DATA]])
  t.equal(warnings.length, 1, 'the failure is logged')
  t.match(warnings[0], { msg: /could not replay/, obj: { err: { message: 'the log is unreachable' } } })
  log.failure = undefined

  const unknown = await connect('1-999')
  t.same(unknown.stateAtStart, { phase: 'asking' }, 'well formed, unknown here: the log is asked')
  await unknown.client.take(1)
  t.same(unknown.client.events.map((e) => [e.id, e.event]), [[newest, RESET_EVENT]])
  t.equal(hub.resets, 2)
  t.equal(hub.replayed, 0)

  const four = await publish('four')
  t.same((await failed.client.take(2))[1]?.data, 'four', 'live after the reset')
  t.same((await unknown.client.take(2))[1]?.id, four)
})

import t from 'tap'
import { openStream, request, startApp } from '../helpers/sse.js'
import { LogCapture } from '../helpers/log.js'
import { waitFor } from '../helpers/wait.js'
import { LeanReader } from './helpers.js'

/** A value JSON cannot serialize. */
function circular (): Record<string, unknown> {
  const value: Record<string, unknown> = { name: 'loop' }
  value.self = value
  return value
}

/** True when a logged error, or its cause, has `code`. */
const logged = (log: LogCapture, code: string, text?: RegExp): number => log.lines.filter((line) => {
  const err = line.err as { code?: string, message?: string, cause?: { code?: string } } | undefined
  if (err === undefined || (err.code !== code && err.cause?.code !== code)) return false
  return text === undefined || text.test(JSON.stringify(err))
}).length

t.test('a source that throws is logged each tick; the generator, the process and open streams carry on', async (t) => {
  const log = new LogCapture()
  let calls = 0
  const { app, url } = await startApp(t, {
    interval: 5,
    source: () => {
      // Every other tick throws; the others publish.
      if (++calls % 2 === 1) throw new Error(`source broke on call ${calls}`)
      return { n: calls }
    }
  }, undefined, { logger: { level: 'info', stream: log } })
  const client = await openStream(`${url}/events`)
  t.teardown(() => client.close())
  await waitFor(client.take(5), 'five events from the source between its failures', 5000)
  t.ok(logged(log, 'FST_PUSH_STREAM_SOURCE_FAILED', /source broke/) >= 5, 'each throw was logged as FST_PUSH_STREAM_SOURCE_FAILED with its cause')
  t.same(client.events.slice(0, 5).map((e) => (JSON.parse(e.data) as { n: number }).n % 2), [0, 0, 0, 0, 0], 'the stream got the ticks that worked')
  app.pushStream.publish('by hand')
  await waitFor(() => client.events.some((e) => e.data === 'by hand'), 'a hand-published event', 5000)
  t.pass('publishing by hand still reaches the stream')
})

t.test('a source that rejects: generate() rejects with the named error; ticks go on', async (t) => {
  const log = new LogCapture()
  let calls = 0
  const { app, url } = await startApp(t, {
    interval: 5,
    source: async () => {
      if (++calls % 2 === 1) throw new Error(`source rejected on call ${calls}`)
      return { n: calls }
    }
  }, undefined, { logger: { level: 'info', stream: log } })
  const client = await openStream(`${url}/events`)
  t.teardown(() => client.close())
  await waitFor(client.take(3), 'three events from the source', 5000)
  t.ok(logged(log, 'FST_PUSH_STREAM_SOURCE_FAILED', /source rejected/) >= 3, 'each rejection was logged')
  // Pulls never overlap: whichever call is next, one of two pulls in a row rejects.
  const outcomes = await Promise.allSettled([app.pushStream.generate(), app.pushStream.generate()])
  const rejected = outcomes.find((o): o is PromiseRejectedResult => o.status === 'rejected')
  t.equal((rejected?.reason as { code?: string } | undefined)?.code, 'FST_PUSH_STREAM_SOURCE_FAILED', 'generate() rejects with FST_PUSH_STREAM_SOURCE_FAILED')
  const before = client.events.length
  await waitFor(client.take(before + 2), 'more events after the rejections', 5000)
  t.pass('the stream keeps receiving')
})

t.test('a serializer that throws (circular object): named error, nothing sent, the next event goes through', async (t) => {
  const log = new LogCapture()
  let sourceCalls = 0
  const { app, url } = await startApp(t, {
    interval: 5,
    // The source hands over one circular object, then plain ones.
    source: () => ++sourceCalls === 1 ? circular() : undefined
  }, undefined, { logger: { level: 'info', stream: log } })
  const client = await openStream(`${url}/events`)
  t.teardown(() => client.close())

  t.throws(() => app.pushStream.publish(circular()), { code: 'FST_PUSH_STREAM_SERIALIZE_FAILED' }, 'publish throws the named error')
  try {
    app.pushStream.publish(circular())
  } catch (error) {
    t.match(String((error as { cause?: unknown }).cause), /circular/i, 'with the serializer\'s error as its cause')
  }
  await waitFor(() => logged(log, 'FST_PUSH_STREAM_SERIALIZE_FAILED') + logged(log, 'FST_PUSH_STREAM_SOURCE_FAILED', /circular/i) >= 1, 'the source\'s circular value to be logged', 5000)
  t.pass('a circular value from the source is logged, not thrown into the process')
  t.equal(app.pushStream.stats().published, 0, 'nothing was published')
  app.pushStream.publish({ fine: true })
  const [event] = await waitFor(client.take(1), 'the next event', 5000)
  t.equal(event?.data, '{"fine":true}', 'the next event goes through, and nothing of the failed ones was sent')
})

t.test('a custom serializer that throws: the named error, other streams unaffected', async (t) => {
  const { app, url } = await startApp(t, {
    serialize: (data) => {
      if ((data as { bad?: boolean }).bad === true) throw new Error('refused by the serializer')
      return JSON.stringify(data)
    }
  })
  const clients = await Promise.all([openStream(`${url}/events`), openStream(`${url}/events`)])
  t.teardown(() => { for (const client of clients) client.close() })
  t.throws(() => app.pushStream.publish({ bad: true }), { code: 'FST_PUSH_STREAM_SERIALIZE_FAILED' })
  app.pushStream.publish({ bad: false })
  for (const client of clients) t.same((await waitFor(client.take(1), 'an event', 5000)).map((e) => e.data), ['{"bad":false}'])
})

t.test('an authorize that throws or rejects: 500 with the named error, logged; open streams carry on', async (t) => {
  const log = new LogCapture()
  const { app, url } = await startApp(t, {
    authorize: async (_request, channels) => {
      if (channels.includes('throws')) throw new Error('authorization backend down')
      if (channels.includes('rejects')) return await Promise.reject(new Error('authorization timed out'))
      return true
    }
  }, (app) => { app.get('/health', async () => 'ok') }, { logger: { level: 'info', stream: log } })
  const reader = new LeanReader(`${url}/events`, (event) => event.data)
  t.teardown(() => reader.close())
  await waitFor(() => app.pushStream.stats().connections === 1, 'the reader to connect', 5000)

  for (const channel of ['throws', 'rejects']) {
    const answers = await Promise.all(Array.from({ length: 20 }, () => request(`${url}/events?channel=${channel}`)))
    t.ok(answers.every((a) => a.status === 500), `${channel}: 500`)
    t.ok(answers.every((a) => (JSON.parse(a.body) as { code?: string }).code === 'FST_PUSH_STREAM_AUTHORIZE_FAILED'), `${channel}: FST_PUSH_STREAM_AUTHORIZE_FAILED`)
  }
  t.ok(logged(log, 'FST_PUSH_STREAM_AUTHORIZE_FAILED', /backend down/) >= 20, 'the throws were logged with their cause')
  t.ok(logged(log, 'FST_PUSH_STREAM_AUTHORIZE_FAILED', /timed out/) >= 20, 'the rejections were logged with their cause')
  t.equal(app.pushStream.stats().connections, 1, 'no stream was opened for them')
  app.pushStream.publish('after the failures')
  t.same(await waitFor(reader.take(1), 'an event', 5000), ['after the failures'], 'the open stream still receives')
  t.equal((await request(`${url}/health`)).status, 200, 'and the app still answers')
})

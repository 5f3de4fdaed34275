// subscribers(channel) through an adapter that keeps presence: counts summed over instances, a failing
// engine logged once per failure and reported as a named error, the counts taken out at close.
import t from 'tap'
import { LogCapture } from './helpers/log.js'
import { SharedLog } from './helpers/log-adapter.js'
import { openStream, startApp } from './helpers/sse.js'
import { waitFor } from './helpers/wait.js'

t.test('through an adapter: the count of every instance; failures logged once each, counts refused with a named error', async (t) => {
  const log = new SharedLog()
  const capture = new LogCapture()
  const a = await startApp(t, { adapter: log.adapter({ presence: 20 }) }, undefined, { logger: capture.logger })
  const b = await startApp(t, { adapter: log.adapter({ presence: 20 }) })
  await openStream(`${a.url}/events?channel=room`)
  await openStream(`${b.url}/events?channel=room&channel=news`)
  const counted = a.app.pushStream.subscribers('room')
  t.ok(counted instanceof Promise, 'a promise, with an adapter')
  await waitFor(() => [...log.presence.values()].filter((counts) => counts.size > 0).length === 2, 'both instances to report')
  t.equal(await a.app.pushStream.subscribers('room'), 2)
  t.equal(await b.app.pushStream.subscribers('news'), 1)

  const warned = (): number => capture.lines.filter((line) => /could not report presence/.test(line.msg)).length
  log.failure = new Error('the engine is away')
  await waitFor(() => warned() === 1, 'the failed report to be logged')
  await t.rejects(Promise.resolve(a.app.pushStream.subscribers('room')), { code: 'FST_PUSH_STREAM_ADAPTER_UNAVAILABLE', message: /presence from the adapter failed: the engine is away/ })
  const reports = log.presence.size
  log.failure = undefined
  // Reported again once the engine is back; a later failure is logged again.
  log.presence.clear()
  await waitFor(() => log.presence.size === reports, 'the next report')
  log.failure = new Error('away again')
  await waitFor(() => warned() === 2, 'the second failure to be logged')
  t.equal(warned(), 2, 'once per failure, not once per report')
  // Closing while the engine is away: the counts cannot be taken out; close() still ends.
  await a.app.close()
  log.failure = undefined
  await b.app.close()
  t.equal(log.presence.size, 1, 'B took its counts out at close; A could not')
})

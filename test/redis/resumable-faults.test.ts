import t from 'tap'
import { setTimeout as sleep } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'
import { LogCapture } from '../helpers/log.js'
import { openStream, startApp } from '../helpers/sse.js'
import type { Teardown } from '../helpers/teardown.js'
import { waitFor } from '../helpers/wait.js'
import { RedisProxy, loadRedisAdapter, redisUrl, skipUnlessRedis, testKey } from '../helpers/redis.js'
import { steppedSource } from '../helpers/sources.js'

/** An instance of the resumable route `/answers/:key`, its adapter on `url` (Redis, or a proxy in front of it). */
async function instance (t: Teardown, key: string, url: string, source: ReturnType<typeof steppedSource>['source'], logger?: LogCapture): Promise<{ app: FastifyInstance, url: string }> {
  const { redisAdapter } = await loadRedisAdapter()
  return await startApp(t, { adapter: redisAdapter({ url }, { key, commandTimeout: 500 }) }, (app) => {
    app.get('/answers/:key', (request, reply) => reply.sse(source, { key: (request.params as { key: string }).key }))
  }, logger === undefined ? {} : { logger: logger.logger })
}

t.test('a follower whose instance loses Redis for a moment waits for it, then gets every event once, in order', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const { state, source } = steppedSource(6)
  const proxy = await RedisProxy.start(t)
  const a = await instance(t, key, redisUrl, source)
  const b = await instance(t, key, proxy.url, source)
  const onA = await openStream(`${a.url}/answers/blip`)
  state.step(2)
  await onA.take(2)
  const onB = await openStream(`${b.url}/answers/blip`)
  await onB.take(2)
  proxy.cut()
  state.step(2)
  await onA.take(4)
  // B's follower reads at least every 100 ms: it has met the outage by now.
  await sleep(300)
  proxy.restore()
  state.step(2)
  await Promise.all([onA.ended, onB.ended])
  const tokens = ['token 1', 'token 2', 'token 3', 'token 4', 'token 5', 'token 6', '{"reason":"done"}']
  t.same(onB.events.map((event) => event.data), tokens, 'every event once, in order, then the end')
  t.same(onB.events.slice(0, 6).map((event) => event.id), ['1', '2', '3', '4', '5', '6'])
  t.equal(state.starts, 1)
})

t.test('a follower whose instance cannot reach Redis for long ends with FST_PUSH_STREAM_ADAPTER_UNAVAILABLE; a new request is told at once', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const { state, source } = steppedSource(6)
  const proxy = await RedisProxy.start(t)
  const a = await instance(t, key, redisUrl, source)
  const b = await instance(t, key, proxy.url, source)
  const onA = await openStream(`${a.url}/answers/outage`)
  const onB = await openStream(`${b.url}/answers/outage`)
  state.step(1)
  await Promise.all([onA.take(1), onB.take(1)])
  proxy.cut()
  const fresh = await openStream(`${b.url}/answers/outage`, { 'last-event-id': '1' })
  await fresh.ended
  t.same(fresh.events.map((event) => [event.event, event.data]), [['push-stream:error', '{"code":"FST_PUSH_STREAM_ADAPTER_UNAVAILABLE"}']])
  await waitFor(onB.ended, 'the follower to give up', 15_000)
  t.same(onB.events.map((event) => event.data), ['token 1', '{"code":"FST_PUSH_STREAM_ADAPTER_UNAVAILABLE"}'])
  t.equal(state.released, 0, 'the producer, on the other instance, runs on')
})

t.test('a producer whose instance cannot record an event stops, logs it once, and its followers elsewhere learn it is lost', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const { state, source } = steppedSource(6)
  const proxy = await RedisProxy.start(t)
  const logs = new LogCapture()
  const a = await instance(t, key, proxy.url, source, logs)
  const b = await instance(t, key, redisUrl, source)
  const onA = await openStream(`${a.url}/answers/unrecorded`)
  state.step(1)
  await onA.take(1)
  const onB = await openStream(`${b.url}/answers/unrecorded`)
  await onB.take(1)
  proxy.cut()
  state.step(1)
  await waitFor(() => state.released === 1, 'the producer to stop')
  t.equal((state.reason as { code: string }).code, 'FST_PUSH_STREAM_ADAPTER_UNAVAILABLE')
  const lines = logs.lines.filter((line) => line.msg === 'fastify-push-stream: a resumable stream\'s event could not be recorded; its producer is stopped')
  t.equal(lines.length, 1)
  t.equal(lines[0]?.key, 'unrecorded')
  await waitFor(onB.ended, 'the follower on the other instance to learn', 10_000)
  t.same(onB.events.map((event) => event.data), ['token 1', '{"code":"FST_PUSH_STREAM_PRODUCER_LOST"}'])
  proxy.restore()
})

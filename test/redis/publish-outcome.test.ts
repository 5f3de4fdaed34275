// A publish whose outcome is not known is said to be so, and a retry with the same idempotencyKey is
// stored once: against a redis-server of the test's own, frozen with SIGSTOP (never the shared one).
import t from 'tap'
import { LogCapture } from '../helpers/log.js'
import { OwnRedis, RecordingContext, loadRedisAdapter, skipUnlessRedis, testClient } from '../helpers/redis.js'
import { StreamClient, startApp } from '../helpers/sse.js'
import { waitFor } from '../helpers/wait.js'

const COMMAND_TIMEOUT = 300

t.test('Redis frozen: a publish sent but not answered is FST_PUSH_STREAM_PUBLISH_UNCONFIRMED and logged; its retry with the same idempotencyKey is stored once', skipUnlessRedis, async (t) => {
  const redis = await OwnRedis.start(t)
  t.teardown(() => redis.thaw())
  const { redisAdapter } = await loadRedisAdapter()
  const log = new LogCapture()
  const { app, url } = await startApp(t, {
    heartbeat: 0,
    adapter: redisAdapter({ url: redis.url }, { key: 'push-stream', commandTimeout: COMMAND_TIMEOUT })
  }, undefined, { logger: { level: 'info', stream: log } })
  const client = new StreamClient(`${url}/events`)
  t.teardown(() => client.close())
  await client.open()
  const first = await app.pushStream.publish('before', { idempotencyKey: 'order-1' })

  redis.freeze()
  const started = performance.now()
  await t.rejects(app.pushStream.publish('during', { idempotencyKey: 'order-2' }), {
    code: 'FST_PUSH_STREAM_PUBLISH_UNCONFIRMED',
    statusCode: 503,
    message: /may have been stored/
  }, 'sent, and not answered in time: not said to be lost')
  t.ok(performance.now() - started >= COMMAND_TIMEOUT - 20, 'after commandTimeout')
  const silence = log.lines.find((line) => /did not answer/.test(line.msg))
  t.equal(silence?.level, 40, 'the freeze is logged at warn')
  t.match(silence, { commandTimeout: COMMAND_TIMEOUT })

  redis.thaw()
  // Redis runs what it was sent: the event was stored after all, and every client gets it.
  await client.until(() => client.events.length === 2, 'the unconfirmed event to arrive')
  const stored = client.events[1]
  t.equal(stored?.data, 'during')
  await waitFor(() => log.lines.some((line) => /answers again/.test(line.msg) && line.level === 30), 'the recovery to be logged at info')

  // The caller retries, as it should for an unknown outcome: stored once, answered with the first id.
  const retried = await app.pushStream.publish('during', { idempotencyKey: 'order-2' })
  t.equal(retried.id, stored?.id, 'the retry is answered with the first one\'s id')
  const again = await app.pushStream.publish('before', { idempotencyKey: 'order-1' })
  t.equal(again.id, first.id, 'so is a repeat of an earlier one')
  await app.pushStream.publish('after')
  await client.until(() => client.events.length === 3, 'the next event')
  t.same(client.events.map((event) => event.data), ['before', 'during', 'after'], 'every event once: no duplicate from the retries')
})

t.test('the adapter stores a message once per idempotency key, decided in Redis: retries at once, and after the window', skipUnlessRedis, async (t) => {
  const redis = await OwnRedis.start(t)
  const { redisAdapter } = await loadRedisAdapter()
  const adapter = redisAdapter({ url: redis.url }, { key: 'push-stream' })
  t.teardown(() => adapter.close())
  await adapter.start(new RecordingContext())
  const message = { channel: 'default', event: undefined, data: 'once' }
  // Five retries in flight together: one event, one id for all.
  const ids = await Promise.all(Array.from({ length: 5 }, async () => await adapter.publish(message, { idempotencyKey: 'k', idempotencyWindow: 60_000 })))
  t.equal(new Set(ids).size, 1, 'one id for every retry')
  // Without a window, the plugin's: still the first one's id.
  t.equal(await adapter.publish(message, { idempotencyKey: 'k' }), ids[0])
  const probe = testClient(t, redis.url)
  t.equal(await probe.xlen('push-stream'), 1, 'stored once')
  t.ok(await probe.pttl('push-stream:published:k') > 59_000, 'the key is kept for its window')
  // Past its window, a key is new again.
  const short = await adapter.publish(message, { idempotencyKey: 'short', idempotencyWindow: 1 })
  // Asked until Redis says the key has expired: a millisecond, a few round trips.
  let asked = 0
  while (await probe.exists('push-stream:published:short') === 1 && asked < 1000) asked++
  t.not(await adapter.publish(message, { idempotencyKey: 'short', idempotencyWindow: 1 }), short, 'stored anew after its window')
  t.equal(await probe.xlen('push-stream'), 3)
})

// The generator is fenced by its lease: an instance appends what it generates only while its token
// holds the lease, so a FLUSHALL (the lease key gone, another instance taking it) never lets two
// instances generate at once. Against a redis-server of the test's own: the shared one is never flushed.
import t from 'tap'
import type { FastifyInstance } from 'fastify'
import type { PushStreamAdapter } from '../../lib/adapter.js'
import { LogCapture } from '../helpers/log.js'
import { OwnRedis, RecordingContext, loadRedisAdapter, skipUnlessRedis, testClient } from '../helpers/redis.js'
import { StreamClient, startApp } from '../helpers/sse.js'
import { waitFor } from '../helpers/wait.js'

const KEY = 'push-stream'
const message = { channel: 'default', event: undefined, data: 'x' }

t.test('a publish fenced by a lease is appended only while this instance\'s token holds it', skipUnlessRedis, async (t) => {
  const redis = await OwnRedis.start(t)
  const { redisAdapter } = await loadRedisAdapter()
  const [a, b] = await Promise.all([0, 1].map(async () => {
    const adapter = redisAdapter({ url: redis.url }, { key: KEY })
    t.teardown(() => adapter.close())
    await adapter.start(new RecordingContext())
    return adapter
  })) as [PushStreamAdapter, PushStreamAdapter]
  t.equal(await a.lease('generator', 3000), true, 'A holds the lease')
  t.match(await a.publish(message, { lease: 'generator' }), /^\d+-\d+$/, 'A appends while it holds it')
  await t.rejects(b.publish(message, { lease: 'generator' }), { code: 'FST_PUSH_STREAM_LEASE_LOST', name: 'FastifyError' }, 'B, which does not hold it, appends nothing')

  await redis.flushAll()
  await t.rejects(a.publish(message, { lease: 'generator' }), { code: 'FST_PUSH_STREAM_LEASE_LOST' }, 'the lease gone with the flush: A appends nothing')
  t.equal(await b.lease('generator', 3000), true, 'B takes the lease')
  await t.rejects(a.publish(message, { lease: 'generator' }), { code: 'FST_PUSH_STREAM_LEASE_LOST' }, 'nor once B holds it')
  const id = await b.publish(message, { lease: 'generator' })
  t.match(id, /^\d+-\d+$/)
  t.match(await a.publish(message), /^\d+-\d+$/, 'an unfenced publish is not held back')
  const probe = new (await import('ioredis')).Redis(redis.url)
  t.teardown(() => probe.disconnect())
  // (An instance that finds the flush marks the gap with an entry of its own, which holds no event.)
  const events = (await probe.xrange(KEY, '-', '+')).filter(([, fields]) => fields.includes('data'))
  t.equal(events.length, 2, 'only the two allowed publishes since the flush are in the stream')
})

t.test('after a FLUSHALL, the old holder stops generating before the new one starts: never two generators at once', skipUnlessRedis, async (t) => {
  const redis = await OwnRedis.start(t)
  const { redisAdapter } = await loadRedisAdapter()
  const logs = [new LogCapture(), new LogCapture()]
  const apps: FastifyInstance[] = []
  const urls: string[] = []
  for (const [n, name] of ['A', 'B'].entries()) {
    let count = 0
    const { app, url } = await startApp(t, {
      interval: 20,
      heartbeat: 0,
      adapter: redisAdapter({ url: redis.url }, { key: KEY }),
      source: () => ({ from: name, n: ++count })
    }, undefined, { logger: { level: 'warn', stream: logs[n] } })
    apps.push(app)
    urls.push(url)
  }
  const client = new StreamClient(`${urls[1]}/events`)
  t.teardown(() => client.close())
  await client.opened()
  const sources = (): string[] => client.events.map((event) => (JSON.parse(event.data) as { from: string }).from)
  // Whichever instance took the lease first generates.
  await waitFor(() => sources().length >= 5, 'the generator to run')
  const first = sources()[0] as string
  const other = first === 'A' ? 'B' : 'A'

  // The flush falls right after the holder renewed its lease (its time to live jumps back up): the other
  // instance, which asks once a second too, then asks before the holder does again, and takes the lease.
  const probe = testClient(t, redis.url)
  const leaseKey = `${KEY}:lease:generator`
  for (let attempt = 0; attempt < 3 && !sources().includes(other); attempt++) {
    let last = await probe.pttl(leaseKey)
    for (let polls = 0; polls < 200_000; polls++) {
      const ttl = await probe.pttl(leaseKey)
      if (ttl > last) break
      last = ttl
    }
    await probe.flushall()
    const before = sources().length
    await waitFor(() => sources().length >= before + 60, 'the generator to run again after the flush', 10_000)
  }
  t.ok(sources().includes(other), `the lease moved from ${first} to ${other}`)
  const after = sources().length
  await waitFor(() => sources().length >= after + 20, 'more from the new holder')
  const order = sources().join('')
  t.match(order, new RegExp(`^${first}+${other}+$`), `every message of ${first}, then every message of ${other}: none interleaved`)
  const oldHolder = logs[first === 'A' ? 0 : 1] as LogCapture
  t.ok(oldHolder.lines.some((line) => line.code === 'FST_PUSH_STREAM_LEASE_LOST' || (line.err as { code?: string } | undefined)?.code === 'FST_PUSH_STREAM_LEASE_LOST'), `${first} says why it stopped`)
})

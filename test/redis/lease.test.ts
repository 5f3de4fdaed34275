import t from 'tap'
import type { PushStreamAdapter } from '../../lib/adapter.js'
import type { Teardown } from '../helpers/teardown.js'
import { RecordingContext, loadRedisAdapter, redisUrl, skipUnlessRedis, testClient, testKey } from '../helpers/redis.js'

async function instances (t: Teardown, key: string, count: number): Promise<PushStreamAdapter[]> {
  const { redisAdapter } = await loadRedisAdapter()
  const adapters: PushStreamAdapter[] = []
  for (let n = 0; n < count; n++) {
    const adapter = redisAdapter({ url: redisUrl }, { key })
    t.teardown(() => adapter.close())
    await adapter.start(new RecordingContext())
    adapters.push(adapter)
  }
  return adapters
}

t.test('one holder at a time; the holder renews; others take over only when it expires or is released', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const redis = testClient(t)
  const [a, b, c] = await instances(t, key, 3) as [PushStreamAdapter, PushStreamAdapter, PushStreamAdapter]
  const leaseKey = `${key}:lease:generator`
  // Three instances ask at the same moment: exactly one gets it.
  const first = await Promise.all([a, b, c].map(async (adapter) => await adapter.lease('generator', 300)))
  t.equal(first.filter(Boolean).length, 1, 'one holder')
  const holder = [a, b, c][first.indexOf(true)] as PushStreamAdapter
  const others = [a, b, c].filter((adapter) => adapter !== holder)
  const token = await redis.get(leaseKey)
  t.match(token, /^[0-9a-f-]{36}$/, 'the lease holds a random token')

  // Renewals keep it past its first ttl; nobody else gets it meanwhile.
  const renewUntil = Date.now() + 900
  while (Date.now() < renewUntil) {
    t.equal(await holder.lease('generator', 300), true)
    for (const other of others) t.equal(await other.lease('generator', 300), false)
    await new Promise((resolve) => setTimeout(resolve, 100))
  }
  t.equal(await redis.get(leaseKey), token, 'still the holder\'s token')
  const ttl = await redis.pttl(leaseKey)
  t.ok(ttl > 0 && ttl <= 300, `renewed with the ttl asked for (${ttl} ms left)`)

  // Not renewed: it expires, and another instance takes it.
  await new Promise((resolve) => setTimeout(resolve, 400))
  const next = others[0] as PushStreamAdapter
  t.equal(await next.lease('generator', 5000), true, 'taken over after expiry')
  t.equal(await holder.lease('generator', 5000), false, 'the old holder does not get it back')

  // A different name is a different lease.
  t.equal(await holder.lease('other', 5000), true)

  // Close gives back held leases: another instance takes them at once.
  await next.close()
  t.equal(await redis.exists(leaseKey), 0, 'released at close')
  t.equal(await holder.lease('generator', 5000), true)
})

t.test('close releases a lease only while it is still this instance\'s', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const redis = testClient(t)
  const [a] = await instances(t, key, 1) as [PushStreamAdapter]
  const leaseKey = `${key}:lease:generator`
  t.equal(await a.lease('generator', 5000), true)
  // The lease expired and someone else took it while `a` still thought it held it.
  await redis.set(leaseKey, 'someone else', 'PX', 5000)
  await a.close()
  t.equal(await redis.get(leaseKey), 'someone else')
})

import t from 'tap'
import { randomUUID } from 'node:crypto'
import { Redis, type RedisOptions } from 'ioredis'
import type { Teardown } from '../helpers/teardown.js'
import {
  RecordingContext, clientIds, killClients, loadRedisAdapter, redisUrl, skipUnlessRedis, testClient, testKey
} from '../helpers/redis.js'

const all = new Set(['default'])

/** A client of the app's own, named so CLIENT LIST can find it; the test quits it. */
function appClient (t: Teardown, options: RedisOptions = {}): { client: Redis, name: string } {
  const name = `app-${randomUUID()}`
  const client = new Redis(redisUrl, { connectionName: name, ...options })
  t.teardown(() => client.quit())
  return { client, name }
}

async function waitForCount (redis: Redis, name: string, count: number): Promise<void> {
  const deadline = Date.now() + 5000
  while ((await clientIds(redis, name)).length !== count) {
    if (Date.now() > deadline) throw new Error(`expected ${count} connections named ${name}`)
    await new Promise((resolve) => setTimeout(resolve, 20))
  }
}

t.test('with a URL, the adapter opens two connections of its own and close quits both', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const redis = testClient(t)
  const { redisAdapter } = await loadRedisAdapter()
  const adapter = redisAdapter({ url: redisUrl }, { key })
  const context = new RecordingContext()
  await adapter.start(context)
  await waitForCount(redis, `push-stream:${key}:commands`, 1)
  await waitForCount(redis, `push-stream:${key}:reader`, 1)
  const id = await adapter.publish({ channel: 'default', event: undefined, data: 'x' })
  await context.until(() => context.events.length === 1, 'the event')
  t.same(context.ids, [id])
  await adapter.close()
  // The connections are gone by the time close() resolved (Redis may take a moment to list them as gone).
  await waitForCount(redis, `push-stream:${key}:commands`, 0)
  await waitForCount(redis, `push-stream:${key}:reader`, 0)
  t.pass('both connections closed')
})

t.test('with the app\'s client: commands go through it, the reader is a duplicate; close quits only the duplicate', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const redis = testClient(t)
  const { client, name } = appClient(t)
  await client.ping()
  const { redisAdapter } = await loadRedisAdapter()
  const adapter = redisAdapter({ client }, { key })
  const context = new RecordingContext()
  t.equal(await adapter.start(context), '0-0')
  await waitForCount(redis, `push-stream:${key}:reader`, 1)
  t.same(await clientIds(redis, `push-stream:${key}:commands`), [], 'no command connection of its own')
  t.equal((await clientIds(redis, name)).length, 1)
  const id = await adapter.publish({ channel: 'default', event: 'e', data: 'through the app client' })
  await context.until(() => context.events.length === 1, 'the event')
  t.same(context.events, [{ id, channel: 'default', event: 'e', data: 'through the app client' }])
  t.equal(await adapter.lease('generator', 5000), true)
  await adapter.close()
  await waitForCount(redis, `push-stream:${key}:reader`, 0)
  t.equal((await clientIds(redis, name)).length, 1, 'the app\'s client is still connected')
  t.equal(client.status, 'ready')
  t.equal(await client.ping(), 'PONG', 'and still works')
  t.equal(await client.exists(`${key}:lease:generator`), 0, 'the lease was released through it')
})

t.test('the app\'s client going away is an outage like any other', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const redis = testClient(t)
  const { client, name } = appClient(t)
  const { redisAdapter } = await loadRedisAdapter()
  const adapter = redisAdapter({ client }, { key })
  t.teardown(() => adapter.close())
  const context = new RecordingContext()
  await adapter.start(context)
  t.equal(await killClients(redis, name), 1)
  await context.until(() => context.logged('info').length === 1, 'the recovery')
  t.match(context.lines.map((line) => [line.level, line.obj]), [['warn', { key, connection: 'commands' }], ['info', { key }]])
  const id = await adapter.publish({ channel: 'default', event: undefined, data: 'after' })
  await context.until(() => context.events.length === 1, 'the event')
  t.same(context.ids, [id])
})

t.test('an app client not connected yet (lazyConnect) is connected by start; one speaking RESP3 maps work the same', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const { redisAdapter } = await loadRedisAdapter()
  const { client: lazy } = appClient(t, { lazyConnect: true })
  const { client: resp3 } = appClient(t, { replyMapping: 'resp3' })
  t.equal(lazy.status, 'wait')
  const a = redisAdapter({ client: lazy }, { key })
  const b = redisAdapter({ client: resp3 }, { key })
  t.teardown(() => a.close())
  t.teardown(() => b.close())
  const contexts = [new RecordingContext(), new RecordingContext()] as const
  await a.start(contexts[0])
  await b.start(contexts[1])
  t.equal(lazy.status, 'ready')
  const ids = [
    await a.publish({ channel: 'default', event: undefined, data: '1' }),
    await b.publish({ channel: 'default', event: 'e', data: '2' })
  ]
  for (const context of contexts) {
    await context.until(() => context.events.length === 2, 'both events')
    t.same(context.ids, ids)
  }
  t.same((await b.replay('0-0', ids[1] as string, all))?.map((e) => e.data), ['1', '2'])
  t.same((await b.replay(ids[0] as string, ids[1] as string, all))?.map((e) => e.data), ['2'])
})

t.test('an app client that cannot connect: start rejects with the named error and leaves the client to the app', skipUnlessRedis, async (t) => {
  const { redisAdapter } = await loadRedisAdapter()
  const client = new Redis('redis://127.0.0.1:1', { lazyConnect: true, retryStrategy: () => null })
  client.on('error', () => {})
  const adapter = redisAdapter({ client }, { key: 'never-used' })
  await t.rejects(adapter.start(new RecordingContext()), { code: 'FST_PUSH_STREAM_ADAPTER_UNAVAILABLE', message: /Redis did not answer/ })
  await adapter.close()
  client.disconnect()
})

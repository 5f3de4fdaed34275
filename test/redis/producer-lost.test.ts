import t from 'tap'
import { spawnInstance } from './fixtures/spawn.js'
import { openStream, startApp } from '../helpers/sse.js'
import { waitFor } from '../helpers/wait.js'
import { loadRedisAdapter, redisUrl, skipUnlessRedis, testKey } from '../helpers/redis.js'

// The instance that dies runs in a child process under tsx: this file records no coverage (test/coverage-map.js).

t.test('kill -9 of the instance running a producer: its follower on another instance gets what was recorded, then FST_PUSH_STREAM_PRODUCER_LOST within seconds', skipUnlessRedis, async (t) => {
  const key = testKey(t)
  const { child, port } = await spawnInstance(t, 'producer.ts', key, redisUrl)
  const { redisAdapter } = await loadRedisAdapter()
  let started = 0
  const { url } = await startApp(t, { adapter: redisAdapter({ url: redisUrl }, { key }) }, (app) => {
    app.get('/answers/:key', (request, reply) => reply.sse(() => { started++; return ['never'] }, { key: (request.params as { key: string }).key }))
  })

  // The child claims the key and records its first event; this instance follows it.
  const onChild = await openStream(`http://127.0.0.1:${port}/answers/doomed`)
  await onChild.take(1)
  const follower = await openStream(`${url}/answers/doomed`)
  await follower.take(1)
  const killedAt = performance.now()
  child.kill('SIGKILL')
  await waitFor(follower.ended, 'the follower to end', 10_000)
  const took = performance.now() - killedAt
  t.same(follower.events.map((event) => [event.event, event.data]), [
    [undefined, 'recorded before the crash'],
    ['push-stream:error', '{"code":"FST_PUSH_STREAM_PRODUCER_LOST"}']
  ])
  t.ok(took < 5000, `lost learnt ${Math.round(took)} ms after the kill`)
  t.equal(started, 0, 'the follower never started the source again')
})

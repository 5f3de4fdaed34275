import t from 'tap'
import { build } from '../../example/server.js'
import { openStream, request } from '../helpers/sse.js'
import { redisUrl, skipUnlessRedis, testKey } from '../helpers/redis.js'

// REDIS_URL=... npm run demo: two demo instances share one stream, as behind a load balancer.
t.test('two demo instances on one Redis: a message posted to one reaches the page of the other', skipUnlessRedis, async (t) => {
  const redisKey = testKey(t)
  const urls: string[] = []
  for (let n = 0; n < 2; n++) {
    const app = await build({ interval: 0, redisUrl, redisKey })
    t.teardown(() => app.close())
    urls.push(await app.listen({ port: 0, host: '127.0.0.1' }))
  }
  const [first, second] = urls as [string, string]
  const reader = await openStream(`${second}/events?channel=news`)
  t.teardown(() => reader.close())
  const posted = await request(`${first}/messages`, {
    method: 'POST',
    headers: { 'content-type': 'application/json' }
  }, JSON.stringify({ text: 'from the other instance', channel: 'news' }))
  t.equal(posted.status, 201)
  const { id } = JSON.parse(posted.body) as { id: string }
  const [event] = await reader.take(1)
  t.equal(event?.id, id, 'the id Redis gave it, the same on both instances')
  t.equal(event?.event, 'chat')
  t.match(JSON.parse(event?.data ?? '{}'), { text: 'from the other instance', channel: 'news' })
})

import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import pushStream from '../lib/index.js'
import { openStream } from './helpers/sse.js'

const RULE = /already registered in this encapsulation context or in one of its parents.*register it once per context, in sibling contexts for separate streams/

t.test('registering again in a child of a context that has the plugin is a named error that states the rule', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(pushStream, { interval: 0 })
  app.register(async (child) => {
    await child.register(pushStream, { interval: 0, path: '/child' })
  })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_PUSH_STREAM_ALREADY_REGISTERED', message: RULE })
})

t.test('registering again in a grandchild is the same error', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(async (child) => {
    await child.register(pushStream, { interval: 0 })
    child.register(async (grandchild) => {
      t.ok(grandchild.hasDecorator('pushStream'), 'the grandchild inherits the decorator')
      await grandchild.register(pushStream, { interval: 0, prefix: '/deeper' })
    })
  })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_PUSH_STREAM_ALREADY_REGISTERED', message: RULE })
})

t.test('a different prefix does not make a second registration in the same context allowed', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  app.register(pushStream, { interval: 0 })
  app.register(pushStream, { interval: 0, prefix: '/other' })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_PUSH_STREAM_ALREADY_REGISTERED', message: RULE })
})

t.test('sibling contexts each register their own, and each stream gets only its own events', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  const contexts: Record<string, FastifyInstance> = {}
  for (const name of ['scores', 'news']) {
    await app.register(async (context) => {
      await context.register(pushStream, { interval: 0 })
      contexts[name] = context
    }, { prefix: `/${name}` })
  }
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  const scores = contexts.scores as FastifyInstance
  const news = contexts.news as FastifyInstance
  t.not(scores.pushStream, news.pushStream, 'two decorators')
  t.notOk(app.hasDecorator('pushStream'), 'none on the parent')
  const onScores = await openStream(`${url}/scores/events`)
  const onNews = await openStream(`${url}/news/events`)
  t.teardown(() => { onScores.close(); onNews.close() })
  scores.pushStream.publish('2-1')
  news.pushStream.publish('headline')
  scores.pushStream.publish('3-1')
  t.same((await onScores.take(2)).map((e) => e.data), ['2-1', '3-1'])
  t.same((await onNews.take(1)).map((e) => e.data), ['headline'])
  // One more on news proves nothing of scores was queued before it.
  news.pushStream.publish('later')
  t.same((await onNews.take(2)).map((e) => e.data), ['headline', 'later'])
  t.equal(onScores.events.length, 2)
  t.equal(scores.pushStream.stats().connections, 1)
  t.equal(news.pushStream.stats().connections, 1)
})

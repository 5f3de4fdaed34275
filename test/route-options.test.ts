import t from 'tap'
import Fastify from 'fastify'
import rateLimit from '@fastify/rate-limit'
import pushStream, { type PushStreamOptions } from '../lib/index.js'
import { LogCapture } from './helpers/log.js'
import { openStream, request, startApp } from './helpers/sse.js'

t.test('route.onRequest runs on the stream route: it can answer 401 before a stream opens', async (t) => {
  const { app, url } = await startApp(t, {
    route: {
      onRequest: async (request, reply) => {
        if (request.headers.authorization !== 'Bearer good') await reply.code(401).send({ message: 'who are you?' })
      }
    }
  })
  const refused = await request(`${url}/events`)
  t.equal(refused.status, 401)
  t.same(JSON.parse(refused.body), { message: 'who are you?' })
  t.equal(app.pushStream.stats().connections, 0)
  const client = await openStream(`${url}/events`, { authorization: 'Bearer good' })
  t.teardown(() => client.close())
  t.equal(client.status, 200)
})

t.test('route.preHandler runs before authorize', async (t) => {
  const { url } = await startApp(t, {
    authorize: (request) => (request as unknown as { team?: string }).team === 'blue',
    route: {
      preHandler: async (request) => { (request as unknown as { team?: string }).team = request.headers['x-team'] as string }
    }
  })
  t.equal((await request(`${url}/events`, { headers: { 'x-team': 'red' } })).status, 403)
  const client = await openStream(`${url}/events`, { 'x-team': 'blue' })
  t.teardown(() => client.close())
  t.equal(client.status, 200)
})

t.test('route.config reaches @fastify/rate-limit', async (t) => {
  const { url } = await startApp(t, {
    route: { config: { rateLimit: { max: 1, timeWindow: 60_000 } } }
  }, async (app) => {
    await app.register(rateLimit, { global: false })
    app.get('/health', async () => 'ok')
  })
  const first = await openStream(`${url}/events`)
  first.close()
  t.equal(first.status, 200)
  const second = await request(`${url}/events`)
  t.equal(second.status, 429, 'the second stream in the window is refused')
  t.equal((await request(`${url}/health`)).status, 200, 'other routes are not limited')
  t.equal((await request(`${url}/health`)).status, 200)
})

t.test('route.logLevel sets the stream route\'s level, over a logLevel given to register', async (t) => {
  const logs = new LogCapture()
  const registered = { client: true, logLevel: 'warn', route: { logLevel: 'info' } } as PushStreamOptions
  const { url: first } = await startApp(t, registered, undefined, { logger: { level: 'info', stream: logs } })
  await request(`${first}/events?channel=bad!`)
  await request(`${first}/events/client.js`)
  const urls = logs.lines.filter((line) => line.msg === 'incoming request').map((line) => (line.req as { url: string }).url)
  t.same(urls, ['/events?channel=bad!'], 'the stream route logs at info; the client script keeps the register level')

  const silent = new LogCapture()
  const { url } = await startApp(t, { route: { logLevel: 'silent' } }, (app) => { app.get('/health', async () => 'ok') }, { logger: { level: 'info', stream: silent } })
  await request(`${url}/events?channel=bad!`)
  await request(`${url}/health`)
  t.same(silent.lines.filter((line) => line.msg === 'incoming request').map((line) => (line.req as { url: string }).url), ['/health'])
})

t.test('route.constraints: the stream answers on the constrained host only', async (t) => {
  const { app, url } = await startApp(t, { route: { constraints: { host: 'stream.example.com' } } })
  const client = await openStream(`${url}/events`, { host: 'stream.example.com' })
  t.teardown(() => client.close())
  t.equal(client.status, 200)
  app.pushStream.publish('on the stream host')
  t.equal((await client.take(1))[0]?.data, 'on the stream host')
  t.equal((await request(`${url}/events`, { headers: { host: 'www.example.com' } })).status, 404)
})

t.test('route.exposeHeadRoute: false is accepted, and there is still no HEAD route', async (t) => {
  const { url } = await startApp(t, { route: { exposeHeadRoute: false } })
  t.equal((await request(`${url}/events`, { method: 'HEAD' })).status, 404)
})

t.test('route options the plugin sets itself, or misspelt, fail at register with a named error', async (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ method: 'POST' }, /"route\.method": got "POST", expected it left out: the stream route is always GET/],
    [{ url: '/other' }, /"route\.url": got "\/other", expected it left out: the "path" option sets the URL/],
    [{ path: '/other' }, /"route\.path"/],
    [{ handler: async () => 'x' }, /"route\.handler": got a function, expected it left out: the plugin answers the stream route itself/],
    [{ exposeHeadRoute: true }, /"route\.exposeHeadRoute": got boolean true, expected it left out: false or nothing/],
    [{ validatorCompiler: () => () => true }, /"route\.validatorCompiler".*request schema is documentation only/],
    [{ attachValidation: true }, /"route\.attachValidation"/],
    [{ schemaErrorFormatter: () => new Error('x') }, /"route\.schemaErrorFormatter"/],
    [{ onrequest: async () => {} }, /"route\.onrequest": got an unknown route option, expected a Fastify route option \(did you mean "onRequest"\?\)/],
    [{ preHandlr: async () => {} }, /did you mean "preHandler"/],
    [{ confg: {} }, /did you mean "config"/]
  ]
  for (const [route, message] of cases) {
    const app = Fastify()
    app.register(pushStream, { route } as object)
    await t.rejects(async () => { await app.ready() }, { code: 'FST_PUSH_STREAM_INVALID_OPTION', message }, JSON.stringify(route))
    await app.close()
  }
})

t.test('a route option far from every Fastify one is another plugin\'s: it reaches the route', async (t) => {
  const seen: unknown[] = []
  const app = Fastify()
  t.teardown(() => app.close())
  app.addHook('onRoute', (route) => { if (route.url === '/events') seen.push((route as unknown as { openapiExtra: unknown }).openapiExtra) })
  await app.register(pushStream, { interval: 0, route: { openapiExtra: 'kept', method: undefined } } as object)
  await app.ready()
  t.same(seen, ['kept'])
})

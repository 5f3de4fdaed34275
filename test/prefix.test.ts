import t, { type Test } from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import pushStream from '../lib/index.js'
import { LogCapture } from './helpers/log.js'
import { openStream, request } from './helpers/sse.js'

/** Listens on a free port, closed in teardown; the base URL. */
async function listen (t: Test, app: FastifyInstance): Promise<string> {
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  return `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
}

/** Opens a stream at `url`, publishes one event and checks it arrives. */
async function streams (t: Test, api: FastifyInstance, url: string): Promise<void> {
  const client = await openStream(url)
  t.teardown(() => client.close())
  t.equal(client.status, 200, `${url} streams`)
  api.pushStream.publish('here')
  t.equal((await client.take(1))[0]?.data, 'here', `${url} gets what is published`)
}

t.test('the prefix register option moves both routes under it; the decorator stays on the instance', async (t) => {
  const app = Fastify()
  await app.register(pushStream, { interval: 0, client: true, prefix: '/api' })
  const url = await listen(t, app)
  t.ok(app.hasDecorator('pushStream'), 'app.pushStream is on the instance registered on')
  await streams(t, app, `${url}/api/events`)
  t.equal((await request(`${url}/api/events/client.js`)).status, 200, 'the client script is under the prefix too')
  t.equal((await request(`${url}/events`)).status, 404, 'nothing at the unprefixed path')
  t.equal((await request(`${url}/events/client.js`)).status, 404)
})

t.test('a context prefix applies as before', async (t) => {
  const app = Fastify()
  let api: FastifyInstance | undefined
  await app.register(async (context) => {
    await context.register(pushStream, { interval: 0 })
    api = context
  }, { prefix: '/api' })
  const url = await listen(t, app)
  await streams(t, api as FastifyInstance, `${url}/api/events`)
  t.notOk(app.hasDecorator('pushStream'), 'the decorator stays in its context')
})

t.test('a context prefix and the prefix option combine, in that order', async (t) => {
  const app = Fastify()
  let api: FastifyInstance | undefined
  await app.register(async (context) => {
    await context.register(pushStream, { interval: 0, prefix: '/v1', path: '/stream' })
    api = context
  }, { prefix: '/api' })
  const url = await listen(t, app)
  await streams(t, api as FastifyInstance, `${url}/api/v1/stream`)
  t.equal((await request(`${url}/v1/stream`)).status, 404)
  t.equal((await request(`${url}/api/stream`)).status, 404)
})

t.test('a prefix is joined to the path as Fastify joins it: one slash between them', async (t) => {
  for (const [prefix, path, at] of [
    ['api', '/events', '/api/events'],
    ['/api/', '/events', '/api/events'],
    ['/api', '/', '/api'],
    ['', '/events', '/events']
  ] as const) {
    const app = Fastify()
    await app.register(pushStream, { interval: 0, prefix, path })
    const url = await listen(t, app)
    await streams(t, app, `${url}${at}`)
  }
})

t.test('logLevel and logSerializers given to register apply to the plugin\'s routes, as for any plugin', async (t) => {
  const quiet = new LogCapture()
  const app = Fastify({ logger: { level: 'info', stream: quiet } })
  app.get('/health', async () => 'ok')
  await app.register(pushStream, { interval: 0, client: true, logLevel: 'warn' })
  const url = await listen(t, app)
  t.equal((await request(`${url}/events?channel=bad!`)).status, 400)
  t.equal((await request(`${url}/events/client.js`)).status, 200)
  t.equal((await request(`${url}/health`)).status, 200)
  const urls = quiet.lines.filter((line) => line.msg === 'incoming request').map((line) => (line.req as { url: string }).url)
  t.same(urls, ['/health'], 'no info line for the plugin\'s routes')

  const shaped = new LogCapture()
  const other = Fastify({ logger: { level: 'info', stream: shaped } })
  await other.register(pushStream, { interval: 0, logSerializers: { req: (req: { url: string }) => `GET ${req.url}` } })
  const otherUrl = await listen(t, other)
  await request(`${otherUrl}/events?channel=bad!`)
  t.same(shaped.lines.filter((line) => line.msg === 'incoming request').map((line) => line.req), ['GET /events?channel=bad!'])
})

t.test('bad register options are named errors at registration', async (t) => {
  const cases: Array<[Record<string, unknown>, RegExp]> = [
    [{ prefix: 5 }, /"prefix": got number 5, expected a string/],
    [{ prefix: ['/api'] }, /"prefix": got an array/],
    [{ logLevel: 30 }, /"logLevel": got number 30, expected a log level name/],
    [{ logSerializers: () => ({}) }, /"logSerializers": got a function, expected a plain object of functions/],
    [{ logSerializers: null }, /"logSerializers": got null/]
  ]
  for (const [options, message] of cases) {
    const app = Fastify()
    app.register(pushStream, options)
    await t.rejects(async () => { await app.ready() }, { code: 'FST_PUSH_STREAM_INVALID_OPTION', message }, JSON.stringify(options))
    await app.close()
  }
})

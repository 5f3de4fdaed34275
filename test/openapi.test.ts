import t from 'tap'
import Fastify, { type FastifyInstance } from 'fastify'
import swagger from '@fastify/swagger'
import pushStream, { type PushStreamOptions } from '../lib/index.js'
import { openStream, request, startApp } from './helpers/sse.js'
import type { Teardown } from './helpers/teardown.js'

interface Operation {
  summary?: string
  description?: string
  tags?: string[]
  security?: unknown[]
  parameters: Array<{ in: string, name: string, schema: Record<string, unknown>, description?: string }>
  responses: Record<string, { description: string, content?: Record<string, { schema: Record<string, unknown> }>, headers?: Record<string, unknown> }>
}

/** The OpenAPI document of an app with @fastify/swagger (openapi mode) and the plugin registered with `options`. */
async function documented (t: Teardown, options: PushStreamOptions & { prefix?: string }): Promise<{ app: FastifyInstance, paths: Record<string, Record<string, Operation>> }> {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(swagger, {
    openapi: {
      info: { title: 'test', version: '1.0.0' },
      components: { securitySchemes: { bearer: { type: 'http', scheme: 'bearer' } } }
    }
  })
  await app.register(pushStream, { interval: 0, ...options })
  await app.ready()
  return { app, paths: (app.swagger() as unknown as { paths: Record<string, Record<string, Operation>> }).paths }
}

t.test('the stream route is documented: the query, the Last-Event-ID header, a text/event-stream 200 and the error answers', async (t) => {
  const { paths } = await documented(t, { maxChannels: 8 })
  const get = paths['/events']?.get as Operation
  t.ok(get, 'GET /events is in the document')
  t.match(get.summary, /Server-Sent Events/)
  const byName = Object.fromEntries(get.parameters.map((p) => [`${p.in} ${p.name}`, p]))
  t.same(Object.keys(byName).sort(), ['header last-event-id', 'query channel', 'query handshake', 'query lastEventId'])
  t.match(byName['query channel'], { schema: { type: 'array', items: { type: 'string' }, maxItems: 8 }, description: /repeat it/ })
  t.match(byName['query lastEventId'], { schema: { type: 'string' } })
  t.match(byName['query handshake'], { schema: { type: 'string', enum: ['1'] } })
  t.match(byName['header last-event-id'], { schema: { type: 'string' } })

  const ok = get.responses['200']
  t.match(ok?.description, /event stream/)
  t.same(Object.keys(ok?.content ?? {}), ['text/event-stream'], 'the 200 is text/event-stream, not JSON')
  t.not(ok?.description, 'Default Response')
  for (const [status, code] of [['400', 'FST_PUSH_STREAM_INVALID_CHANNEL'], ['403', 'FST_PUSH_STREAM_FORBIDDEN'], ['503', 'FST_PUSH_STREAM_SHUTTING_DOWN']] as const) {
    const answer = get.responses[status]
    t.match(answer?.description, code, `${status} names the errors it carries`)
    t.match(answer?.content?.['application/json']?.schema, {
      type: 'object',
      properties: { statusCode: { type: 'integer' }, code: { type: 'string' }, error: { type: 'string' }, message: { type: 'string' } }
    }, `${status} has the error body`)
  }
  t.match(get.responses['503']?.headers, { 'retry-after': { schema: { type: 'integer' } } })
})

t.test('route.schema adds tags, summary, security, query parameters and responses to the default ones', async (t) => {
  const { paths } = await documented(t, {
    client: true,
    route: {
      schema: {
        tags: ['streams'],
        summary: 'Live scores',
        security: [{ bearer: [] }],
        querystring: { type: 'object', properties: { team: { type: 'string', description: 'Only this team' } } },
        response: { 401: { description: 'No token', type: 'object', properties: { message: { type: 'string' } } } }
      } as object
    }
  })
  const get = paths['/events']?.get as Operation
  t.same(get.tags, ['streams'])
  t.equal(get.summary, 'Live scores')
  t.match(get.description, /text\/event-stream/, 'the default description stays')
  t.same(get.security, [{ bearer: [] }])
  t.same(get.parameters.filter((p) => p.in === 'query').map((p) => p.name).sort(), ['channel', 'handshake', 'lastEventId', 'team'])
  t.same(Object.keys(get.responses).sort(), ['200', '400', '401', '403', '503'])
  t.equal(get.responses['401']?.description, 'No token')
  t.notOk(paths['/events/client.js'], 'the client script is hidden, as a static file is')
})

t.test('the documented path carries the prefix', async (t) => {
  const { paths } = await documented(t, { prefix: '/api' })
  t.ok(paths['/api/events']?.get)
  t.notOk(paths['/events'])
})

t.test('the documented query is not validated: the plugin\'s own checks and named errors answer, as without a schema', async (t) => {
  const { app, url } = await startApp(t, { maxChannels: 2 })
  const cases: Array<[string, string]> = [
    ['channel=a%20b', 'FST_PUSH_STREAM_INVALID_CHANNEL'],
    ['channel=a&channel=b&channel=c', 'FST_PUSH_STREAM_TOO_MANY_CHANNELS']
  ]
  for (const [query, code] of cases) {
    const res = await request(`${url}/events?${query}`)
    t.equal(res.status, 400, query)
    t.same(Object.keys(JSON.parse(res.body)).sort(), ['code', 'error', 'message', 'statusCode'], `${query}: the default error body`)
    t.equal(JSON.parse(res.body).code, code, query)
  }
  // Values the documented types would refuse or coerce still open a stream.
  const client = await openStream(`${url}/events?handshake=yes&lastEventId=1&lastEventId=2&extra=1`)
  t.teardown(() => client.close())
  t.equal(client.status, 200)
  app.pushStream.publish('still streams')
  const [reset, live] = await client.take(2)
  t.equal(reset?.event, 'reset', 'the first lastEventId was read, as an id this server never gave')
  t.equal(live?.data, 'still streams')
})

t.test('an app\'s own error handler answers with its own fields, which the documented error body does not strip', async (t) => {
  const { url } = await startApp(t, { authorize: () => false }, (app) => {
    app.setErrorHandler(async (error: { statusCode?: number, code?: string }, _request, reply) => {
      await reply.code(error.statusCode ?? 500).send({ reason: error.code, help: 'https://example.com/help' })
    })
  })
  const res = await request(`${url}/events`)
  t.equal(res.status, 403)
  t.same(JSON.parse(res.body), { reason: 'FST_PUSH_STREAM_FORBIDDEN', help: 'https://example.com/help' })
})

import t from 'tap'
import fastifyCookie from '@fastify/cookie'
import fastifyJwt from '@fastify/jwt'
import Fastify, { type FastifyRequest } from 'fastify'
import pushStream from '../lib/index.js'
import { LogCapture, type LogLine } from './helpers/log.js'
import { openStream, request, startApp } from './helpers/sse.js'

const SECRET = 'a-secret-for-tests-only-0123456789'

const ERROR = 50
const INFO = 30

const codeOf = (body: string): string | undefined => (JSON.parse(body) as { code?: string }).code
const atError = (log: LogCapture): LogLine[] => log.lines.filter((line) => line.level >= ERROR)

t.test('authorize with @fastify/jwt: no token or a bad one is answered 401 with the code jwt gave, logged at info', async (t) => {
  const log = new LogCapture()
  const { app, url } = await startApp(t, {
    authorize: async (request) => { await request.jwtVerify(); return true }
  }, async (app) => { await app.register(fastifyJwt, { secret: SECRET }) }, { logger: { level: 'info', stream: log } })

  const missing = await request(`${url}/events`)
  t.equal(missing.status, 401)
  t.equal(codeOf(missing.body), 'FST_JWT_NO_AUTHORIZATION_IN_HEADER')
  const bad = await request(`${url}/events`, { headers: { authorization: 'Bearer not.a.token' } })
  t.equal(bad.status, 401)
  t.equal(codeOf(bad.body), 'FST_JWT_AUTHORIZATION_TOKEN_INVALID')
  t.same(log.errorsWithCode('FST_JWT_NO_AUTHORIZATION_IN_HEADER').length, 1, 'logged once')
  const jwtLines = log.lines.filter((line) => String(line.err?.code).startsWith('FST_JWT_'))
  t.same(jwtLines.map((line) => line.level), [INFO, INFO], 'as client errors, at info')
  t.same(atError(log), [], 'nothing at error')

  const client = await openStream(`${url}/events`, { authorization: `Bearer ${app.jwt.sign({ sub: 'ann' })}` })
  t.teardown(() => client.close())
  t.equal(client.status, 200, 'a valid token opens the stream')
})

t.test('authorize that throws unexpectedly (no status, or 5xx): 500 FST_PUSH_STREAM_AUTHORIZE_FAILED, logged once at error without repeated text', async (t) => {
  const log = new LogCapture()
  const { url } = await startApp(t, {
    authorize: async (_request, channels) => {
      if (channels.includes('unavailable')) throw Object.assign(new Error('auth service unavailable'), { statusCode: 503 })
      throw new Error('backend down')
    }
  }, undefined, { logger: { level: 'info', stream: log } })

  const plain = await request(`${url}/events`)
  t.equal(plain.status, 500)
  t.same(JSON.parse(plain.body), {
    statusCode: 500,
    code: 'FST_PUSH_STREAM_AUTHORIZE_FAILED',
    error: 'Internal Server Error',
    message: 'The authorize function failed'
  }, 'the cause stays in the log, not in the answer')
  const [line] = atError(log)
  t.equal(atError(log).length, 1, 'one line at error')
  t.equal(line?.err?.code, 'FST_PUSH_STREAM_AUTHORIZE_FAILED')
  t.equal(line?.err?.message, 'The authorize function failed: backend down', 'the cause\'s text once')
  t.notMatch(String(line?.msg), /backend down/, 'the message does not repeat it')
  t.match(line?.err?.stack, /caused by: Error: backend down/, 'with the cause\'s stack')

  const fiveHundreds = await request(`${url}/events?channel=unavailable`)
  t.equal(fiveHundreds.status, 500)
  t.equal(codeOf(fiveHundreds.body), 'FST_PUSH_STREAM_AUTHORIZE_FAILED', 'a 5xx from authorize is a failure of the server')
})

t.test('authorize per channel, from the token\'s claims: a channel not granted is 403', async (t) => {
  const { app, url } = await startApp(t, {
    authorize: async (request, channels) => {
      const { channels: granted } = await request.jwtVerify<{ channels: string[] }>()
      return channels.every((channel) => granted.includes(channel))
    }
  }, async (app) => { await app.register(fastifyJwt, { secret: SECRET }) })
  const authorization = `Bearer ${app.jwt.sign({ sub: 'ann', channels: ['news'] })}`
  const client = await openStream(`${url}/events?channel=news`, { authorization })
  t.teardown(() => client.close())
  t.equal(client.status, 200, 'a granted channel streams')
  const denied = await request(`${url}/events?channel=news&channel=admin`, { headers: { authorization } })
  t.equal(denied.status, 403)
  t.equal(codeOf(denied.body), 'FST_PUSH_STREAM_FORBIDDEN')
})

t.test('auth in an onRequest hook of an encapsulating context: the stream route is behind it, other routes are not', async (t) => {
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(fastifyJwt, { secret: SECRET })
  await app.register(async (scope) => {
    scope.addHook('onRequest', async (request) => { await request.jwtVerify() })
    await scope.register(pushStream, { path: '/private/events', interval: 0 })
  })
  app.get('/health', async () => 'ok')
  await app.listen({ port: 0, host: '127.0.0.1' })
  const url = `http://127.0.0.1:${(app.server.address() as { port: number }).port}`
  t.equal((await request(`${url}/health`)).status, 200, 'outside the context, no token needed')
  const missing = await request(`${url}/private/events`)
  t.equal(missing.status, 401)
  t.equal(codeOf(missing.body), 'FST_JWT_NO_AUTHORIZATION_IN_HEADER')
  const client = await openStream(`${url}/private/events`, { authorization: `Bearer ${app.jwt.sign({ sub: 'ann' })}` })
  t.teardown(() => client.close())
  t.equal(client.status, 200)
  t.equal(client.headers['content-type'], 'text/event-stream; charset=utf-8')
})

t.test('a browser EventSource sends cookies: a signed JWT cookie set at login authenticates the stream', async (t) => {
  const { app, url } = await startApp(t, {
    authorize: async (request) => { await request.jwtVerify(); return true }
  }, async (app) => {
    await app.register(fastifyCookie, { secret: 'a-cookie-secret-for-tests-only' })
    await app.register(fastifyJwt, { secret: SECRET, cookie: { cookieName: 'token', signed: true } })
    app.post('/login', async (_request, reply) => {
      const token = await reply.jwtSign({ sub: 'ann' })
      return await reply.setCookie('token', token, { path: '/', httpOnly: true, sameSite: 'strict', signed: true }).send({ ok: true })
    })
  })
  const login = await request(`${url}/login`, { method: 'POST' })
  const cookie = String(login.headers['set-cookie']?.[0]).split(';')[0] as string
  const client = await openStream(`${url}/events`, { cookie })
  t.teardown(() => client.close())
  t.equal(client.status, 200, 'the login cookie opens the stream')
  await app.pushStream.publish('for ann')
  t.same((await client.take(1)).map((e) => e.data), ['for ann'])

  const forged = await request(`${url}/events`, { headers: { cookie: `token=${app.jwt.sign({ sub: 'eve' })}` } })
  t.equal(forged.status, 401, 'an unsigned cookie does not')
  t.equal(codeOf(forged.body), 'FST_JWT_NO_AUTHORIZATION_IN_COOKIE')
})

t.test('a short-lived token in the query, kept out of the logs by a req serializer', async (t) => {
  const log = new LogCapture()
  const redactToken = (url: string): string => url.replace(/([?&]token=)[^&]*/g, '$1[redacted]')
  const { app, url } = await startApp(t, {
    authorize: async (request) => { await request.jwtVerify(); return true }
  }, async (app) => {
    await app.register(fastifyJwt, { secret: SECRET, verify: { extractToken: (req: FastifyRequest) => (req.query as { token?: string }).token } })
  }, {
    logger: {
      level: 'info',
      stream: log,
      serializers: {
        req: (req) => ({ method: req.method, url: redactToken(req.url), host: req.host, remoteAddress: req.ip })
      }
    }
  })
  const token = app.jwt.sign({ sub: 'ann' }, { expiresIn: '1m' })
  const client = await openStream(`${url}/events?channel=news&token=${token}`)
  t.teardown(() => client.close())
  t.equal(client.status, 200, 'the token in the query opens the stream')
  const expired = app.jwt.sign({ sub: 'ann', exp: Math.floor(Date.now() / 1000) - 60 })
  const late = await request(`${url}/events?token=${expired}`)
  t.equal(late.status, 401, 'an expired one is refused')
  t.equal(codeOf(late.body), 'FST_JWT_AUTHORIZATION_TOKEN_EXPIRED')

  const urls = log.lines.map((line) => (line.req as { url?: string } | undefined)?.url).filter((logged) => logged !== undefined)
  t.ok(urls.includes('/events?channel=news&token=[redacted]'), 'the URL is logged with the token redacted')
  const text = JSON.stringify(log.lines)
  t.notOk(text.includes(token) || text.includes(expired), 'no token appears in the log')
})

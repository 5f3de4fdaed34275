import { spawn, spawnSync, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs'
import http, { type IncomingHttpHeaders } from 'node:http'
import http2 from 'node:http2'
import https from 'node:https'
import { createServer } from 'node:net'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import t from 'tap'
import {
  CHANNELS,
  build,
  certificateFromEnv,
  publishChat,
  selfSignedCertificate,
  type BuildOptions
} from '../example/server.js'
import { cannedAnswer, type AnswerStats } from '../example/ask.js'
import { openStream, request } from './helpers/sse.js'
import type { Teardown } from './helpers/teardown.js'
import { waitFor } from './helpers/wait.js'

const root = fileURLToPath(new URL('..', import.meta.url))
const hasOpenssl = spawnSync('openssl', ['version']).status === 0
const ALL_CHANNELS = CHANNELS.map((name) => `channel=${name}`).join('&')

/** A port that was free a moment ago: the demo must be told its port to print a usable URL. */
async function freePort (): Promise<number> {
  const server = createServer()
  server.listen(0, '127.0.0.1')
  await once(server, 'listening')
  const { port } = server.address() as { port: number }
  server.close()
  await once(server, 'close')
  return port
}

/** Collects the demo's stderr from now on. */
function collectStderr (child: ChildProcess): () => string {
  let stderr = ''
  child.stderr?.setEncoding('utf8')
  child.stderr?.on('data', (chunk: string) => { stderr += chunk })
  return () => stderr
}

/** Resolves with the URL from the demo's "Open <url> in a browser" log line, and the messages logged before it; rejects when it exits first or after `ms`. */
async function waitForUrl (child: ChildProcess, ms: number): Promise<{ url: string, logged: string[] }> {
  const stderr = collectStderr(child)
  const logged: string[] = []
  const lines = createInterface({ input: child.stdout! })
  const found = new Promise<string>((resolve, reject) => {
    child.once('error', reject)
    child.once('exit', (code, signal) => reject(new Error(`the demo exited (${code ?? signal}); stderr: ${stderr()}`)))
    lines.on('line', (line) => {
      let msg: unknown
      try {
        msg = JSON.parse(line).msg
      } catch {
        msg = line
      }
      if (typeof msg === 'string') logged.push(msg)
      const match = typeof msg === 'string' ? /^Open (https?:\/\/\S+) in a browser$/.exec(msg) : null
      if (match !== null) resolve(match[1] as string)
    })
  })
  try {
    return { url: await waitFor(found, () => `the "Open <url>" line; stderr: ${stderr()}`, ms), logged }
  } finally {
    lines.close()
  }
}

/** Starts `npm run demo`'s command with `env` added; killed in teardown whatever happens. */
function startDemo (t: Teardown, env: NodeJS.ProcessEnv): { child: ChildProcess, exited: Promise<number | null> } {
  const child = spawn('node_modules/.bin/tsx', ['example/server.ts'], {
    cwd: root,
    env: { ...process.env, HOST: '127.0.0.1', ...env },
    stdio: ['ignore', 'pipe', 'pipe']
  })
  const exited = new Promise<number | null>((resolve) => child.once('exit', resolve))
  t.teardown(() => { if (child.exitCode === null && child.signalCode === null) child.kill('SIGKILL') })
  return { child, exited }
}

/** Builds the demo with `options`, listening on a free port; closed in teardown. */
async function startExample (t: Teardown, options: BuildOptions = {}): Promise<{ app: Awaited<ReturnType<typeof build>>, base: string }> {
  const app = await build({ logger: false, interval: 0, ...options })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return { app, base: `${options.http2 === undefined ? 'http' : 'https'}://127.0.0.1:${port}` }
}

/** A request with a body, answered in full; the body parsed as JSON when it is. */
async function send (url: string, method: string, body: string | undefined, headers: Record<string, string> = {}): Promise<{ status: number, headers: IncomingHttpHeaders, body: any }> {
  const answer = await request(url, { method, headers }, body)
  let parsed: unknown = answer.body
  try {
    parsed = JSON.parse(answer.body)
  } catch {}
  return { ...answer, body: parsed }
}

async function postJson (url: string, value: unknown, headers: Record<string, string> = {}): ReturnType<typeof send> {
  return send(url, 'POST', JSON.stringify(value), { 'content-type': 'application/json', ...headers })
}

/** One HTTP/2 request on `session`: status, headers, and the body once `until(body)` holds or the stream ends. */
async function h2Get (session: http2.ClientHttp2Session, path: string, until: (body: string) => boolean = () => false): Promise<{ headers: http2.IncomingHttpHeaders, body: string }> {
  const stream = session.request({ ':path': path })
  stream.setEncoding('utf8')
  const [headers] = await once(stream, 'response') as [http2.IncomingHttpHeaders]
  let body = ''
  for await (const chunk of stream) {
    body += chunk
    if (until(body)) break
  }
  stream.close()
  return { headers, body }
}

t.test('the demo app serves the page, the client and messages on rotating channels', async (t) => {
  const { app, base } = await startExample(t)

  const page = await request(`${base}/`)
  t.equal(page.status, 200)
  t.match(page.headers['content-type'], /^text\/html/)
  t.match(page.body, /<[a-z]+ id="state"[^>]* data-state="connecting"/)
  t.match(page.body, /<script type="module" src="app\.js"/)
  t.match(page.body, /<link[^>]* href="style\.css"/)
  t.match(page.body, /<meta name="push-stream-server" content="">/, 'same origin unless told otherwise')
  for (const landmark of ['<header', '<main', '<footer']) t.ok(page.body.includes(landmark), `landmark ${landmark}>`)
  const offered = [...page.body.matchAll(/<input type="checkbox" name="channel" value="([^"]+)"/g)].map((m) => m[1])
  t.same(offered, CHANNELS, 'the page offers the channels the server publishes on')
  const postable = [...page.body.matchAll(/<option value="([^"]+)"/g)].map((m) => m[1])
  t.same(postable, CHANNELS)

  const script = await request(`${base}/app.js`)
  t.equal(script.status, 200)
  t.match(script.headers['content-type'], /javascript/)
  t.match(script.body, /new URL\('\/events\/client\.js', server\)/, 'the client comes from the plugin\'s own route')
  t.match(script.body, /shareAcrossTabs: true/)
  t.notMatch(script.body, /new EventSource\(/, 'no EventSource of its own')

  const client = await request(`${base}/events/client.js`)
  t.equal(client.status, 200, 'the plugin serves its browser client (client: true)')
  t.match(client.body, /export\s*\{[^}]*\bconnect\b[^}]*\}/, 'one module that exports connect')
  t.match(client.body, /export\s*\{[^}]*\bpersisted\b[^}]*\}/, 'and persisted, which the Ask panel reads after a reload')

  const style = await request(`${base}/style.css`)
  t.equal(style.status, 200)
  t.match(style.headers['content-type'], /^text\/css/)
  t.match(style.body, /prefers-color-scheme: dark/)
  for (const state of ['open', 'connecting', 'reconnecting', 'paused', 'stopped', 'closed']) {
    t.match(style.body, `[data-state='${state}']`, `the CSS styles ${state}`)
  }

  const stream = await openStream(`${base}/events?${ALL_CHANNELS}`)
  t.teardown(() => stream.close())
  t.equal(stream.status, 200)
  t.match(stream.headers['content-type'], /^text\/event-stream/)

  const published = [await app.pushStream.generate(), await app.pushStream.generate(), await app.pushStream.generate()]
  const events = await stream.take(3)
  t.same(events.map((e) => e.id), published.map((p) => p?.id))
  t.same(events.map((e) => e.event), [undefined, undefined, undefined], 'generated messages are plain message events')
  const messages = events.map((e) => JSON.parse(e.data))
  for (const message of messages) {
    t.same(Object.keys(message).sort(), ['channel', 'id', 'text', 'time'])
    t.match(message, { id: /^[\w-]{21}$/, text: /\w/, time: /^\d{4}-\d\d-\d\dT/ })
    t.equal(new Date(message.time).toISOString(), message.time)
  }
  t.same(messages.map((m) => m.channel), CHANNELS, 'the source rotates the channels')
  t.same(published.map((p) => p?.channel), CHANNELS, 'and publishes on the channel its data names')
  t.equal(new Set(messages.map((m) => m.text)).size, 3, 'the source rotates its texts')
  t.same(published[0]?.data, messages[0])
})

t.test('POST /messages publishes a chat event; bad input gets 400 with a sentence to show', async (t) => {
  const { app, base } = await startExample(t)
  const news = await openStream(`${base}/events?channel=news`)
  t.teardown(() => news.close())

  const ok = await postJson(`${base}/messages`, { text: 'Hello, other window', channel: 'news' })
  t.equal(ok.status, 201)
  t.match(ok.body, { id: /^\d+-\d+$/, event: 'chat', channel: 'news', data: { text: 'Hello, other window', channel: 'news' } })
  const [event] = await news.take(1)
  t.equal(event?.id, ok.body.id, 'the stream client gets it under the id the POST answered')
  t.equal(event?.event, 'chat')
  t.same(JSON.parse(event?.data ?? ''), ok.body.data)

  const plain = await postJson(`${base}/messages`, { text: 'x'.repeat(500), extra: 'dropped' })
  t.equal(plain.status, 201, '500 characters are allowed')
  t.equal(plain.body.channel, 'default', 'the channel defaults to default')
  t.same(Object.keys(plain.body.data).sort(), ['channel', 'id', 'text', 'time'])
  t.equal((await publishChat(app.pushStream, 'from the server', 'alerts')).event, 'chat')

  const cases: Array<[string, unknown, RegExp]> = [
    ['no text', { channel: 'news' }, /^Write a text: 1 to 500 characters/],
    ['an empty text', { text: '' }, /^Write a text/],
    ['only spaces', { text: ' \t\n ' }, /not only spaces/],
    ['501 characters', { text: 'x'.repeat(501) }, /^The text is too long: 500 characters at most\.$/],
    ['a text that is not a string', { text: { a: 1 } }, /^Write a text/],
    ['an unknown channel', { text: 'hi', channel: 'room-9' }, /^Unknown channel: pick one of default, news, alerts\.$/],
    ['an array', [1], /^Send a JSON object/],
    ['null', null, /^Send a JSON object/]
  ]
  for (const [what, body, message] of cases) {
    const answer = await postJson(`${base}/messages`, body)
    t.equal(answer.status, 400, `${what}: 400`)
    t.match(answer.body, { statusCode: 400, error: 'Bad Request', message }, `${what}: ${answer.body.message}`)
  }
  const notJson = await send(`${base}/messages`, 'POST', '{"text":', { 'content-type': 'application/json' })
  t.equal(notJson.status, 400, 'broken JSON: 400')
  t.match(notJson.body.message, /JSON/)
  const text = await send(`${base}/messages`, 'POST', 'hello', { 'content-type': 'text/plain' })
  t.equal(text.status, 400, 'plain text: 400')
  t.match(text.body.message, /^Send a JSON object/)
  const xml = await send(`${base}/messages`, 'POST', '<text/>', { 'content-type': 'application/xml' })
  t.equal(xml.status, 415, 'a type Fastify cannot parse: 415')
  t.equal(app.pushStream.stats().published, 3, 'nothing refused was published')
})

t.test('Ask: an answer is started once under the page\'s key and followed by every request; cancel ends it for all; a follower never starts one', async (t) => {
  const { base } = await startExample(t, { answerDelay: 20 })
  const key = 'answer-key-1'
  const question = 'Is it kept?'
  const words = cannedAnswer(question)
  const stats = async (query = ''): Promise<AnswerStats> => (await send(`${base}/ask/stats${query}`, 'GET', undefined)).body

  const first = await openStream(`${base}/ask/${key}?q=${encodeURIComponent(question)}`)
  t.teardown(() => first.close())
  await first.take(3)
  // Another request for the key, resuming after the second word, even without the question.
  const second = await openStream(`${base}/ask/${key}?lastEventId=2`)
  t.teardown(() => second.close())
  await second.take(1)
  t.same((await send(`${base}/ask/${key}/cancel`, 'POST', undefined)).body, { cancelled: true }, 'the cancel found it running')
  await Promise.all([first.ended, second.ended])
  for (const [name, stream, from] of [['the first', first, 0], ['the second', second, 2]] as const) {
    const end = stream.events.at(-1)
    t.same([end?.event, end?.data], ['push-stream:end', '{"reason":"cancelled"}'], `${name} request ends with the cancel`)
    const got = stream.events.slice(0, -1)
    t.same(got.map((event) => event.id), got.map((_event, i) => String(from + i + 1)), `${name}: ids 1, 2, 3… of the answer, from after its Last-Event-ID`)
    t.same(got.map((event) => JSON.parse(event.data)), got.map((_event, i) => ({ index: from + i, text: words[from + i] })), `${name}: the words in order`)
  }
  t.ok(first.events.length - 1 < words.length, 'cancelled mid-answer')
  t.same(await stats('?releasedAbove=0'), { started: 1, released: 1, lastEnd: 'FST_PUSH_STREAM_CANCELLED' }, 'one source for both, released by the cancel')
  t.same((await send(`${base}/ask/${key}/cancel`, 'POST', undefined)).body, { cancelled: false }, 'a second cancel finds nothing running')

  // A follower of a key not kept (Last-Event-ID 0: from the start) is told so, and starts nothing.
  const unknown = await openStream(`${base}/ask/never-asked?lastEventId=0`)
  await unknown.ended
  t.same(unknown.events.map((event) => event.event), ['reset', 'push-stream:end'], 'a reset, then the end')
  t.equal(unknown.events[1]?.data, '{"reason":"unknown-stream"}', 'of an unknown stream')
  const bare = await send(`${base}/ask/never-asked`, 'GET', undefined)
  t.equal(bare.status, 400, 'neither a question nor a Last-Event-ID: 400')
  t.match(bare.body.message, /^A new answer needs a question/)
  t.equal((await send(`${base}/ask/short?q=hi`, 'GET', undefined)).status, 400, 'a key of fewer than 8 characters: 400')
  t.equal((await send(`${base}/ask/${key}?q=%20`, 'GET', undefined)).status, 400, 'a blank question: 400')
  t.same(await stats(), { started: 1, released: 1, lastEnd: 'FST_PUSH_STREAM_CANCELLED' }, 'no other source started')
})

t.test('CORS, when configured: one origin allowed on the stream, the client and /messages, with a preflight', async (t) => {
  const origin = 'https://other.example'
  const { base } = await startExample(t, { cors: origin })

  const stream = await openStream(`${base}/events`, { origin })
  t.teardown(() => stream.close())
  t.equal(stream.status, 200)
  t.equal(stream.headers['access-control-allow-origin'], origin, 'the stream keeps the CORS header set in onRequest')
  t.equal(stream.headers.vary, 'origin')
  t.match(stream.headers['content-type'], /^text\/event-stream/)

  const script = await request(`${base}/events/client.js`, { headers: { origin } })
  t.equal(script.headers['access-control-allow-origin'], origin, 'a module script from another origin needs it too')

  const preflight = await send(`${base}/messages`, 'OPTIONS', undefined, {
    origin,
    'access-control-request-method': 'POST',
    'access-control-request-headers': 'content-type'
  })
  t.equal(preflight.status, 204)
  t.equal(preflight.headers['access-control-allow-origin'], origin)
  t.equal(preflight.headers['access-control-allow-methods'], 'POST')
  t.equal(preflight.headers['access-control-allow-headers'], 'content-type')
  t.equal(preflight.headers.vary, 'origin')

  const posted = await postJson(`${base}/messages`, { text: 'from afar' }, { origin })
  t.equal(posted.status, 201)
  t.equal(posted.headers['access-control-allow-origin'], origin)
  const refused = await postJson(`${base}/messages`, { text: '' }, { origin })
  t.equal(refused.status, 400)
  t.equal(refused.headers['access-control-allow-origin'], origin, 'the page on the other origin can read a 400 too')

  const stranger = await request(`${base}/`, { headers: { origin: 'https://evil.example' } })
  t.equal(stranger.headers['access-control-allow-origin'], undefined, 'another origin gets no CORS header')
  t.equal(stranger.headers.vary, 'origin')
  t.equal((await request(`${base}/`)).headers['access-control-allow-origin'], undefined, 'nor does a request with no origin')

  for (const bad of ['*', 'https://other.example/', 'https://other.example/path', 'other.example', 'ftp://other.example']) {
    await t.rejects(build({ cors: bad }), { name: 'TypeError', message: /^cors must be one origin/ }, `cors ${JSON.stringify(bad)} is refused`)
  }
})

t.test('without CORS: no CORS header and no preflight route', async (t) => {
  const { base } = await startExample(t)
  const page = await request(`${base}/`, { headers: { origin: 'https://other.example' } })
  t.equal(page.headers['access-control-allow-origin'], undefined)
  t.equal(page.headers.vary, undefined)
  const preflight = await send(`${base}/messages`, 'OPTIONS', undefined, { origin: 'https://other.example' })
  t.equal(preflight.status, 404)
})

t.test('HTTP/2 with a self-signed certificate answers over TLS, HTTP/1.1 too', { skip: hasOpenssl ? false : 'openssl is not installed' }, async (t) => {
  const { app, base } = await startExample(t, { http2: selfSignedCertificate() })
  t.match(base, /^https:/)
  const session = http2.connect(base, { rejectUnauthorized: false })
  t.teardown(() => session.destroy())
  session.on('error', () => {})
  await once(session, 'connect')
  t.equal(session.alpnProtocol, 'h2', 'negotiated HTTP/2')
  const cert = (session.socket as import('node:tls').TLSSocket).getPeerCertificate()
  t.match(cert.subject, { CN: 'localhost' })
  t.match(cert.subjectaltname, /DNS:localhost, IP Address:127\.0\.0\.1/)

  const page = await h2Get(session, '/')
  t.equal(page.headers[':status'], 200)
  t.match(page.body, /id="state"/)

  const streamed = h2Get(session, '/events?channel=alerts', (body) => body.includes('event: chat'))
  // Published once the stream is open: it has no replay to come from.
  await waitFor(() => app.pushStream.stats().connections === 1, 'the HTTP/2 stream to open')
  const id = (await publishChat(app.pushStream, 'over h2', 'alerts')).id
  const events = await waitFor(streamed, 'an event over HTTP/2', 5000)
  t.equal(events.headers[':status'], 200)
  t.equal(events.headers.connection, undefined)
  t.match(events.body, `id: ${id}\nevent: chat\ndata: `)

  const h1 = await new Promise<http.IncomingMessage>((resolve, reject) => {
    https.get(`${base}/style.css`, { rejectUnauthorized: false, agent: false }, resolve).on('error', reject)
  })
  h1.resume()
  t.equal(h1.statusCode, 200, 'allowHTTP1: an HTTP/1.1 client over TLS is served')
  t.equal(h1.httpVersion, '1.1')
})

t.test('the certificate: from DEMO_TLS_KEY and DEMO_TLS_CERT, made by openssl, or a clear error', async (t) => {
  t.throws(() => selfSignedCertificate('/nonexistent/openssl'),
    { message: /needs a TLS certificate and "\/nonexistent\/openssl" was not found to make one: set DEMO_TLS_KEY and DEMO_TLS_CERT/ })
  t.throws(() => certificateFromEnv({ DEMO_TLS_KEY: '/some/key.pem' }), { message: /Set both DEMO_TLS_KEY and DEMO_TLS_CERT/ })
  t.throws(() => certificateFromEnv({ DEMO_TLS_CERT: '/some/cert.pem' }), { message: /Set both/ })
  if (!hasOpenssl) return
  const made = certificateFromEnv({})
  t.equal(made.generated, true)
  t.match(made.cert.toString(), /^-----BEGIN CERTIFICATE-----/)
  t.match(made.key.toString(), /-----BEGIN PRIVATE KEY-----/)
  const dir = mkdtempSync(join(tmpdir(), 'push-stream-test-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  writeFileSync(join(dir, 'key.pem'), made.key)
  writeFileSync(join(dir, 'cert.pem'), made.cert)
  const read = certificateFromEnv({ DEMO_TLS_KEY: join(dir, 'key.pem'), DEMO_TLS_CERT: join(dir, 'cert.pem') })
  t.same(read, { key: made.key, cert: made.cert, generated: false })
})

t.test('npm run demo starts a server that prints its URL and stops on SIGTERM', async (t) => {
  const port = await freePort()
  const { child, exited } = startDemo(t, { PORT: String(port) })

  const { url } = await waitForUrl(child, 20_000)
  t.equal(url, `http://127.0.0.1:${port}/`)

  const page = await request(url)
  t.equal(page.status, 200)
  t.match(page.body, /id="state"/)

  child.kill('SIGTERM')
  const code = await waitFor(exited, 'the demo to exit after SIGTERM', 10_000)
  t.equal(code, 0, 'closes cleanly on SIGTERM')
})

t.test('DEMO_HTTP2=1 with DEMO_CORS_ORIGIN: HTTP/2 over TLS with a generated certificate, CORS on', { skip: hasOpenssl ? false : 'openssl is not installed' }, async (t) => {
  const port = await freePort()
  const origin = 'https://other.example'
  const { child, exited } = startDemo(t, { PORT: String(port), DEMO_HTTP2: '1', DEMO_CORS_ORIGIN: origin, DEMO_TLS_KEY: '', DEMO_TLS_CERT: '' })
  const { url, logged } = await waitForUrl(child, 20_000)
  t.equal(url, `https://127.0.0.1:${port}/`)
  t.ok(logged.some((line) => /HTTP\/2: the streams of all tabs now share one connection/.test(line)), 'says tabs share one connection')
  t.ok(logged.some((line) => line.includes(origin)), 'names the allowed origin')

  const session = http2.connect(url, { rejectUnauthorized: false })
  t.teardown(() => session.destroy())
  session.on('error', () => {})
  const stream = session.request({ ':path': '/events', origin })
  const [headers] = await once(stream, 'response') as [http2.IncomingHttpHeaders]
  stream.close()
  t.equal(headers[':status'], 200)
  t.equal(headers['access-control-allow-origin'], origin)
  session.close()

  child.kill('SIGTERM')
  t.equal(await waitFor(exited, 'the demo to exit after SIGTERM', 10_000), 0)
})

t.test('DEMO_HTTP2=1 with half a certificate: exits 1 saying what to set', async (t) => {
  const { child, exited } = startDemo(t, { PORT: String(await freePort()), DEMO_HTTP2: '1', DEMO_TLS_KEY: '/some/key.pem', DEMO_TLS_CERT: '' })
  const stderr = collectStderr(child)
  t.equal(await waitFor(exited, 'the demo to exit', 20_000), 1)
  t.match(stderr(), /Set both DEMO_TLS_KEY and DEMO_TLS_CERT/)
  t.notMatch(stderr(), /\n\s+at /, 'a message, not a stack trace')
})

import t from 'tap'
import { readFileSync } from 'node:fs'
import { pathToFileURL } from 'node:url'
import Fastify from 'fastify'
import pushStream from '../lib/index.js'
import { loadClientScript } from '../lib/client-script.js'
import { request, startApp } from './helpers/sse.js'

const built = readFileSync(new URL('../dist/client/index.js', import.meta.url), 'utf8')

t.test('client: true serves the built client at <path>/client.js, cached and revalidated by ETag', async (t) => {
  const { url } = await startApp(t, { client: true })
  const res = await request(`${url}/events/client.js`)
  t.equal(res.status, 200)
  t.equal(res.headers['content-type'], 'text/javascript; charset=utf-8')
  t.equal(res.headers['cache-control'], 'public, max-age=86400')
  t.match(res.headers.etag, /^"[\w-]{27}"$/)
  t.equal(res.body, built)
  // One bundle: connect is exported from it, under whatever local name the minifier gave it.
  t.match(res.body, /export\s*\{[^}]*\bconnect\b[^}]*\}/)
  const again = await request(`${url}/events/client.js`, { headers: { 'if-none-match': res.headers.etag as string } })
  t.equal(again.status, 304)
  t.equal(again.body, '')
  const stale = await request(`${url}/events/client.js`, { headers: { 'if-none-match': '"other"' } })
  t.equal(stale.status, 200)
})

t.test('the client route follows the path, with or without a trailing slash', async (t) => {
  const { url } = await startApp(t, { client: true, path: '/sse/' })
  t.equal((await request(`${url}/sse/client.js`)).status, 200)
})

t.test('without client: true there is no client route', async (t) => {
  const { url } = await startApp(t)
  t.equal((await request(`${url}/events/client.js`)).status, 404)
})

t.test('client must be a boolean', async (t) => {
  const app = Fastify()
  app.register(pushStream, { client: 'yes' as unknown as boolean })
  await t.rejects(async () => { await app.ready() }, { code: 'FST_PUSH_STREAM_INVALID_OPTION', message: /"client": got "yes", expected true or false/ })
  await app.close()
})

t.test('a missing build is a named error that says where it looked', async (t) => {
  const nowhere = pathToFileURL('/nonexistent/client/index.js')
  t.throws(() => loadClientScript([nowhere]), { code: 'FST_PUSH_STREAM_CLIENT_MISSING', message: /\/nonexistent\/client\/index\.js.*npm run build/ })
  const found = loadClientScript([nowhere, new URL('../dist/client/index.js', import.meta.url)])
  t.equal(found.body.toString('utf8'), built, 'the first candidate that exists is used')
})

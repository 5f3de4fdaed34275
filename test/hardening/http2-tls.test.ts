import t from 'tap'
import { spawnSync } from 'node:child_process'
import { mkdtempSync, readFileSync, rmSync } from 'node:fs'
import http2 from 'node:http2'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import Fastify from 'fastify'
import pushStream from '../../lib/index.js'
import { openH2Stream } from '../helpers/h2.js'
import type { Teardown } from '../helpers/teardown.js'
import { waitFor } from '../helpers/wait.js'

const STREAMS = 200
const RETRY = 2000

/** A self-signed certificate for 127.0.0.1, made for this run in a temporary folder. */
function selfSigned (t: Teardown): { key: Buffer, cert: Buffer } {
  const dir = mkdtempSync(join(tmpdir(), 'push-stream-tls-'))
  t.teardown(() => rmSync(dir, { recursive: true, force: true }))
  const made = spawnSync('openssl', [
    'req', '-x509', '-newkey', 'ec', '-pkeyopt', 'ec_paramgen_curve:prime256v1', '-nodes', '-days', '1',
    '-subj', '/CN=localhost', '-addext', 'subjectAltName=IP:127.0.0.1,DNS:localhost',
    '-keyout', join(dir, 'key.pem'), '-out', join(dir, 'cert.pem')
  ], { encoding: 'utf8' })
  if (made.status !== 0) throw new Error(`openssl failed: ${made.stderr}`)
  return { key: readFileSync(join(dir, 'key.pem')), cert: readFileSync(join(dir, 'cert.pem')) }
}

t.test(`HTTP/2 over TLS: ${STREAMS} streams on one session, no Connection header, no warning; replay and close as on HTTP/1.1`, async (t) => {
  const warnings: string[] = []
  const onWarning = (warning: Error): void => { warnings.push(`${warning.name}: ${warning.message}`) }
  process.on('warning', onWarning)
  t.teardown(() => process.off('warning', onWarning))

  const { key, cert } = selfSigned(t)
  const app = Fastify({ http2: true, https: { key, cert } })
  t.teardown(() => app.close())
  await app.register(pushStream, { interval: 0, retry: RETRY, history: 100 })
  let sessions = 0
  app.server.on('secureConnection', () => { sessions++ })
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }

  const session = http2.connect(`https://127.0.0.1:${port}`, { ca: cert })
  t.teardown(() => session.destroy())
  session.on('error', () => {})
  await waitFor(new Promise((resolve) => session.once('remoteSettings', resolve)), 'the server\'s settings', 5000)

  const streams = Array.from({ length: STREAMS }, () => openH2Stream(session, '/events'))
  const headers = await waitFor(Promise.all(streams.map((s) => s.response)), `${STREAMS} responses`, 10_000)
  t.ok(headers.every((h) => Number(h[':status']) === 200 && h['content-type'] === 'text/event-stream; charset=utf-8'), `${STREAMS} × 200 text/event-stream`)
  t.ok(headers.every((h) => h.connection === undefined && h['keep-alive'] === undefined && h['transfer-encoding'] === undefined), 'no Connection, Keep-Alive or Transfer-Encoding header')
  t.equal(sessions, 1, 'all on one TLS connection')
  t.equal(app.pushStream.stats().connections, STREAMS)

  const first = await app.pushStream.publish('one')
  await app.pushStream.publish('two', { event: 'named' })
  await app.pushStream.publish('three')
  const got = await waitFor(Promise.all(streams.map((s) => s.take(3))), 'three events on every stream', 10_000)
  t.ok(got.every((events) => events.map((e) => e.data).join() === 'one,two,three'), 'every stream got the three events in order')

  const resumed = openH2Stream(session, '/events', { 'last-event-id': first.id })
  t.same((await waitFor(resumed.take(2), 'the replay', 5000)).map((e) => e.data), ['two', 'three'], 'Last-Event-ID replays exactly what was missed')
  const unknown = openH2Stream(session, '/events', { 'last-event-id': 'not-an-id' })
  t.same((await waitFor(unknown.take(1), 'the reset', 5000)).map((e) => e.event), ['reset'], 'an unknown id gets a reset')

  const started = performance.now()
  await app.close()
  const took = performance.now() - started
  t.ok(took < 1000, `close() resolved in ${took.toFixed(0)} ms`)
  const all = [...streams, resumed, unknown]
  await waitFor(Promise.all(all.map((s) => s.ended)), 'every stream to end', 5000)
  const finals = all.map((s) => s.retries.at(-1) as number)
  t.ok(all.every((s) => s.retries.length === 2), 'each stream got a final retry: after its opening one')
  t.ok(finals.every((r) => r >= RETRY && r < RETRY + Math.max(RETRY, 1000)), 'within retry and retry plus the jitter')
  t.ok(new Set(finals).size > 20, `jittered: ${new Set(finals).size} distinct values`)
  t.same(warnings, [], 'no Node warning')
})

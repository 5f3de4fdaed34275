// Behind real nginx with the README's config and with nginx's defaults (buffering on, HTTP/1.0 to the app):
// events arrive live through both; and an idle stream outlives a proxy_read_timeout a little above heartbeat.
import { readFile } from 'node:fs/promises'
import t from 'tap'
import { StreamClient, startApp } from '../helpers/sse.js'
import { nginxMissing, recommendedLocation, startNginx } from './nginx.js'

const missing = nginxMissing()
if (missing !== undefined) {
  t.plan(0, missing)
} else {
  const configs: Array<[string, (appPort: number) => string]> = [
    ['the README\'s config', (appPort) => recommendedLocation(appPort)],
    ['nginx\'s defaults (buffering on, HTTP/1.0 to the app)', (appPort) => `proxy_pass http://127.0.0.1:${appPort};`]
  ]
  for (const [name, location] of configs) {
    t.test(`through nginx with ${name}: every event once, in order, and live`, async (t) => {
      const { app, url } = await startApp(t, { heartbeat: 0 })
      const { port } = await startNginx(t, location(Number(new URL(url).port)))
      const client = new StreamClient(`http://127.0.0.1:${port}/events`)
      t.teardown(() => client.close())
      await client.open()
      const latencies: number[] = []
      for (let n = 1; n <= 50; n++) {
        const sent = performance.now()
        await app.pushStream.publish({ n })
        await client.until(() => client.events.length === n, `event ${n}`)
        latencies.push(performance.now() - sent)
      }
      t.same(client.events.map((event) => (JSON.parse(event.data) as { n: number }).n), Array.from({ length: 50 }, (_, i) => i + 1), 'every event once, in order')
      const sorted = latencies.sort((a, b) => a - b)
      const p50 = sorted[25] as number
      t.ok(p50 < 50, `publish to receipt through nginx: p50 ${p50.toFixed(1)} ms, max ${(sorted.at(-1) as number).toFixed(1)} ms`)
    })
  }

  t.test('an idle stream outlives a proxy_read_timeout a little above heartbeat', async (t) => {
    const HEARTBEAT = 1000
    const { app, url } = await startApp(t, { heartbeat: HEARTBEAT })
    const { port, errorLog } = await startNginx(t, recommendedLocation(Number(new URL(url).port), '1300ms'))
    const client = new StreamClient(`http://127.0.0.1:${port}/events`)
    t.teardown(() => client.close())
    await client.open()
    // Four heartbeats' worth of silence but for the heartbeats themselves: nginx would cut a silence past 1.3 s.
    await client.until(() => client.comments.length >= 4, 'four heartbeats')
    t.equal(client.isEnded, false, 'the stream is still open')
    await app.pushStream.publish('still here')
    await client.until(() => client.events.length === 1, 'an event after the idle time')
    t.equal(client.events[0]?.data, 'still here')
    t.notMatch(await readFile(errorLog, 'utf8'), /timed out/, 'nginx logged no timeout')
  })
}

import t from 'tap'
import { openStream, startApp } from './helpers/sse.js'

// No stream goes longer than `heartbeat` without a byte, whenever its last
// write was: a proxy's read timeout a little above the heartbeat never cuts
// an idle stream. (A timer a little late adds to that; the margin allows for it.)

const HEARTBEAT = 1000
const MARGIN = 300

t.test(`after the opening block and after each event, the next byte comes within heartbeat (${HEARTBEAT} ms)`, async (t) => {
  const { app, url } = await startApp(t, { heartbeat: HEARTBEAT })
  const client = await openStream(`${url}/events`)
  await client.until(() => client.retries.length === 1, 'the opening block')
  const gaps: number[] = []
  const silenceUntilComment = async (): Promise<void> => {
    const since = performance.now()
    const seen = client.comments.length
    await client.until(() => client.comments.length > seen, 'a heartbeat')
    gaps.push(performance.now() - since)
  }
  await silenceUntilComment()
  for (let n = 1; n <= 3; n++) {
    await app.pushStream.publish(`event ${n}`)
    await client.until(() => client.events.length === n, `event ${n}`)
    await silenceUntilComment()
  }
  t.comment(`silences before a heartbeat: ${gaps.map((gap) => gap.toFixed(0)).join(', ')} ms`)
  for (const gap of gaps) t.ok(gap < HEARTBEAT + MARGIN, `silent ${gap.toFixed(0)} ms, within ${HEARTBEAT} ms (+${MARGIN} ms for a late timer)`)
  client.close()
})

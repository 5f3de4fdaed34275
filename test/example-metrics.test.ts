import Fastify from 'fastify'
import t from 'tap'
import pushStream, { diagnostics } from '../lib/index.js'
import { CHANNELS, build, publishChat, type BuildOptions } from '../example/server.js'
import { END_REASONS, METRICS_PATH, serveMetrics } from '../example/metrics.js'
import { openStream, request } from './helpers/sse.js'
import type { Teardown } from './helpers/teardown.js'
import { waitFor } from './helpers/wait.js'

/** One line of the Prometheus text format: `name{label="value",…} value`. */
interface Sample {
  name: string
  labels: Record<string, string>
  value: number
}

/** The samples of a Prometheus text exposition, and each family's type from its `# TYPE` line. */
function parseMetrics (text: string): { samples: Sample[], types: Map<string, string> } {
  const samples: Sample[] = []
  const types = new Map<string, string>()
  for (const line of text.split('\n')) {
    if (line === '') continue
    const type = /^# TYPE (\S+) (\S+)$/.exec(line)
    if (type !== null) types.set(type[1] as string, type[2] as string)
    if (line.startsWith('#')) continue
    const sample = /^([A-Za-z_:][\w:]*)(?:\{(.*)\})? (\S+)(?: -?\d+)?$/.exec(line)
    if (sample === null) throw new Error(`not a sample line: ${JSON.stringify(line)}`)
    const labels: Record<string, string> = {}
    for (const [, name, value] of (sample[2] ?? '').matchAll(/(\w+)="((?:[^"\\]|\\.)*)"/g)) {
      labels[name as string] = (value as string).replace(/\\(.)/g, (_all, c: string) => (c === 'n' ? '\n' : c))
    }
    const value = sample[3] as string
    samples.push({ name: sample[1] as string, labels, value: value === '+Inf' ? Infinity : value === '-Inf' ? -Infinity : Number(value) })
  }
  return { samples, types }
}

/** The value of the one sample of `name` with exactly `labels`; undefined when there is none. */
function valueOf (samples: Sample[], name: string, labels: Record<string, string> = {}): number | undefined {
  const wanted = Object.entries(labels)
  const found = samples.filter((sample) => sample.name === name &&
    Object.keys(sample.labels).length === wanted.length &&
    wanted.every(([label, value]) => sample.labels[label] === value))
  if (found.length > 1) throw new Error(`${found.length} samples of ${name} ${JSON.stringify(labels)}`)
  return found[0]?.value
}

/** Builds the demo with `options`, listening on a free port; closed in teardown. */
async function startExample (t: Teardown, options: BuildOptions = {}): Promise<{ app: Awaited<ReturnType<typeof build>>, base: string }> {
  const app = await build({ logger: false, interval: 0, ...options })
  t.teardown(() => app.close())
  await app.listen({ port: 0, host: '127.0.0.1' })
  const { port } = app.server.address() as { port: number }
  return { app, base: `http://127.0.0.1:${port}` }
}

t.test('GET /metrics: open streams, events, deliveries, ends, resumes and presence, in the Prometheus text format', async (t) => {
  const { app, base } = await startExample(t)

  // Two streams: one on default and news, one on news.
  const both = await openStream(`${base}/events?channel=default&channel=news`)
  t.teardown(() => both.close())
  const news = await openStream(`${base}/events?channel=news`)
  t.teardown(() => news.close())
  await waitFor(() => app.pushStream.subscribers('news') === 2, 'both streams on news')

  // Four events: one to one stream, two to two streams, one to none (5 deliveries).
  await publishChat(app.pushStream, 'one', 'default')
  const two = await publishChat(app.pushStream, 'two', 'news')
  await publishChat(app.pushStream, 'three', 'news')
  await publishChat(app.pushStream, 'four', 'alerts')
  await both.take(3)
  await news.take(2)

  news.close()
  await waitFor(() => app.pushStream.stats().connections === 1, 'the closed stream to end')

  // A client that resumes after "two" gets "three" replayed; one with an id the server never gave gets a reset.
  const resumed = await openStream(`${base}/events?channel=news`, { 'last-event-id': two.id })
  t.teardown(() => resumed.close())
  const unknown = await openStream(`${base}/events?channel=alerts`, { 'last-event-id': '1-0' })
  t.teardown(() => unknown.close())
  t.equal(JSON.parse((await resumed.take(1))[0]?.data ?? '').text, 'three', 'the resumed stream got the missed event')
  t.equal((await unknown.take(1))[0]?.event, 'reset')
  await waitFor(() => app.pushStream.subscribers('news') === 2 && app.pushStream.subscribers('alerts') === 1, 'both resumed streams live')

  const scraped = await request(`${base}${METRICS_PATH}`)
  t.equal(scraped.status, 200)
  t.equal(scraped.headers['content-type'], 'text/plain; version=0.0.4; charset=utf-8', 'the Prometheus text format')
  const { samples, types } = parseMetrics(scraped.body)
  const value = (name: string, labels?: Record<string, string>): number | undefined => valueOf(samples, name, labels)

  t.same(samples.filter((sample) => !sample.name.startsWith('push_stream_')), [], 'a registry of its own: no process_ or nodejs_ metrics')
  t.equal(value('push_stream_open_streams'), 3)
  t.equal(value('push_stream_open_source_streams'), 0)
  t.equal(value('push_stream_resumable_streams'), 0)
  t.equal(value('push_stream_events_published_total'), 4)
  t.equal(value('push_stream_deliveries_total'), 5)

  t.equal(value('push_stream_ended_total', { reason: 'client-closed' }), 1, 'one stream ended, closed by its client')
  for (const reason of END_REASONS.filter((reason) => reason !== 'client-closed')) {
    t.equal(value('push_stream_ended_total', { reason }), 0, `every other reason at 0: ${reason}`)
  }
  t.equal(value('push_stream_duration_seconds_count'), 1)
  t.equal(value('push_stream_duration_seconds_bucket', { le: '+Inf' }), 1)
  t.ok((value('push_stream_duration_seconds_sum') ?? -1) >= 0)

  t.equal(value('push_stream_opened_total', { kind: 'broadcast', resumed: 'false' }), 2)
  t.equal(value('push_stream_opened_total', { kind: 'broadcast', resumed: 'true' }), 2, 'both with a Last-Event-ID count as resumed')
  t.equal(value('push_stream_opened_total', { kind: 'source', resumed: 'false' }), 0)
  t.equal(value('push_stream_replayed_events_total'), 1)
  t.equal(value('push_stream_resets_total', { reason: 'unknown-last-event-id' }), 1)
  t.equal(value('push_stream_resets_total', { reason: 'events-lost' }), 0)
  t.equal(value('push_stream_slow_disconnects_total'), 0)
  t.equal(value('push_stream_adapter_outages_total'), 0)
  t.equal(value('push_stream_adapter_outage_seconds_count'), 0)

  const subscribers = samples.filter((sample) => sample.name === 'push_stream_subscribers')
  t.same(subscribers.map((sample) => sample.labels), CHANNELS.map((channel) => ({ channel })), 'one series per demo channel, no other label')
  t.same(Object.fromEntries(subscribers.map((sample) => [sample.labels.channel, sample.value])), { default: 1, news: 2, alerts: 1 })

  const received = [both, news, resumed, unknown].reduce((sum, stream) => sum + Buffer.byteLength(stream.raw), 0)
  const written = value('push_stream_written_bytes_total') ?? 0
  t.ok(written >= received, `bytes written (${written}) cover what the clients read (${received})`)
  t.ok(written <= app.pushStream.stats().bytesWritten, 'and are stats().bytesWritten at the scrape')

  t.equal(types.get('push_stream_open_streams'), 'gauge')
  t.equal(types.get('push_stream_subscribers'), 'gauge')
  t.equal(types.get('push_stream_events_published_total'), 'counter')
  t.equal(types.get('push_stream_written_bytes_total'), 'counter')
  t.equal(types.get('push_stream_duration_seconds'), 'histogram')
  t.equal(types.get('push_stream_adapter_outage_seconds'), 'histogram')
})

t.test('the metrics stop listening to the diagnostics channels when the app closes', async (t) => {
  const channels = Object.values(diagnostics)
  t.same(channels.filter((channel) => channel.hasSubscribers), [], 'nobody listens before')
  const app = await build({ interval: 0 })
  t.teardown(() => app.close())
  await app.ready()
  t.ok(channels.every((channel) => channel.hasSubscribers), 'the demo listens to every channel')
  await app.close()
  t.same(channels.filter((channel) => channel.hasSubscribers), [], 'nobody listens after close')
})

t.test('serveMetrics refuses, at once, an app without the plugin and a bad channel name', async (t) => {
  const bare = Fastify()
  t.teardown(() => bare.close())
  t.throws(() => serveMetrics(bare, { channels: [] }), { message: /register it first/ })
  const app = Fastify()
  t.teardown(() => app.close())
  await app.register(pushStream, { interval: 0 })
  t.throws(() => serveMetrics(app, { channels: ['news', 'two words'] }), { name: 'TypeError', message: 'serveMetrics: not a channel name: "two words"' })
})

import diagnosticsChannel from 'node:diagnostics_channel'
import type { FastifyInstance } from 'fastify'
import { Counter, Gauge, Histogram, Registry } from 'prom-client'
import {
  diagnostics,
  isValidChannel,
  type AdapterRecoveryMessage,
  type EventPublishMessage,
  type ResetMessage,
  type StreamEndMessage,
  type StreamEndReason,
  type StreamOpenMessage,
  type TypedChannel
} from '../lib/index.js'

/**
 * The demo's Prometheus metrics: `GET /metrics` in the text format, from a
 * registry of its own. Counters and histograms are fed by the plugin's
 * diagnostics channels as things happen; gauges read `stats()` and
 * `subscribers()` when Prometheus scrapes.
 *
 * The diagnostics channels belong to the process, not to one app: two apps
 * with the plugin in one process would each count the other's streams too.
 * One app per process, as in production, counts its own.
 */

/** Where the metrics are served. */
export const METRICS_PATH = '/metrics'

/** Every reason a stream ends with: each has its series from the start, at 0, so that `rate()` has something to compare with. */
export const END_REASONS = ['client-closed', 'write-failed', 'too-slow', 'stalled', 'server-closing', 'done', 'source-failed'] as const satisfies readonly StreamEndReason[]

/** Every reason a `reset` is written with. */
export const RESET_REASONS = ['unknown-last-event-id', 'events-lost'] as const satisfies ReadonlyArray<ResetMessage['reason']>

/** What `serveMetrics` is given. */
export interface MetricsOptions {
  /**
   * The channels whose subscribers are counted, one series each. A fixed list
   * the application knows, never the channels clients ask for: each label
   * value is a series Prometheus keeps, and a channel per user or room would
   * grow them without end.
   */
  channels: readonly string[]
}

/** Subscribes `onMessage` to `channel`; returns what unsubscribes it. */
function listen<T> (channel: TypedChannel<T>, onMessage: (message: T) => void): () => void {
  const listener = (message: unknown): void => onMessage(message as T)
  diagnosticsChannel.subscribe(channel.name, listener)
  return () => { diagnosticsChannel.unsubscribe(channel.name, listener) }
}

/**
 * Serves `GET /metrics` on `app`, which must have fastify-push-stream
 * registered, and returns the registry (to add metrics of one's own). The
 * channel subscriptions end when the app closes. Throws at once when the
 * plugin is not registered, or a channel is not a valid channel name.
 */
export function serveMetrics (app: FastifyInstance, options: MetricsOptions): Registry {
  if (!app.hasDecorator('pushStream')) throw new Error('serveMetrics needs fastify-push-stream: register it first')
  const invalid = options.channels.filter((channel) => !isValidChannel(channel))
  if (invalid.length > 0) throw new TypeError(`serveMetrics: not a channel name: ${invalid.map((channel) => JSON.stringify(channel)).join(', ')}`)
  const api = app.pushStream
  const registry = new Registry()
  const registers = [registry]

  // Read at each scrape: what is open now.
  const gauge = (name: string, help: string, read: () => number): Gauge => new Gauge({ name, help, registers, collect () { this.set(read()) } })
  gauge('push_stream_open_streams', 'Streams open now, per-request ones included.', () => api.stats().connections)
  gauge('push_stream_open_source_streams', 'Per-request streams (reply.sse(source)) open now.', () => api.stats().streams)
  gauge('push_stream_resumable_streams', 'Resumable streams whose producer runs on this instance.', () => api.stats().resumable)
  // With the Redis adapter: how far this instance reads behind the shared stream (0 without one).
  gauge('push_stream_adapter_lag_entries', 'Entries of the shared stream this instance has not read yet.', () => api.stats().lag?.behind ?? 0)
  gauge('push_stream_adapter_lag_seconds', 'Time between the newest id of the shared stream and the newest delivered here.', () => (api.stats().lag?.ms ?? 0) / 1000)
  registry.registerMetric(new Gauge({
    name: 'push_stream_subscribers',
    help: 'Streams subscribed to each of the application\'s channels (on every instance, with the Redis adapter).',
    labelNames: ['channel'],
    registers: [],
    async collect () {
      // Awaited: a count across instances would be asked of the adapter's engine.
      const counts = await Promise.all(options.channels.map(async (channel) => await api.subscribers(channel)))
      options.channels.forEach((channel, i) => this.set({ channel }, counts[i] as number))
    }
  }))
  registry.registerMetric(new Counter({
    name: 'push_stream_written_bytes_total',
    help: 'Bytes written to every stream since start, the headers aside.',
    registers: [],
    // A running total kept by the plugin: the counter shows it as it is at the scrape.
    collect () {
      this.reset()
      this.inc(api.stats().bytesWritten)
    }
  }))

  // Fed by the diagnostics channels, as things happen.
  const counter = (name: string, help: string, labelNames: string[] = []): Counter => new Counter({ name, help, labelNames, registers })
  const opened = counter('push_stream_opened_total', 'Streams that went live, by kind (broadcast or source) and whether the client resumed with a Last-Event-ID.', ['kind', 'resumed'])
  const replayed = counter('push_stream_replayed_events_total', 'Events sent again to clients that resumed.')
  const ended = counter('push_stream_ended_total', 'Streams ended, by reason.', ['reason'])
  const duration = new Histogram({
    name: 'push_stream_duration_seconds',
    help: 'How long streams stayed open.',
    // From a reconnect loop (seconds) to a tab left open all day.
    buckets: [1, 10, 60, 300, 900, 1800, 3600, 4 * 3600, 12 * 3600],
    registers
  })
  const published = counter('push_stream_events_published_total', 'Events written out to this instance\'s streams (with an adapter, whichever instance published them).')
  const deliveries = counter('push_stream_deliveries_total', 'Events times the streams each was written to.')
  const slow = counter('push_stream_slow_disconnects_total', 'Clients cut off for falling more than maxBufferedBytes behind.')
  const resets = counter('push_stream_resets_total', 'Reset events written, by reason.', ['reason'])
  const outages = counter('push_stream_adapter_outages_total', 'Times the adapter lost its connection to its engine (Redis).')
  const outageSeconds = new Histogram({
    name: 'push_stream_adapter_outage_seconds',
    help: 'How long each adapter outage lasted, observed when the adapter is connected again.',
    buckets: [0.1, 0.5, 1, 5, 10, 30, 60, 300],
    registers
  })

  for (const kind of ['broadcast', 'source']) {
    for (const resumed of ['true', 'false']) opened.inc({ kind, resumed }, 0)
  }
  for (const reason of END_REASONS) ended.inc({ reason }, 0)
  for (const reason of RESET_REASONS) resets.inc({ reason }, 0)

  const unsubscribes = [
    listen<StreamOpenMessage>(diagnostics.open, (message) => {
      opened.inc({ kind: message.kind, resumed: String(message.resumed) })
      replayed.inc(message.replayed)
    }),
    listen<StreamEndMessage>(diagnostics.end, (message) => {
      ended.inc({ reason: message.reason })
      duration.observe(message.durationMs / 1000)
    }),
    listen<EventPublishMessage>(diagnostics.publish, (message) => {
      published.inc()
      deliveries.inc(message.subscribers)
    }),
    listen(diagnostics.slow, () => slow.inc()),
    listen<ResetMessage>(diagnostics.reset, (message) => resets.inc({ reason: message.reason })),
    listen(diagnostics.adapterOutage, () => outages.inc()),
    listen<AdapterRecoveryMessage>(diagnostics.adapterRecovery, (message) => outageSeconds.observe(message.outageMs / 1000))
  ]
  // onClose runs after the plugin's preClose has ended the streams, so their `end` is counted first.
  app.addHook('onClose', async () => {
    for (const unsubscribe of unsubscribes) unsubscribe()
  })

  // At warn: a scrape every few seconds would fill the request log.
  app.get(METRICS_PATH, { logLevel: 'warn' }, async (_request, reply) => {
    reply.type(registry.contentType)
    return await registry.metrics()
  })

  return registry
}

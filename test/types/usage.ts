// Checked by `tsc --noEmit` (npm test): the decorator's types as a user sees them.
// Each @ts-expect-error fails the check if the line it marks ever type-checks.
import Fastify from 'fastify'
import pushStream, {
  FST_PUSH_STREAM_INVALID_OPTION,
  diagnostics,
  type StreamEndMessage,
  type PublishedEvent,
  type PushStreamOptions,
  type PushStreamStats,
  type StreamItem
} from '../../lib/index.js'

export async function usage (): Promise<void> {
  const app = Fastify()
  const options: PushStreamOptions = {
    path: '/events',
    interval: 3000,
    source: async () => ({ data: { text: 'hi' }, event: 'chat', channel: 'room-1' }),
    heartbeat: 15000,
    retry: 3000,
    history: 1000,
    maxBufferedBytes: 1024 * 1024,
    maxConnections: 10000,
    authorize: async (request, channels) => request.headers.authorization !== undefined && channels.length > 0
  }
  await app.register(pushStream, options)
  await app.register(pushStream, { source: ['a', 'b'] })
  await app.register(pushStream, { source: (async function * () { yield 1 })() })

  // One type with every engine: a promise of the event.
  const returned: Promise<PublishedEvent<{ text: string }>> = app.pushStream.publish({ text: 'hi' }, { event: 'chat', channel: 'room-1' })
  const ev = await returned
  const id: string = ev.id
  const channel: string = ev.channel
  const text: string = ev.data.text
  const generated: PublishedEvent | undefined = await app.pushStream.generate()
  const stats: PushStreamStats = app.pushStream.stats()
  const counts: number[] = [stats.connections, stats.published, stats.replayed, stats.resets, stats.slowDisconnects]
  const error = new FST_PUSH_STREAM_INVALID_OPTION('interval', '-1', 'an integer')
  const code: string = error.code
  console.log(id, channel, text, generated, counts, code)

  // @ts-expect-error interval is a number
  await app.register(pushStream, { interval: '3000' })
  // @ts-expect-error there is no such option
  await app.register(pushStream, { intervall: 3000 })
  // @ts-expect-error the event name is a string
  app.pushStream.publish('x', { event: 1 })
  // @ts-expect-error ids are assigned by the plugin, never by the caller
  app.pushStream.publish('x', { id: '1' })
  // @ts-expect-error the event is read once the promise has settled
  console.log(app.pushStream.publish('x').id)
  // @ts-expect-error the options are an object, not an event name
  await app.pushStream.publish('x', 'chat')
  // @ts-expect-error stats has no such counter
  console.log(app.pushStream.stats().dropped)
  // @ts-expect-error authorize receives the channels as strings
  await app.register(pushStream, { authorize: (_request, channels: number[]) => channels.length > 0 })

  // reply.sse: any data by default; an event map types the items.
  interface AnswerEvents {
    token: string
    usage: { tokens: number }
  }
  app.get('/answer', async (_request, reply) => reply.sse<AnswerEvents>(async function * ({ signal, lastEventId }) {
    const aborted: boolean = signal.aborted
    const resumeFrom: string | undefined = lastEventId
    console.log(aborted, resumeFrom)
    yield { event: 'token', data: 'Hel', id: '1' }
    yield { event: 'usage', data: { tokens: 2 }, retry: 1000 }
  }))
  // @ts-expect-error a token's data is a string
  app.get('/wrong', async (_request, reply) => reply.sse<AnswerEvents>([{ event: 'token', data: 1 }]))
  // @ts-expect-error no such event in the map
  const other: StreamItem<AnswerEvents> = { event: 'other', data: 'x' }
  // @ts-expect-error a map without `message` takes no bare data
  const bare: StreamItem<AnswerEvents> = 'bare'
  const message: StreamItem<{ message: string }> = 'bare data is the message event\'s'
  console.log(other, bare, message)
  app.get('/any', (_request, reply) => reply.sse(['text', { data: { n: 1 }, event: 'n' }, Buffer.from('x')], { stallTimeout: 5000 }))
  app.get('/room', (_request, reply) => reply.sse(app.pushStream.subscribe(['room-1', 'room-2'])))
  // @ts-expect-error no such stream option
  app.get('/typo', (_request, reply) => reply.sse(['x'], { stallTimout: 1 }))
  for await (const event of app.pushStream.subscribe('news', { maxQueued: 100 })) {
    const { id, event: name, channel, data }: { id: string, event: string | undefined, channel: string, data: string } = event
    console.log(id, name, channel, data)
  }
  const streams: number = app.pushStream.stats().streams
  console.log(streams)
  const { bytesWritten, resumable }: { bytesWritten: number, resumable: number } = app.pushStream.stats()
  const present: number = await app.pushStream.subscribers('news')
  console.log(bytesWritten, resumable, present)
  diagnostics.end.subscribe((message) => {
    const { requestId, reason, durationMs, bytes, events } = message as StreamEndMessage
    console.log(requestId, reason, durationMs, bytes, events)
  })
  // @ts-expect-error a message of another channel's shape
  diagnostics.open.publish({ reason: 'done' })
}

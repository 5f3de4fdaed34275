/**
 * The tail of the shared stream: XREAD BLOCK on the reader connection, from
 * the last id it delivered, handing each batch to the plugin. A lost
 * connection only pauses it: once Redis is back it reads on from the same id,
 * so a reconnect repeats nothing. Before each read it asks whether the
 * stream still holds everything after that id; when entries left unread
 * (trimmed while it was away, lost with Redis's data), the plugin is told,
 * and the tail reads on after the gap.
 */
import type { Redis } from 'ioredis'
import type { AdapterContext, LogGap } from '../adapter.js'
import type { StreamContinuity } from './continuity.js'
import { toEvents, type StreamEntry } from './entries.js'

/** Entries one XREAD may return. */
const READ_COUNT = 500
/** How long one XREAD waits for new entries before it is sent again. */
const READ_BLOCK_MS = 5000
/** The pause after Redis refused a read, and the longest wait for a reconnect before the tail looks again. */
const PAUSE_MS = 1000

function ignore (): void {}

/** Reads one stream for one adapter, from `start()` until `stop()`. */
export class StreamTail {
  readonly #reader: Redis
  readonly #key: string
  readonly #context: AdapterContext
  readonly #continuity: StreamContinuity
  #lastId: string
  #stopped = false
  #running: Promise<void> = Promise.resolve()
  #wake: () => void = ignore

  /**
   * @param reader the adapter's own connection for blocking reads.
   * @param key the stream's key.
   * @param lastId the id to read after: the newest entry when the adapter started.
   * @param context where events and gaps are delivered and failures logged.
   * @param continuity the check of what the stream still holds, its epoch joined.
   */
  constructor (reader: Redis, key: string, lastId: string, context: AdapterContext, continuity: StreamContinuity) {
    this.#reader = reader
    this.#key = key
    this.#lastId = lastId
    this.#context = context
    this.#continuity = continuity
  }

  /** Starts reading; `ended` settles when the loop has stopped. */
  start (): void {
    this.#running = this.#read()
  }

  /** Ends the loop at its next turn, and at once if it is pausing. */
  stop (): void {
    this.#stopped = true
    this.#wake()
  }

  /** Resolves once the loop has stopped (after `stop()` and the read in flight, which dropping the connection ends). */
  get ended (): Promise<void> {
    return this.#running
  }

  async #read (): Promise<void> {
    const reader = this.#reader
    const key = this.#key
    let refused = false
    while (!this.#stopped) {
      if (reader.status !== 'ready') {
        await this.#pause()
        continue
      }
      let reply: Array<[string, StreamEntry[]]> | null
      try {
        // Asked on the same connection just before the read: nothing is read past a gap unannounced.
        const gap = await this.#continuity.check(reader, this.#lastId)
        if (gap !== undefined) this.#skip(gap)
        // Read through ioredis's xread, which answers one shape whichever protocol the connection speaks.
        reply = await reader.xread('COUNT', READ_COUNT, 'BLOCK', READ_BLOCK_MS, 'STREAMS', key, this.#lastId) as typeof reply
      } catch (error) {
        // A lost connection rejects the read: the next turn waits for the reconnect and reads on from the same id.
        if (this.#stopped) break
        if (reader.status === 'ready' && !refused) {
          // Redis itself refused (the key holds something else than a stream): said once, tried again after a pause.
          this.#context.log.error({ err: error, key }, 'fastify-push-stream: Redis refused to read the stream')
          refused = true
        }
        await this.#pause()
        continue
      }
      refused = false
      if (reply !== null) this.#deliver(reply[0][1])
    }
  }

  #deliver (entries: StreamEntry[]): void {
    this.#lastId = entries[entries.length - 1][0]
    this.#continuity.read(entries.length)
    // A batch of entries written by someone else delivers nothing, but the tail still moves past it.
    const events = toEvents(entries)
    if (events.length > 0) {
      try {
        this.#context.deliver(events)
      } catch (error) {
        // The events count as delivered: sending them again would repeat them to the clients that got them.
        this.#context.log.error({ err: error }, 'fastify-push-stream: delivering events from Redis failed')
      }
    }
  }

  #skip (gap: LogGap): void {
    this.#lastId = gap.head
    try {
      this.#context.lost(gap)
    } catch (error) {
      this.#context.log.error({ err: error }, 'fastify-push-stream: telling the clients of a gap in the Redis stream failed')
    }
  }

  /** Resolves when the reader is ready again, after PAUSE_MS, or at stop. */
  async #pause (): Promise<void> {
    const reader = this.#reader
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        reader.off('ready', done)
        this.#wake = ignore
        resolve()
      }
      const timer = setTimeout(done, PAUSE_MS)
      timer.unref()
      reader.on('ready', done)
      this.#wake = done
    })
  }
}

import type { FastifyRequest } from 'fastify'
import {
  FST_PUSH_STREAM_CANCELLED,
  FST_PUSH_STREAM_INVALID_SOURCE,
  FST_PUSH_STREAM_SERVER_CLOSING,
  FST_PUSH_STREAM_SOURCE_FAILED,
  FST_PUSH_STREAM_STREAM_TOO_LARGE,
  FST_PUSH_STREAM_STREAM_TOO_LONG,
  FST_PUSH_STREAM_TOO_MANY_EVENTS,
  FST_PUSH_STREAM_TOO_MANY_STREAMS,
  describe,
  errorMessage
} from '../errors.js'
import { iteratorOf, isThenable, type StreamSource } from '../source-stream.js'
import { encodeItem } from '../stream-item.js'
import { encodeEvent } from '../wire/encoder.js'
import { RESET_DATA, RESET_EVENT } from '../wire/protocol.js'
import { Recording, type Ending } from './recording.js'

/** The limits of resumable streams (the `resumable` option), resolved. */
export interface ResumableLimits {
  maxDuration: number
  ttl: number
  maxEvents: number
  maxBytes: number
  maxStreams: number
}

/** What a follower reads: frames, then how the stream ended. */
export type FollowerSource = (context: { signal: AbortSignal }) => AsyncIterable<Buffer>

type AnyIterator = Iterator<unknown> | AsyncIterator<unknown>

/** A producer that runs: what stops it. */
interface Producer {
  readonly controller: AbortController
  iterator: AnyIterator | undefined
  readonly timer: NodeJS.Timeout
  readonly released: Promise<void>
  release: () => void
}

/** One key: its recording, its producer while it runs, its expiry once it has ended. */
interface Entry {
  readonly recording: Recording
  producer: Producer | undefined
  expiry: NodeJS.Timeout | undefined
}

const RESET_FRAME = encodeEvent({ event: RESET_EVENT, data: RESET_DATA })
const UNKNOWN: Ending = { kind: 'end', reason: 'unknown-stream' }

/** The position a follower resumes after: the id it sent, when it is one of this stream's; else the start. */
function positionOf (lastEventId: string | undefined, size: number): number {
  if (lastEventId === undefined || !/^\d{1,15}$/.test(lastEventId)) return 0
  const position = Number(lastEventId)
  return position <= size ? position : 0
}

/**
 * Resumable streams in this process's memory, by key: create-or-follow. A
 * new key starts its source detached from the request, recording each event
 * under the key with an id of its own (1, 2, 3…); every request for the key
 * follows the recording from after its `Last-Event-ID`. Kept for `ttl` after
 * the end; bounded in events, bytes, duration and streams running at once.
 */
export class ResumableStreams {
  readonly #limits: ResumableLimits
  readonly #serialize: (data: unknown) => string
  readonly #entries = new Map<string, Entry>()
  #running = 0

  constructor (limits: ResumableLimits, serialize: (data: unknown) => string) {
    this.#limits = limits
    this.#serialize = serialize
  }

  /** Resumable streams whose producer runs now. */
  get running (): number {
    return this.#running
  }

  /**
   * What a request for `key` follows: the recording after its `Last-Event-ID`,
   * started from `source` when the key is new and the request sent no id; a
   * `reset` and `unknown-stream` when it sent one for a key that is not
   * here. Throws `FST_PUSH_STREAM_TOO_MANY_STREAMS` when a new one cannot start.
   */
  follow (key: string, lastEventId: string | undefined, source: StreamSource, request: FastifyRequest): FollowerSource {
    let entry = this.#entries.get(key)
    if (entry === undefined) {
      if (lastEventId !== undefined) return unknownStream
      if (this.#running >= this.#limits.maxStreams) throw new FST_PUSH_STREAM_TOO_MANY_STREAMS(this.#limits.maxStreams)
      entry = { recording: new Recording(key), producer: undefined, expiry: undefined }
      this.#entries.set(key, entry)
      this.#start(entry, source, request)
    }
    const { recording } = entry
    const after = positionOf(lastEventId, recording.size)
    return ({ signal }) => recording.follow(after, signal)
  }

  /** Stops the producer of `key`, if it runs: its followers get `push-stream:end` with `cancelled`. True when one was running. */
  cancel (key: string): boolean {
    const entry = this.#entries.get(key)
    if (entry?.producer === undefined) return false
    this.#stop(entry, new FST_PUSH_STREAM_CANCELLED(key), { kind: 'end', reason: 'cancelled' })
    return true
  }

  /** Stops every producer (their followers end with the server) and forgets every key; resolves once the sources let go, or with how many did not. */
  async close (graceMs: number): Promise<number> {
    const released: Array<Promise<void>> = []
    for (const entry of this.#entries.values()) {
      clearTimeout(entry.expiry)
      if (entry.producer === undefined) continue
      released.push(entry.producer.released)
      this.#stop(entry, new FST_PUSH_STREAM_SERVER_CLOSING(), { kind: 'error', code: 'FST_PUSH_STREAM_SERVER_CLOSING' })
    }
    this.#entries.clear()
    let pending = released.length
    for (const promise of released) promise.then(() => pending--)
    let timer: NodeJS.Timeout | undefined
    await Promise.race([Promise.all(released), new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs) })])
    clearTimeout(timer)
    return pending
  }

  /** Starts the producer of a new key: its source, called with a signal of its own, pulled as fast as it yields. */
  #start (entry: Entry, source: StreamSource, request: FastifyRequest): void {
    const controller = new AbortController()
    let release = (): void => {}
    const released = new Promise<void>((resolve) => { release = resolve })
    const timer = setTimeout(() => {
      this.#stop(entry, new FST_PUSH_STREAM_STREAM_TOO_LONG(entry.recording.key, this.#limits.maxDuration))
    }, this.#limits.maxDuration)
    timer.unref()
    const producer: Producer = { controller, iterator: undefined, timer, released, release }
    entry.producer = producer
    this.#running++
    // Never rejects: how it ends is recorded in the entry.
    this.#produce(entry, producer, source, request)
  }

  async #produce (entry: Entry, producer: Producer, source: StreamSource, request: FastifyRequest): Promise<void> {
    const { recording } = entry
    const { signal } = producer.controller
    try {
      let made: unknown = source
      if (typeof source === 'function') {
        made = source({ signal, lastEventId: undefined, request })
        if (isThenable(made)) made = await made
      }
      const iterator = iteratorOf(made)
      if (iterator === undefined) throw new FST_PUSH_STREAM_INVALID_SOURCE(describe(made))
      producer.iterator = iterator
      // Stopped while its source was being made: it lets go of the iterator at once.
      if (signal.aborted) return this.#letGo(producer)
      for (;;) {
        const pulled = iterator.next()
        const result = isThenable<IteratorResult<unknown>>(pulled) ? await pulled : pulled
        if (signal.aborted) return
        if (result.done === true) break
        const id = String(recording.size + 1)
        const frame = encodeItem(result.value, this.#serialize, id)
        if (recording.size >= this.#limits.maxEvents) {
          return this.#stop(entry, new FST_PUSH_STREAM_TOO_MANY_EVENTS(recording.key, this.#limits.maxEvents))
        }
        if (recording.bytes + frame.length > this.#limits.maxBytes) {
          return this.#stop(entry, new FST_PUSH_STREAM_STREAM_TOO_LARGE(recording.key, this.#limits.maxBytes))
        }
        recording.append(frame)
      }
      producer.iterator = undefined
      this.#ended(entry, { kind: 'end', reason: 'done' })
    } catch (error) {
      producer.iterator = undefined
      if (signal.aborted) return
      request.log.error({ err: new FST_PUSH_STREAM_SOURCE_FAILED(errorMessage(error), { cause: error }), key: recording.key }, 'fastify-push-stream: a resumable stream\'s source failed')
      this.#ended(entry, { kind: 'error', code: 'FST_PUSH_STREAM_SOURCE_FAILED' })
    } finally {
      if (producer.iterator === undefined) producer.release()
    }
  }

  /** Stops a running producer: its signal aborts with `reason`, its iterator is returned, its followers get the ending. */
  #stop (entry: Entry, reason: Error & { code: string }, ending: Ending = { kind: 'error', code: reason.code }): void {
    const producer = entry.producer
    if (producer === undefined) return
    producer.controller.abort(reason)
    this.#letGo(producer)
    this.#ended(entry, ending)
  }

  /** The producer is done, whichever way: the recording ends, and is kept for `ttl`. */
  #ended (entry: Entry, ending: Ending): void {
    const producer = entry.producer
    if (producer === undefined) return
    entry.producer = undefined
    clearTimeout(producer.timer)
    this.#running--
    entry.recording.finish(ending)
    entry.expiry = setTimeout(() => {
      if (this.#entries.get(entry.recording.key) === entry) this.#entries.delete(entry.recording.key)
    }, this.#limits.ttl)
    entry.expiry.unref()
  }

  /** Calls the iterator's `return()`, once it has one; the producer is released when that settles. */
  #letGo (producer: Producer): void {
    const iterator = producer.iterator
    if (iterator === undefined) return
    producer.iterator = undefined
    if (typeof iterator.return !== 'function') return producer.release()
    let returned: unknown
    try {
      returned = iterator.return()
    } catch {
      return producer.release()
    }
    if (isThenable(returned)) returned.then(producer.release, producer.release)
    else producer.release()
  }
}

/** What a request with a `Last-Event-ID` for an unknown key reads: a `reset`, then `unknown-stream`. */
const unknownStream: FollowerSource = async function * () {
  yield RESET_FRAME
  return UNKNOWN
}

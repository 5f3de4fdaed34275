import type { FastifyError, FastifyRequest } from 'fastify'
import {
  FST_PUSH_STREAM_ADAPTER_UNAVAILABLE,
  FST_PUSH_STREAM_CANCELLED,
  FST_PUSH_STREAM_INVALID_SOURCE,
  FST_PUSH_STREAM_PRODUCER_LOST,
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
import { diagnostics } from '../diagnostics.js'
import type { Ending } from './recording.js'
import type { Outcome, RecordingStore } from './store.js'

/** The limits of resumable streams (the `resumable` option), resolved. */
export interface ResumableLimits {
  maxDuration: number
  ttl: number
  maxEvents: number
  maxBytes: number
  maxStreams: number
}

/** What a request for a key streams: frames, then how the stream ended. */
export type FollowerSource = (context: { signal: AbortSignal }) => AsyncGenerator<Buffer, Ending | undefined>

type AnyIterator = Iterator<unknown> | AsyncIterator<unknown>

/** A producer running in this process: what stops it, and what it recorded. */
interface Producer {
  readonly key: string
  readonly controller: AbortController
  iterator: AnyIterator | undefined
  readonly timers: NodeJS.Timeout[]
  readonly released: Promise<void>
  release: () => void
  events: number
  bytes: number
  /** Set once it stopped, whichever way: nothing more is recorded. */
  stopped: boolean
}

const RESET_FRAME = encodeEvent({ event: RESET_EVENT, data: RESET_DATA })
const UNKNOWN: Ending = { kind: 'end', reason: 'unknown-stream' }
const CANCELLED: Ending = { kind: 'end', reason: 'cancelled' }
const UNAVAILABLE: Ending = { kind: 'error', code: 'FST_PUSH_STREAM_ADAPTER_UNAVAILABLE' }

/** What is done with a failure there is nothing more to do about: a renewal or an end the engine could not take (the claim then lapses on its own). */
function ignore (): void {}

/**
 * Resumable streams, by key: create-or-follow. The request that claims a
 * new key starts its source here, detached from the request, recording each
 * event in the store with an id of its own (1, 2, 3…); every request for the
 * key follows the recording from after its `Last-Event-ID`. Producers are
 * bounded in events, bytes and duration, and in how many run here at once.
 */
export class ResumableStreams {
  readonly #limits: ResumableLimits
  readonly #serialize: (data: unknown) => string
  readonly #store: RecordingStore
  /** How often a producer renews its claim, when the store shares it with other instances. */
  readonly #renewEvery: number | undefined
  readonly #producers = new Map<string, Producer>()

  /** Producers running on this instance. */
  get size (): number {
    return this.#producers.size
  }

  constructor (limits: ResumableLimits, serialize: (data: unknown) => string, store: RecordingStore, renewEvery?: number) {
    this.#limits = limits
    this.#serialize = serialize
    this.#store = store
    this.#renewEvery = renewEvery
  }

  /**
   * `FST_PUSH_STREAM_TOO_MANY_STREAMS` when `maxStreams` producers run here
   * and `key` is not one of them (a request for it may have to start one);
   * undefined when it may be asked for.
   */
  refusal (key: string): FastifyError | undefined {
    if (this.#producers.size < this.#limits.maxStreams || this.#producers.has(key)) return undefined
    return new FST_PUSH_STREAM_TOO_MANY_STREAMS(this.#limits.maxStreams)
  }

  /**
   * What a request for `key` streams: the recording after its
   * `Last-Event-ID`, started from `source` when the request claims a new key
   * (it sent no id); a `reset` and `unknown-stream` when it sent an id for a
   * key neither running nor kept. Ask `refusal(key)` first.
   */
  follow (key: string, lastEventId: string | undefined, source: StreamSource, request: FastifyRequest): FollowerSource {
    const store = this.#store
    const start = (): void => { this.#start(key, source, request) }
    return async function * followKey ({ signal }) {
      try {
        const claim = await store.claim(key, lastEventId === undefined)
        if (claim === 'unknown') {
          if (diagnostics.reset.hasSubscribers) diagnostics.reset.publish({ requestId: request.id, reason: 'unknown-last-event-id', id: undefined })
          yield RESET_FRAME
          return UNKNOWN
        }
        if (claim === 'produce') start()
        return yield * store.follow(key, lastEventId, signal)
      } catch {
        // The store's engine cannot be reached (the Redis adapter logs its outage): the follower is told so.
        return UNAVAILABLE
      }
    }
  }

  /**
   * Stops the producer of `key` (its signal aborts with
   * `FST_PUSH_STREAM_CANCELLED`), here or, through the store, on the
   * instance that runs it; its followers get `push-stream:end` with
   * `cancelled`. True when one was running.
   */
  async cancel (key: string): Promise<boolean> {
    const producer = this.#producers.get(key)
    if (producer !== undefined) {
      this.#stop(producer, new FST_PUSH_STREAM_CANCELLED(key), CANCELLED)
      return true
    }
    return await this.#store.cancel(key)
  }

  /** Stops every producer here and lets go of the store; resolves once the sources let go (at most `graceMs`), with how many did not. */
  async close (graceMs: number): Promise<number> {
    const producers = [...this.#producers.values()]
    for (const producer of producers) this.#stop(producer, new FST_PUSH_STREAM_SERVER_CLOSING())
    let pending = producers.length
    for (const producer of producers) producer.released.then(() => pending--)
    let timer: NodeJS.Timeout | undefined
    await Promise.race([
      Promise.all(producers.map(async (producer) => await producer.released)),
      new Promise<void>((resolve) => { timer = setTimeout(resolve, graceMs) })
    ])
    clearTimeout(timer)
    await this.#store.close()
    return pending
  }

  /** Starts the producer of a key this request claimed: its source, called with a signal of its own, pulled as fast as it yields. */
  #start (key: string, source: StreamSource, request: FastifyRequest): void {
    let release!: () => void
    const released = new Promise<void>((resolve) => { release = resolve })
    const producer: Producer = { key, controller: new AbortController(), iterator: undefined, timers: [], released, release, events: 0, bytes: 0, stopped: false }
    const limit = setTimeout(() => { this.#stop(producer, new FST_PUSH_STREAM_STREAM_TOO_LONG(key, this.#limits.maxDuration)) }, this.#limits.maxDuration)
    limit.unref()
    producer.timers.push(limit)
    const renew = this.#store.renew
    if (renew !== undefined && this.#renewEvery !== undefined) {
      const renewal = setInterval(() => {
        renew.call(this.#store, key).then((outcome) => { this.#learned(producer, outcome) }, ignore)
      }, this.#renewEvery)
      renewal.unref()
      producer.timers.push(renewal)
    }
    this.#producers.set(key, producer)
    // Never rejects: how it ends is recorded in the store.
    this.#produce(producer, source, request)
  }

  async #produce (producer: Producer, source: StreamSource, request: FastifyRequest): Promise<void> {
    const { key } = producer
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
      if (producer.stopped) return this.#letGo(producer)
      for (;;) {
        const pulled = iterator.next()
        const result = isThenable<IteratorResult<unknown>>(pulled) ? await pulled : pulled
        if (producer.stopped) return
        if (result.done === true) break
        const id = producer.events + 1
        const frame = encodeItem(result.value, this.#serialize, String(id))
        if (id > this.#limits.maxEvents) return this.#stop(producer, new FST_PUSH_STREAM_TOO_MANY_EVENTS(key, this.#limits.maxEvents))
        if (producer.bytes + frame.length > this.#limits.maxBytes) return this.#stop(producer, new FST_PUSH_STREAM_STREAM_TOO_LARGE(key, this.#limits.maxBytes))
        producer.events = id
        producer.bytes += frame.length
        let outcome: Outcome
        try {
          outcome = await this.#store.append(key, id, frame)
        } catch (error) {
          // Not recorded: the producer stops rather than leave a gap its followers could not see.
          request.log.error({ err: error, key }, 'fastify-push-stream: a resumable stream\'s event could not be recorded; its producer is stopped')
          return this.#stop(producer, new FST_PUSH_STREAM_ADAPTER_UNAVAILABLE(errorMessage(error), { cause: error }))
        }
        if (outcome !== 'ok') return this.#learned(producer, outcome)
      }
      producer.iterator = undefined
      this.#ended(producer, { kind: 'end', reason: 'done' })
    } catch (error) {
      producer.iterator = undefined
      if (producer.stopped) return
      request.log.error({ err: new FST_PUSH_STREAM_SOURCE_FAILED(errorMessage(error), { cause: error }), key }, 'fastify-push-stream: a resumable stream\'s source failed')
      this.#ended(producer, { kind: 'error', code: 'FST_PUSH_STREAM_SOURCE_FAILED' })
    } finally {
      if (producer.iterator === undefined) producer.release()
    }
  }

  /** What the store said of an append or a renewal: cancelled elsewhere, or the claim lost (another instance may now hold the key). */
  #learned (producer: Producer, outcome: Outcome): void {
    if (outcome === 'cancelled') this.#stop(producer, new FST_PUSH_STREAM_CANCELLED(producer.key), CANCELLED)
    else if (outcome === 'lost') this.#stop(producer, new FST_PUSH_STREAM_PRODUCER_LOST(producer.key), undefined)
  }

  /**
   * Stops a running producer: its signal aborts with `reason`, its iterator
   * is returned, and the store records `ending` (the reason's code as an
   * error by default; nothing when it lost its claim).
   */
  #stop (producer: Producer, reason: Error & { code: string }, ending: Ending | undefined = { kind: 'error', code: reason.code }): void {
    // A renewal's answer may come after the producer stopped another way: a race no test can line up at will.
    /* c8 ignore next */
    if (producer.stopped) return
    producer.controller.abort(reason)
    this.#letGo(producer)
    this.#ended(producer, ending)
  }

  /** The producer is done, whichever way (once: every caller checks that it still runs): it is forgotten here, and the store records how it ended. */
  #ended (producer: Producer, ending: Ending | undefined): void {
    producer.stopped = true
    for (const timer of producer.timers) clearTimeout(timer)
    this.#producers.delete(producer.key)
    if (ending !== undefined) this.#store.finish(producer.key, ending).then(undefined, ignore)
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

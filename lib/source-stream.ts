import type { FastifyRequest } from 'fastify'
import { DRAIN_GRACE_MS, type CloseReason, type Connection } from './connection.js'
import {
  FST_PUSH_STREAM_CLIENT_CLOSED,
  FST_PUSH_STREAM_INVALID_SOURCE,
  FST_PUSH_STREAM_SERVER_CLOSING,
  FST_PUSH_STREAM_SOURCE_FAILED,
  FST_PUSH_STREAM_STALLED,
  FST_PUSH_STREAM_WRITE_FAILED,
  describe,
  errorMessage
} from './errors.js'
import { MAX_JOINED_BYTES } from './hub.js'
import { encodeItem } from './stream-item.js'
import { encodeEvent } from './wire/encoder.js'
import { END_DONE_DATA, END_EVENT, ERROR_EVENT } from './wire/protocol.js'

/** What a `reply.sse` source function is given. */
export interface SourceContext {
  /**
   * Aborted the moment the stream ends before the source does: the client
   * left, its connection failed, it stalled, or the server is closing.
   * `signal.reason` is the named error that says which.
   */
  signal: AbortSignal
  /** The `Last-Event-ID` header, else the `lastEventId` query; undefined when neither is given. */
  lastEventId: string | undefined
  /** The request being answered. */
  request: FastifyRequest
}

/** What a source function returns: an (async) iterable of items, or a promise of one. */
export type SourceIterable<T> = AsyncIterable<T> | Iterable<T>

/** A per-request stream's source: an (async) iterable of items, or a function of the context returning one. */
export type StreamSource<T = unknown> =
  | SourceIterable<T>
  | ((context: SourceContext) => SourceIterable<T> | PromiseLike<SourceIterable<T>>)

type AnyIterator = Iterator<unknown> | AsyncIterator<unknown>

/** The data of the last event of a stream whose source failed: its code only, never the error's text. */
const ERROR_DATA = JSON.stringify({ code: 'FST_PUSH_STREAM_SOURCE_FAILED' })
const END_FRAME = encodeEvent({ event: END_EVENT, data: END_DONE_DATA })
const ERROR_FRAME = encodeEvent({ event: ERROR_EVENT, data: ERROR_DATA })

export function isThenable<T> (value: unknown): value is PromiseLike<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

/** The iterator of `value`, async first; undefined when it is no iterable object (a string is not one here). */
export function iteratorOf (value: unknown): AnyIterator | undefined {
  if (typeof value !== 'object' || value === null) return undefined
  const iterable = value as Partial<AsyncIterable<unknown> & Iterable<unknown>>
  const asyncIterator = iterable[Symbol.asyncIterator]
  if (typeof asyncIterator === 'function') return asyncIterator.call(iterable)
  const iterator = iterable[Symbol.iterator]
  return typeof iterator === 'function' ? iterator.call(iterable) : undefined
}

/** True for what `reply.sse` can take as a source (a string, though iterable, is refused: it would stream its characters). */
export function isStreamSource (value: unknown): value is StreamSource {
  if (typeof value === 'function') return true
  if (typeof value !== 'object' || value === null) return false
  return Symbol.asyncIterator in value || Symbol.iterator in value
}

/** What a source stream needs besides its connection and source. */
export interface SourceStreamOptions {
  request: FastifyRequest
  lastEventId: string | undefined
  serialize: (data: unknown) => string
  maxBufferedBytes: number
  stallTimeout: number
  /**
   * For a source of frames already encoded (a follower of a resumable
   * stream): its items are written as they are, and this gives the last
   * frame from the value the source returned. Default: items are encoded,
   * and the last frame is `push-stream:end` with `{"reason":"done"}`.
   */
  lastFrame?: (returned: unknown) => Buffer
}

/**
 * One request's own stream, driven by its source: pulls the next item only
 * once what was written has drained below `maxBufferedBytes`, joins the
 * items ready in the same turn of the event loop into one write, and says
 * how it ended (`push-stream:end`, `push-stream:error`). When the stream
 * ends any other way, the source is released at that moment: its signal
 * aborts with the reason, and its iterator's `return()` is called.
 */
export class SourceStream {
  readonly connection: Connection
  /** Milliseconds without progress on waiting bytes after which the stream is ended; 0 never. */
  readonly stallTimeout: number
  /** Settles once the source has let go: completed, failed, or its `return()` settled. */
  readonly released: Promise<void>
  readonly #controller = new AbortController()
  readonly #options: SourceStreamOptions
  #release!: () => void
  #iterator: AnyIterator | undefined
  /** True once the stream has ended, whichever way: nothing more is pulled or written. */
  #ended = false
  /** True once the iterator finished by itself (done, or threw): it needs no `return()`. */
  #finished = false
  #batch: Buffer[] = []
  #batchBytes = 0
  #writeScheduled = false
  /** The bytes the client had taken at the last stall check, and when that number last grew. */
  #taken = 0
  #progressAt = Date.now()

  constructor (connection: Connection, options: SourceStreamOptions) {
    this.connection = connection
    this.#options = options
    this.stallTimeout = options.stallTimeout
    this.released = new Promise((resolve) => { this.#release = resolve })
  }

  /** Starts pulling `source`: a function is called with the context first. */
  start (source: StreamSource): void {
    if (typeof source !== 'function') return this.#begin(source)
    let made: unknown
    try {
      made = source({ signal: this.#controller.signal, lastEventId: this.#options.lastEventId, request: this.#options.request })
    } catch (error) {
      return this.#fail(error, true)
    }
    if (!isThenable(made)) return this.#begin(made)
    made.then((iterable) => { this.#begin(iterable) }, (error: unknown) => { this.#fail(error, true) })
  }

  /**
   * The stream's connection ended: unless its source already had, the source
   * is released now, with a signal reason that names the way it ended.
   */
  ended (reason: CloseReason): void {
    if (this.#ended) return
    this.#ended = true
    this.#controller.abort(this.#abortReason(reason))
    this.#letGo()
  }

  /**
   * Called by a shared timer: ends the stream when bytes have been waiting
   * for the client, none of them taken, for `stallTimeout` ms.
   */
  checkStall (now: number): void {
    const connection = this.connection
    const taken = connection.bytesTaken
    if (connection.bufferedBytes === 0 || taken !== this.#taken) {
      this.#taken = taken
      this.#progressAt = now
      return
    }
    if (now - this.#progressAt >= this.stallTimeout) connection.stall()
  }

  #abortReason (reason: CloseReason): Error {
    switch (reason) {
      case 'failed': {
        const cause = this.connection.error
        return new FST_PUSH_STREAM_WRITE_FAILED(errorMessage(cause), { cause })
      }
      case 'stalled': return new FST_PUSH_STREAM_STALLED(this.stallTimeout)
      case 'server': return new FST_PUSH_STREAM_SERVER_CLOSING()
      // The client left; nothing else ends a paced stream from outside.
      default: return new FST_PUSH_STREAM_CLIENT_CLOSED()
    }
  }

  /** Takes the iterable the source is or made, and starts pulling it; lets go of it at once if the stream already ended. */
  #begin (iterable: unknown): void {
    const iterator = iteratorOf(iterable)
    if (iterator === undefined) {
      return this.#fail(new FST_PUSH_STREAM_INVALID_SOURCE(describe(iterable)), true)
    }
    this.#iterator = iterator
    if (this.#ended) return this.#letGo()
    this.#pull()
  }

  /** Pulls items while the client keeps up; waits for it to drain, or for the source, otherwise. */
  readonly #pull = (): void => {
    const connection = this.connection
    const iterator = this.#iterator as AnyIterator
    const max = this.#options.maxBufferedBytes
    while (!this.#ended) {
      if (connection.bufferedBytes + this.#batchBytes >= max) {
        this.#write()
        // The socket may have taken it all at once.
        if (connection.bufferedBytes >= max) return connection.whenDrained(this.#pull)
        continue
      }
      let result: IteratorResult<unknown> | PromiseLike<IteratorResult<unknown>>
      try {
        result = iterator.next()
      } catch (error) {
        return this.#fail(error, true)
      }
      if (isThenable(result)) {
        // What is ready now goes out before the event loop moves on, joined in one write.
        if (this.#batch.length > 0 && !this.#writeScheduled) {
          this.#writeScheduled = true
          setImmediate(this.#scheduledWrite)
        }
        result.then(this.#onResult, this.#onRejected)
        return
      }
      if (!this.#take(result)) return
    }
  }

  readonly #onResult = (result: IteratorResult<unknown>): void => {
    if (this.#take(result)) this.#pull()
  }

  readonly #onRejected = (error: unknown): void => {
    this.#fail(error, true)
  }

  /** Adds one item to the batch, or ends the stream when the source is done; false when the pulling stops here (done, failed, or on in the next turn). */
  #take (result: IteratorResult<unknown>): boolean {
    if (this.#ended) return false
    const { lastFrame } = this.#options
    if (result.done === true) {
      this.#finished = true
      this.#finish(lastFrame === undefined ? END_FRAME : lastFrame(result.value), 'done')
      return false
    }
    let frame: Buffer
    try {
      frame = lastFrame === undefined ? encodeItem(result.value, this.#options.serialize) : result.value as Buffer
    } catch (error) {
      this.#fail(error, false)
      return false
    }
    this.#batch.push(frame)
    this.#batchBytes += frame.length
    if (this.#batchBytes < MAX_JOINED_BYTES) return true
    this.#write()
    // A source that is always ready, read by a fast client, would otherwise hold the event loop:
    // each full write lets the other streams, timers and I/O have their turn first.
    setImmediate(this.#pull)
    return false
  }

  readonly #scheduledWrite = (): void => {
    this.#writeScheduled = false
    this.#write()
  }

  /** Writes the batch, joined, as one write. */
  #write (): void {
    const batch = this.#batch
    if (batch.length === 0 || this.#ended) return
    this.connection.write(batch.length === 1 ? batch[0] as Buffer : Buffer.concat(batch, this.#batchBytes), batch.length)
    this.#batch = []
    this.#batchBytes = 0
  }

  /**
   * The source threw, rejected, made no iterable or yielded an item that
   * cannot be sent. After the stream ended, that is how a source lets go, and
   * is not logged; before, it is logged once with the request's id, and the
   * stream ends with an error event that carries the code alone.
   * `byItself` is false when the iterator is still running (a bad item).
   */
  #fail (error: unknown, byItself: boolean): void {
    if (byItself) this.#finished = true
    if (this.#ended) {
      if (byItself) this.#release()
      return
    }
    const failure = new FST_PUSH_STREAM_SOURCE_FAILED(errorMessage(error), { cause: error })
    this.#options.request.log.error({ err: failure }, 'fastify-push-stream: the stream\'s source failed')
    if (!byItself) this.#controller.abort(failure)
    this.#finish(ERROR_FRAME, 'error')
  }

  /** Writes what is ready and the last event, ends the response, and lets go of the source. */
  #finish (lastFrame: Buffer, reason: 'done' | 'error'): void {
    this.#write()
    this.#ended = true
    // After its last event, the client has as long to take the rest as it had to take any write, and at least the grace.
    this.connection.end(lastFrame, reason, Math.max(this.stallTimeout, DRAIN_GRACE_MS))
    this.#letGo()
  }

  /** Releases the source: nothing to do once it finished by itself; otherwise its iterator's `return()`, whose settling releases it. */
  #letGo (): void {
    const iterator = this.#iterator
    // No iterator yet: the source function's promise is pending, and `#begin` comes back here.
    if (iterator === undefined) {
      if (this.#finished) this.#release()
      return
    }
    if (this.#finished || typeof iterator.return !== 'function') return this.#release()
    let returned: unknown
    try {
      returned = iterator.return()
    } catch {
      return this.#release()
    }
    if (isThenable(returned)) returned.then(this.#release, this.#release)
    else this.#release()
  }
}

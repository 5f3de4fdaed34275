import { FST_PUSH_STREAM_SOURCE_FAILED, errorMessage } from './errors.js'
import type { MessageSource } from './options.js'

/** How often a generator without the lease checks again whether it may run. */
const IDLE_CHECK_MS = 100

/** What one pull gave: what publishing the value returned (undefined when the source gave none), or the end. */
export type Pull<R> = { done: false, published: R | undefined } | { done: true }

/**
 * Drives the message source: one loop per plugin instance, never one per
 * client. A function source is called every `interval`; an iterable is read
 * in order, paced by `interval`. Pulls never overlap, even when `pull()` is
 * also called by hand.
 */
export class SourceLoop<R> {
  readonly #source: MessageSource
  readonly #interval: number
  readonly #publish: (value: unknown) => R | Promise<R>
  readonly #mayRun: () => boolean
  readonly #onError: (error: unknown) => void
  #iterator: AsyncIterator<unknown> | Iterator<unknown> | undefined
  #timer: NodeJS.Timeout | undefined
  #queue: Promise<unknown> = Promise.resolve()
  #running = false
  #ended = false

  constructor (options: {
    source: MessageSource
    interval: number
    publish: (value: unknown) => R | Promise<R>
    onError: (error: unknown) => void
    /** Asked before each timed pull: false skips it (another instance holds the generator's lease). */
    mayRun?: () => boolean
  }) {
    this.#source = options.source
    this.#interval = options.interval
    this.#publish = options.publish
    this.#mayRun = options.mayRun ?? (() => true)
    this.#onError = options.onError
  }

  /** True when `start()` runs a loop: always for an iterable, for a function source only with an `interval`. */
  get timed (): boolean {
    return typeof this.#source !== 'function' || this.#interval > 0
  }

  /** Starts the loop, first pull one `interval` from now: a function source needs `interval` > 0, an iterable runs at any interval. */
  start (): void {
    if (this.#running || this.#ended) return
    if (!this.timed) return
    this.#running = true
    this.#schedule(this.#interval)
  }

  /** Stops the loop for good and releases the iterator (`return()`). */
  async stop (): Promise<void> {
    this.#running = false
    this.#ended = true
    clearTimeout(this.#timer)
    this.#timer = undefined
    const iterator = this.#iterator
    this.#iterator = undefined
    if (iterator?.return !== undefined) {
      try {
        await iterator.return()
      } catch (error) {
        this.#onError(new FST_PUSH_STREAM_SOURCE_FAILED(errorMessage(error), { cause: error }))
      }
    }
  }

  /**
   * Pulls one value from the source and publishes it. Resolves with what
   * publishing returned; rejects with `FST_PUSH_STREAM_SOURCE_FAILED` when the
   * source throws, or with publish's own error, publishing nothing.
   */
  pull (): Promise<Pull<R>> {
    const next = this.#queue.then(() => this.#pullNow())
    // A failed pull must not block the ones queued after it.
    this.#queue = next.catch(() => undefined)
    return next
  }

  async #pullNow (): Promise<Pull<R>> {
    if (this.#ended) return { done: true }
    let result
    try {
      result = await this.#next()
    } catch (error) {
      throw new FST_PUSH_STREAM_SOURCE_FAILED(errorMessage(error), { cause: error })
    }
    if (result.done) {
      this.#ended = true
      this.#running = false
      return { done: true }
    }
    // A pull that finished after stop() publishes nothing: the plugin is closing.
    if (result.value === undefined || this.#ended) return { done: false, published: undefined }
    return { done: false, published: await this.#publish(result.value) }
  }

  async #next (): Promise<{ done: true } | { done: false, value: unknown }> {
    const source = this.#source
    if (typeof source === 'function') return { done: false, value: await source() }
    if (this.#iterator === undefined) {
      this.#iterator = Symbol.asyncIterator in source
        ? (source as AsyncIterable<unknown>)[Symbol.asyncIterator]()
        : (source as Iterable<unknown>)[Symbol.iterator]()
    }
    const step = await this.#iterator.next()
    return step.done === true ? { done: true } : { done: false, value: step.value }
  }

  #schedule (delay: number): void {
    const tick = (): void => {
      this.#timer = undefined
      if (!this.#mayRun()) {
        // Waiting for the lease: an iterable paced at 0 ms must not spin meanwhile.
        this.#schedule(Math.max(this.#interval, IDLE_CHECK_MS))
        return
      }
      this.pull().catch(this.#onError).finally(() => {
        if (this.#running) this.#schedule(this.#interval)
      })
    }
    // setImmediate for 0 would need its own handle type; a 0 ms timeout yields to I/O just the same.
    this.#timer = setTimeout(tick, delay)
    this.#timer.unref()
  }
}

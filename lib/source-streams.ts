import type { CloseReason, Connection } from './connection.js'
import type { SourceStream } from './source-stream.js'

/** How long `close()` waits for sources that ignore their signal before it goes on without them. */
export const RELEASE_GRACE_MS = 2000

/**
 * Every per-request stream that is running, by its connection: tells each
 * one how its connection ended, checks them all for stalls on one shared
 * timer, and on close waits for their sources to let go.
 */
export class SourceStreams {
  readonly #running = new Map<Connection, SourceStream>()
  /** Sources not yet released, ended or not: what close() waits for. */
  readonly #unreleased = new Set<Promise<void>>()
  #sweep: NodeJS.Timeout | undefined
  #sweepEvery = Infinity

  /** Per-request streams open now. */
  get size (): number {
    return this.#running.size
  }

  /** Tracks `stream` until its connection ends and its source lets go. */
  add (stream: SourceStream): void {
    this.#running.set(stream.connection, stream)
    this.#unreleased.add(stream.released)
    stream.released.then(() => this.#unreleased.delete(stream.released))
    // The shared check runs at a quarter of the shortest stallTimeout: a stall is noticed within 1.25 times it.
    const every = Math.max(10, Math.floor(stream.stallTimeout / 4))
    if (stream.stallTimeout > 0 && every < this.#sweepEvery) {
      clearInterval(this.#sweep)
      this.#sweepEvery = every
      this.#sweep = setInterval(this.#checkStalls, every)
      this.#sweep.unref()
    }
  }

  /** A connection ended: its stream, if it is one of these, releases its source. */
  ended (connection: Connection, reason: CloseReason): void {
    const stream = this.#running.get(connection)
    if (stream === undefined) return
    this.#running.delete(connection)
    stream.ended(reason)
  }

  /**
   * Stops the stall checks and waits until every source has let go (their
   * streams were ended by then), at most `RELEASE_GRACE_MS`; resolves with
   * how many had not.
   */
  async close (): Promise<number> {
    clearInterval(this.#sweep)
    this.#sweep = undefined
    if (this.#unreleased.size === 0) return 0
    let timer: NodeJS.Timeout | undefined
    const grace = new Promise<void>((resolve) => { timer = setTimeout(resolve, RELEASE_GRACE_MS) })
    await Promise.race([Promise.all(this.#unreleased), grace])
    clearTimeout(timer)
    return this.#unreleased.size
  }

  readonly #checkStalls = (): void => {
    const now = Date.now()
    for (const stream of this.#running.values()) {
      if (stream.stallTimeout > 0) stream.checkStall(now)
    }
  }
}

import { encodeEvent } from '../wire/encoder.js'
import { END_EVENT, ERROR_EVENT } from '../wire/protocol.js'

/** How a resumable stream ended: its last event says so to every follower. */
export type Ending =
  | { readonly kind: 'end', readonly reason: 'done' | 'cancelled' | 'unknown-stream' }
  | { readonly kind: 'error', readonly code: string }

/** The last frame that tells a follower how the stream ended. */
export function endingFrame (ending: Ending): Buffer {
  return ending.kind === 'end'
    ? encodeEvent({ event: END_EVENT, data: JSON.stringify({ reason: ending.reason }) })
    : encodeEvent({ event: ERROR_EVENT, data: JSON.stringify({ code: ending.code }) })
}

/**
 * The events of one resumable stream, in memory: each encoded once with its
 * id (its position, from 1), kept until the stream has ended and its `ttl`
 * has passed. Followers read them from any position and wait for more.
 */
export class Recording {
  readonly key: string
  readonly #frames: Buffer[] = []
  #ending: Ending | undefined
  /** Followers waiting for the next event or the end. */
  #waiting: Array<() => void> = []

  constructor (key: string) {
    this.key = key
  }

  /** Events recorded. */
  get size (): number {
    return this.#frames.length
  }

  append (frame: Buffer): void {
    this.#frames.push(frame)
    this.#wake()
  }

  /** Records how it ended (once: its producer ends once). */
  finish (ending: Ending): void {
    this.#ending = ending
    this.#wake()
  }

  /** Resolves at the next event or the end, or when `signal` (not yet aborted) aborts. */
  async next (signal: AbortSignal): Promise<void> {
    await new Promise<void>((resolve) => {
      const done = (): void => {
        signal.removeEventListener('abort', done)
        resolve()
      }
      this.#waiting.push(done)
      signal.addEventListener('abort', done, { once: true })
    })
  }

  /**
   * The frames a follower reads after `afterId`, then live ones, then the
   * value that says how the stream ended. Ends early when `signal` aborts.
   */
  async * follow (after: number, signal: AbortSignal): AsyncGenerator<Buffer, Ending | undefined> {
    let next = after
    for (;;) {
      while (next < this.#frames.length) yield this.#frames[next++] as Buffer
      if (this.#ending !== undefined) return this.#ending
      if (signal.aborted) return undefined
      await this.next(signal)
    }
  }

  #wake (): void {
    const waiting = this.#waiting
    this.#waiting = []
    for (const wake of waiting) wake()
  }
}

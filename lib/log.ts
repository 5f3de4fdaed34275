import type { FastifyBaseLogger } from 'fastify'

/** How long a window of refusals lasts: at most one log line per reason per window. */
export const REFUSAL_WINDOW_MS = 1000

/**
 * The error as it should be logged: pino (Fastify's logger) follows `cause`
 * and appends each cause's message to the error's own, so a wrapping error
 * whose message already ends with its cause's loses that ending here, and
 * the log line reads "wrapper: cause" once. Changes the error in place.
 */
export function withoutRepeatedCause<E> (error: E): E {
  if (!(error instanceof Error) || !(error.cause instanceof Error)) return error
  const repeated = `: ${error.cause.message}`
  if (error.message.endsWith(repeated)) error.message = error.message.slice(0, -repeated.length)
  return error
}

/** One reason's refusals not yet logged. */
interface Tally {
  /** Refusals since the last line. */
  count: number
  /** When the current window began. */
  since: number
  /** Set while a window is open. */
  timer: NodeJS.Timeout | undefined
}

/**
 * Logs refused stream requests without a line per request: the first refusal
 * of a reason is logged at once, and the ones that follow within
 * `REFUSAL_WINDOW_MS` in one line at the end of that window, with their count.
 */
export class RefusalLog {
  readonly #tallies = new Map<string, Tally>()

  /** Counts one refusal with error code `code`, logged at `level` on `log` (the instance's logger: a line speaks for many requests). */
  note (log: FastifyBaseLogger, level: 'info' | 'warn', code: string): void {
    let tally = this.#tallies.get(code)
    if (tally === undefined) {
      tally = { count: 0, since: 0, timer: undefined }
      this.#tallies.set(code, tally)
    }
    tally.count++
    if (tally.timer === undefined) this.#write(log, level, code, tally, 0)
  }

  /** Logs what the tally holds (refused over the last `overMs`), then opens a window; a window that ends with nothing counted closes. */
  #write (log: FastifyBaseLogger, level: 'info' | 'warn', code: string, tally: Tally, overMs: number): void {
    log[level]({ code, refused: tally.count, overMs }, 'fastify-push-stream: stream requests refused')
    tally.count = 0
    tally.since = Date.now()
    tally.timer = setTimeout(() => {
      tally.timer = undefined
      if (tally.count > 0) this.#write(log, level, code, tally, Date.now() - tally.since)
    }, REFUSAL_WINDOW_MS)
    // A window left open never holds the process up.
    tally.timer.unref()
  }
}

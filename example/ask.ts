import { setTimeout as pause } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'

/**
 * The demo's Ask panel, server side: `GET /ask/:key?q=…` streams a made-up
 * answer word by word (no network, no model) as a resumable stream under
 * `key`, so a reload goes on with the same answer and another tab can follow
 * it; `POST /ask/:key/cancel` stops it for every tab; `GET /ask/stats` counts
 * the answer sources started and released (their `finally` ran), which the
 * page shows to prove that a finished or stopped answer lets go of its source.
 */

/** Where the page asks (`/ask/:key`), cancels (`/ask/:key/cancel`) and reads the counts. */
export const ASK_PATH = '/ask'
export const ASK_STATS_PATH = '/ask/stats'

/** The longest wait of `GET /ask/stats?releasedAbove=n`: then it answers the counts as they are. */
export const STATS_WAIT = 10_000

/** An answer's key, as the page makes it: 8 to 64 of `A-Z a-z 0-9 _ -` (never `stats`). */
export const ANSWER_KEY_PATTERN = '^[A-Za-z0-9_-]{8,64}$'

/** The key of an answer's resumable stream: the page's key, in a space of its own among the app's streams. */
export function answerStreamKey (key: string): string {
  return `ask:${key}`
}

/** The data of one answer event; the event's id is the plugin's, `String(index + 1)`. */
export interface AnswerWord {
  index: number
  text: string
}

/** What `GET /ask/stats` answers. */
export interface AnswerStats {
  /** Answer sources started since the app started: one per answer, however many tabs follow it. */
  started: number
  /** Of those, the ones whose `finally` ran: they finished or were cancelled (a tab that leaves releases nothing). */
  released: number
  /**
   * How the last released one ended: `done` when it gave its last word, else
   * the code of its signal's abort reason (`FST_PUSH_STREAM_CANCELLED` when
   * the page pressed Stop); `null` before the first.
   */
  lastEnd: string | null
}

/** What `POST /ask/:key/cancel` answers. */
export interface CancelAnswer {
  /** True when the answer was still running, and is now stopped. */
  cancelled: boolean
}

/** The made-up answer to `question`, as the words it is streamed in. */
export function cannedAnswer (question: string): string[] {
  const text = `You asked: “${question.trim()}”. Here is an answer made up on the server, one word at a time, ` +
    'with a short pause before each word, as a language model streams its reply; no network, no model. ' +
    'Reload the page, or open the answer in another tab: the same answer goes on from where it was. ' +
    'Press Stop at any moment: the server cancels the answer, the signal given to the source aborts, the pause ends at once, ' +
    'every tab shows it stopped and the source\'s finally block counts one more released source. ' +
    'Let it run to the end instead: a last event tells the page the answer is done, and the page does not ask again.'
  return text.split(/\s+/).filter((word) => word !== '')
}

/** The counts of `GET /ask/stats`, and the waits on a release. */
export class AnswerSources {
  #started = 0
  #released = 0
  #lastEnd: string | null = null
  readonly #waiting = new Set<() => void>()

  /** A source began giving words. */
  start (): void {
    this.#started++
  }

  /** A source's `finally` ran; `end` says how it ended. */
  release (end: string): void {
    this.#released++
    this.#lastEnd = end
    for (const wake of [...this.#waiting]) wake()
  }

  stats (): AnswerStats {
    return { started: this.#started, released: this.#released, lastEnd: this.#lastEnd }
  }

  /** Resolves once more than `count` sources have been released (at once if they already have), or when `signal` aborts. */
  async releasedAbove (count: number, signal: AbortSignal): Promise<void> {
    while (this.#released <= count && !signal.aborted) {
      await new Promise<void>((resolve) => {
        const wake = (): void => {
          this.#waiting.delete(wake)
          signal.removeEventListener('abort', wake)
          resolve()
        }
        this.#waiting.add(wake)
        signal.addEventListener('abort', wake)
      })
    }
  }
}

/**
 * The source of one answer: `words`, one per `delay` ms. It runs detached
 * from the requests that follow it: only its end, a cancel or the app's close
 * stop it. The pause takes its `signal`, so a cancel ends it at once;
 * `finally` tells `sources` either way.
 */
export async function * answerWords (
  words: readonly string[],
  options: { delay: number, signal: AbortSignal, sources: AnswerSources }
): AsyncGenerator<{ data: AnswerWord }> {
  const { signal, sources } = options
  sources.start()
  let end = 'returned'
  try {
    for (let index = 0; index < words.length; index++) {
      await pause(options.delay, undefined, { signal })
      yield { data: { index, text: words[index] as string } }
    }
    end = 'done'
  } catch (error) {
    // The answer is over: its followers are told so by the plugin.
    if (!signal.aborted) throw error
  } finally {
    if (signal.aborted) {
      const code = (signal.reason as { code?: unknown } | undefined)?.code
      end = typeof code === 'string' ? code : 'aborted'
    }
    sources.release(end)
  }
}

const KEY_PARAMS = {
  type: 'object',
  required: ['key'],
  properties: {
    key: { type: 'string', pattern: ANSWER_KEY_PATTERN }
  }
} as const

const ASK_QUERY = {
  type: 'object',
  properties: {
    // At least one character that is not white space.
    q: { type: 'string', minLength: 1, maxLength: 300, pattern: '\\S' },
    lastEventId: { type: 'string' }
  }
} as const

const STATS_QUERY = {
  type: 'object',
  properties: {
    releasedAbove: { type: 'integer', minimum: 0 }
  }
} as const

/**
 * Adds the Ask routes to `app`, which must have the push-stream plugin;
 * `delay` is the pause before each word (ms).
 */
export function askRoutes (app: FastifyInstance, options: { delay: number }): void {
  const sources = new AnswerSources()
  // Waits on a release end with the app: close() does not wait STATS_WAIT for them.
  const closing = new AbortController()
  app.addHook('preClose', async () => closing.abort())

  // Create-or-follow: the first request of a key starts its answer, every request follows it from after its Last-Event-ID.
  app.get<{ Params: { key: string }, Querystring: { q?: string, lastEventId?: string } }>(
    `${ASK_PATH}/:key`,
    { schema: { params: KEY_PARAMS, querystring: ASK_QUERY } },
    async (request, reply) => {
      const { q, lastEventId } = request.query
      // Only a request with the question may start an answer; one without follows (a Last-Event-ID of 0: from the start).
      if (q === undefined && lastEventId === undefined && request.headers['last-event-id'] === undefined) {
        throw Object.assign(new Error('A new answer needs a question (q); to follow one, send a Last-Event-ID (0: from its start).'), { statusCode: 400 })
      }
      return reply.sse(({ signal }) => answerWords(cannedAnswer(q ?? ''), { delay: options.delay, signal, sources }), {
        key: answerStreamKey(request.params.key)
      })
    }
  )

  // Stop, for every tab that follows the answer: leaving the stream would stop nothing.
  app.post<{ Params: { key: string } }>(`${ASK_PATH}/:key/cancel`, { schema: { params: KEY_PARAMS } }, async (request): Promise<CancelAnswer> => {
    return { cancelled: await app.pushStream.cancel(answerStreamKey(request.params.key)) }
  })

  // With ?releasedAbove=n, answers once more than n sources have been released (or after STATS_WAIT): the page learns of a release without polling.
  app.get(ASK_STATS_PATH, { schema: { querystring: STATS_QUERY } }, async (request, reply) => {
    const { releasedAbove } = request.query as { releasedAbove?: number }
    if (releasedAbove !== undefined) {
      const left = new AbortController()
      const onClose = (): void => left.abort()
      reply.raw.once('close', onClose)
      try {
        await sources.releasedAbove(releasedAbove, AbortSignal.any([left.signal, closing.signal, AbortSignal.timeout(STATS_WAIT)]))
      } finally {
        reply.raw.off('close', onClose)
      }
    }
    reply.header('cache-control', 'no-store')
    return sources.stats()
  })
}

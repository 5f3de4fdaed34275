import { setTimeout as pause } from 'node:timers/promises'
import type { FastifyInstance } from 'fastify'

/**
 * The demo's Ask panel, server side: `GET /ask?q=…` streams a made-up answer
 * word by word with `reply.sse` (no network, no model), and `GET /ask/stats`
 * counts the answer sources started and released (their `finally` ran), which
 * the page shows to prove that Stop releases the source on the server.
 */

/** Where the page asks, and where it reads the counts. */
export const ASK_PATH = '/ask'
export const ASK_STATS_PATH = '/ask/stats'

/** The longest wait of `GET /ask/stats?releasedAbove=n`: then it answers the counts as they are. */
export const STATS_WAIT = 10_000

/** The data of one answer event; the event's id is `String(index)`, so a reconnecting client goes on from the next word. */
export interface AnswerWord {
  index: number
  text: string
}

/** What `GET /ask/stats` answers. */
export interface AnswerStats {
  /** Answer sources started since the app started. */
  started: number
  /** Of those, the ones whose `finally` ran. */
  released: number
  /**
   * How the last released one ended: `done` when it gave its last word, else
   * the code of the stream's abort reason (`FST_PUSH_STREAM_CLIENT_CLOSED` when
   * the page pressed Stop); `null` before the first.
   */
  lastEnd: string | null
}

/** The made-up answer to `question`, as the words it is streamed in. */
export function cannedAnswer (question: string): string[] {
  const text = `You asked: “${question.trim()}”. Here is an answer made up on the server, one word at a time, ` +
    'with a short pause before each word, as a language model streams its reply; no network, no model. ' +
    'Press Stop at any moment: the page closes its stream, the signal given to the source aborts, the pause ends at once ' +
    'and the source\'s finally block counts one more released source. ' +
    'Let it run to the end instead: a last event tells the page the answer is done, and the page does not ask again.'
  return text.split(/\s+/).filter((word) => word !== '')
}

/** The word to start from after `lastEventId` (the index of the last word the client got), or 0 without a usable one. */
export function resumeIndex (lastEventId: string | undefined, words: number): number {
  if (lastEventId === undefined || !/^\d{1,6}$/.test(lastEventId)) return 0
  return Math.min(Number(lastEventId) + 1, words)
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
 * The source of one answer: `words` from `from` on, one per `delay` ms, each
 * as an event whose id is its index. The pause takes the stream's `signal`, so
 * a client that leaves ends it at once; `finally` tells `sources` either way.
 */
export async function * answerWords (
  words: readonly string[],
  options: { from: number, delay: number, signal: AbortSignal, sources: AnswerSources }
): AsyncGenerator<{ id: string, data: AnswerWord }> {
  const { signal, sources } = options
  sources.start()
  let end = 'returned'
  try {
    for (let index = options.from; index < words.length; index++) {
      await pause(options.delay, undefined, { signal })
      yield { id: String(index), data: { index, text: words[index] as string } }
    }
    end = 'done'
  } catch (error) {
    // The stream is over: nobody is left to send an error to.
    if (!signal.aborted) throw error
  } finally {
    if (signal.aborted) {
      const code = (signal.reason as { code?: unknown } | undefined)?.code
      end = typeof code === 'string' ? code : 'aborted'
    }
    sources.release(end)
  }
}

const ASK_QUERY = {
  type: 'object',
  required: ['q'],
  properties: {
    // At least one character that is not white space.
    q: { type: 'string', minLength: 1, maxLength: 300, pattern: '\\S' }
  }
} as const

const STATS_QUERY = {
  type: 'object',
  properties: {
    releasedAbove: { type: 'integer', minimum: 0 }
  }
} as const

/** Adds `GET /ask` and `GET /ask/stats` to `app`, which must have the push-stream plugin; `delay` is the pause before each word (ms). */
export function askRoutes (app: FastifyInstance, options: { delay: number }): void {
  const sources = new AnswerSources()
  // Waits on a release end with the app: close() does not wait STATS_WAIT for them.
  const closing = new AbortController()
  app.addHook('preClose', async () => closing.abort())

  app.get(ASK_PATH, { schema: { querystring: ASK_QUERY } }, async (request, reply) => {
    const words = cannedAnswer((request.query as { q: string }).q)
    return reply.sse(({ signal, lastEventId }) => answerWords(words, {
      from: resumeIndex(lastEventId, words.length),
      delay: options.delay,
      signal,
      sources
    }))
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

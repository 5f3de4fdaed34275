/**
 * Resumable streams recorded in Redis, so that any instance can follow
 * them: one Redis stream per key (`<key>:resumable:{<stream key>}`), whose
 * entry `n-0` is event n, already encoded, and whose last entry says how it
 * ended; beside it the producer's claim (`…#claim`, SET PX with a token,
 * renewed while it runs) and a cancel request (`…#cancel`). Every write is a
 * script that checks the token, so an instance that lost its claim records
 * nothing. Followers read with XRANGE, as often as events come and less
 * often while none do; one that finds no claim and no end learns that the
 * producer is gone.
 */
import { randomUUID } from 'node:crypto'
import { FST_PUSH_STREAM_PRODUCER_LOST } from '../errors.js'
import type { Ending } from '../resumable/recording.js'
import type { Claim, Outcome, RecordingStore } from '../resumable/store.js'
import type { Call } from './connections.js'
import { CANCEL, CLAIM, FINISH, READ, RECORD, RENEW } from './scripts.js'

/** How long a producer's claim lasts unless renewed: its followers learn it is lost within about this long of its instance dying. */
export const CLAIM_MS = 3000
/** How often a producer renews its claim. */
export const RENEW_EVERY_MS = 1000
/** Entries one read may return. */
const READ_COUNT = 500
/** A follower with nothing new reads again after this long at first, then less often, up to `IDLE_POLL_MS`. */
const FIRST_POLL_MS = 5
const IDLE_POLL_MS = 100
/** How long a follower waits for Redis to answer again before it ends with `FST_PUSH_STREAM_ADAPTER_UNAVAILABLE`: twice a claim, so a producer that lived through it is heard from. */
export const UNAVAILABLE_MS = 2 * CLAIM_MS
/** A recording is kept at least this long after it ended, so that followers reading it get its end. */
const MIN_KEEP_MS = 1000

/** XRANGE's entries as a script returns them. */
type Entries = Array<[string, string[]]>

/** Resolves after `ms`, or sooner when `signal` aborts meanwhile. */
async function pause (ms: number, signal: AbortSignal): Promise<void> {
  await new Promise<void>((resolve) => {
    const done = (): void => {
      clearTimeout(timer)
      signal.removeEventListener('abort', done)
      resolve()
    }
    const timer = setTimeout(done, ms)
    signal.addEventListener('abort', done, { once: true })
  })
}

/** The recordings of one adapter, under its key. */
export class RedisRecordings implements RecordingStore {
  readonly #prefix: string
  readonly #call: Call
  readonly #ttl: number
  readonly #maxDuration: number
  /** Written into the claims this instance holds. */
  readonly #token = randomUUID()

  /**
   * @param key the adapter's stream key, under which recordings live.
   * @param call runs a command on the adapter's command connection.
   * @param limits how long a recording is kept after its end, and at most while it runs.
   */
  constructor (key: string, call: Call, limits: { ttl: number, maxDuration: number }) {
    this.#prefix = `${key}:resumable:`
    this.#call = call
    this.#ttl = Math.max(MIN_KEEP_MS, limits.ttl)
    this.#maxDuration = limits.maxDuration
  }

  async claim (key: string, mayCreate: boolean): Promise<Claim> {
    const [recording, claim] = this.#keys(key)
    return await this.#call((client) => client.eval(CLAIM, 2, recording, claim, this.#token, CLAIM_MS, mayCreate ? '1' : '0')) as Claim
  }

  async append (key: string, id: number, frame: Buffer): Promise<Outcome> {
    const [recording, claim, cancel] = this.#keys(key)
    return await this.#call((client) => client.eval(RECORD, 3, recording, claim, cancel, this.#token, id, frame, this.#maxDuration + this.#ttl)) as Outcome
  }

  async renew (key: string): Promise<Outcome> {
    const [, claim, cancel] = this.#keys(key)
    return await this.#call((client) => client.eval(RENEW, 2, claim, cancel, this.#token, CLAIM_MS)) as Outcome
  }

  async finish (key: string, ending: Ending): Promise<void> {
    const [recording, claim, cancel] = this.#keys(key)
    await this.#call((client) => client.eval(FINISH, 3, recording, claim, cancel, this.#token, JSON.stringify(ending), this.#ttl))
  }

  async cancel (key: string): Promise<boolean> {
    const [, claim, cancel] = this.#keys(key)
    return await this.#call((client) => client.eval(CANCEL, 2, claim, cancel, this.#maxDuration)) === 1
  }

  async * follow (key: string, lastEventId: string | undefined, signal: AbortSignal): AsyncGenerator<Buffer, Ending | undefined> {
    const [recording, claim] = this.#keys(key)
    let after = await this.#start(recording, lastEventId)
    let wait = FIRST_POLL_MS
    /** When reads began to fail, while they do. */
    let failingSince: number | undefined
    while (!signal.aborted) {
      let read: [Entries, number, number]
      try {
        read = await this.#call((client) => client.eval(READ, 2, recording, claim, `(${after}-0`, READ_COUNT)) as typeof read
        failingSince = undefined
      } catch {
        // Redis is away (the adapter logs the outage): the follower waits for it, for a while.
        failingSince ??= Date.now()
        if (Date.now() - failingSince >= UNAVAILABLE_MS) return { kind: 'error', code: 'FST_PUSH_STREAM_ADAPTER_UNAVAILABLE' }
        await pause(IDLE_POLL_MS, signal)
        continue
      }
      const [entries, claimed] = read
      for (const [id, fields] of entries) {
        if (fields[0] === 'e') return JSON.parse(fields[1] as string) as Ending
        after = Number(id.slice(0, id.indexOf('-')))
        yield Buffer.from(fields[1] as string)
      }
      if (entries.length > 0) {
        wait = FIRST_POLL_MS
        continue
      }
      // No claim and no end: the producer's instance stopped renewing it.
      if (claimed === 0) return { kind: 'error', code: new FST_PUSH_STREAM_PRODUCER_LOST(key).code }
      await pause(wait, signal)
      wait = Math.min(IDLE_POLL_MS, wait * 2)
    }
    return undefined
  }

  /** Nothing is held in memory: claims lapse on their own, and recordings expire. */
  async close (): Promise<void> {}

  /** The event a follower resumes after: the id it sent when the recording holds it; else 0, the start. */
  async #start (recording: string, lastEventId: string | undefined): Promise<number> {
    if (lastEventId === undefined || !/^\d{1,15}$/.test(lastEventId) || lastEventId === '0') return 0
    const found = await this.#call((client) => client.xrange(recording, `${lastEventId}-0`, `${lastEventId}-0`))
    return found.length > 0 ? Number(lastEventId) : 0
  }

  /** The recording's key, its claim's and its cancel's: one hash slot (the braces), names no stream key can make (`#`). */
  #keys (key: string): [string, string, string] {
    const recording = `${this.#prefix}{${key}}`
    return [recording, `${recording}#claim`, `${recording}#cancel`]
  }
}

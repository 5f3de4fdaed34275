/**
 * Whether the shared stream still holds everything after what this instance
 * has read. Entries can leave it unread two ways: trimmed past the tail
 * (while the instance was cut off, or fell too far behind), and lost with
 * Redis's data (a restart without persistence, a flush, a restore of an
 * older copy).
 * - Trimming shows in the stream's counts: the entries removed (ever added
 *   minus held) outnumber the entries up to the tail's last one, its
 *   position, which the tail counts as it reads.
 * - For lost data, every instance joins an epoch: a random value kept beside
 *   the stream, which goes with the data. A missing or changed one says the
 *   data was lost, and so does a stream whose newest id is older than what
 *   the tail has read.
 * The stream is the plugin's own: an entry deleted by hand (`XDEL`) counts as
 * trimmed.
 */
import { createHash, randomUUID } from 'node:crypto'
import type { Redis } from 'ioredis'
import type { AdapterLag, LogGap } from '../adapter.js'
import { CONTINUITY, JOIN } from './scripts.js'

const CONTINUITY_SHA = createHash('sha1').update(CONTINUITY).digest('hex')

/** The epoch, the tail's position and the check of one adapter's stream. */
export class StreamContinuity {
  readonly #streamKey: string
  readonly #epochKey: string
  #epoch = ''
  /** How many entries the stream had ever been given up to the tail's last one. */
  #position = 0
  /** The stream's newest id and how many entries it was ever given, when last asked. */
  #newest = '0-0'
  #added = 0

  /** @param key the stream's key; the epoch is kept at `<key>:epoch`. */
  constructor (key: string) {
    this.#streamKey = key
    this.#epochKey = `${key}:epoch`
  }

  /** Joins the stream's epoch (making one when there is none) at start; resolves with the id of the newest entry, where the tail begins. */
  async join (client: Redis): Promise<string> {
    const [epoch, newest, added] = await client.eval(JOIN, 2, this.#streamKey, this.#epochKey, randomUUID()) as [string, string, number]
    this.#epoch = epoch
    this.#position = added
    this.#newest = newest
    this.#added = added
    return newest
  }

  /** How far the tail is behind the stream, as of the last check before a read. */
  lag (): AdapterLag {
    return { newestId: this.#newest, behind: Math.max(0, this.#added - this.#position) }
  }

  /** The tail read `count` more entries. */
  read (count: number): void {
    this.#position += count
  }

  /**
   * Undefined when the stream holds everything after `lastId`; else where the
   * tail reads on (after `head`) and why. A lost epoch is replaced, and this
   * instance joins the new one.
   */
  async check (reader: Redis, lastId: string): Promise<LogGap | undefined> {
    const args = [2, this.#streamKey, this.#epochKey, this.#epoch, lastId, this.#position, randomUUID()] as const
    let answer: [verdict: string, epoch: string, head: string, position: number, newest: string, added: number]
    try {
      answer = await reader.evalsha(CONTINUITY_SHA, ...args) as typeof answer
    } catch (error) {
      // Redis does not know the script yet (or forgot it in a restart): sent once in full.
      if (!String((error as Error).message).startsWith('NOSCRIPT')) throw error
      answer = await reader.eval(CONTINUITY, ...args) as typeof answer
    }
    const [verdict, epoch, head, position, newest, added] = answer
    this.#epoch = epoch
    this.#position = position
    this.#newest = newest
    this.#added = added
    if (verdict === 'ok') return undefined
    return { after: lastId, head, reason: verdict === 'trimmed' ? 'trimmed' : 'lost' }
  }
}

/**
 * Presence across instances in Redis: each instance keeps its own counts
 * (channel to number of streams, no client's identity) in a hash of its own
 * that expires unless renewed, and is listed, with that expiry, in a sorted
 * set beside the stream. A count sums the hashes of the instances still
 * listed, so one that died without closing drops out within `ttl`.
 */
import { randomUUID } from 'node:crypto'
import type { AdapterPresence } from '../adapter.js'
import type { Call } from './connections.js'
import { PRESENCE_COUNT, PRESENCE_REPORT } from './scripts.js'

/** How often an instance renews its counts. */
export const PRESENCE_EVERY_MS = 1000
/** How long counts last unless renewed. */
const PRESENCE_TTL_MS = 3 * PRESENCE_EVERY_MS

/** One instance's presence in Redis. */
export class RedisPresence implements AdapterPresence {
  readonly reportEvery = PRESENCE_EVERY_MS
  readonly #instances: string
  readonly #prefix: string
  readonly #id = randomUUID()
  readonly #call: Call

  /** @param key the stream's key: presence lives at `<key>:presence` and `<key>:presence:<instance>`. */
  constructor (key: string, call: Call) {
    this.#instances = `${key}:presence`
    this.#prefix = `${key}:presence:`
    this.#call = call
  }

  async report (counts: ReadonlyMap<string, number>): Promise<void> {
    const fields: Array<string | number> = []
    for (const [channel, count] of counts) fields.push(channel, count)
    await this.#call((client) => client.eval(PRESENCE_REPORT, 2, this.#instances, this.#prefix + this.#id, this.#id, PRESENCE_TTL_MS, ...fields))
  }

  async count (channel: string): Promise<number> {
    return await this.#call((client) => client.eval(PRESENCE_COUNT, 1, this.#instances, this.#prefix, channel)) as number
  }

  /** Takes this instance's counts out at once, at close. */
  async leave (): Promise<void> {
    await this.#call((client) => client.multi().zrem(this.#instances, this.#id).del(this.#prefix + this.#id).exec())
  }
}

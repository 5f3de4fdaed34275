/**
 * Leases on keys beside the stream (`<key>:lease:<name>`), so that one
 * instance at a time runs the generator: taken with SET NX PX, renewed and
 * given back by scripts that check this instance's token, so an instance
 * only ever renews or releases a lease of its own. One that is not renewed
 * expires by itself, which is how a dead holder lets go.
 */
import { randomUUID } from 'node:crypto'
import type { Call } from './connections.js'
import { RELEASE, TAKE_OR_RENEW } from './scripts.js'

/** The leases one adapter takes, renews and gives back. */
export class RedisLeases {
  readonly #key: string
  readonly #call: Call
  /** Written into the lease keys this instance holds. */
  readonly #token = randomUUID()
  readonly #held = new Set<string>()

  /**
   * @param key the stream's key, under which the lease keys live.
   * @param call runs a command on the adapter's command connection.
   */
  constructor (key: string, call: Call) {
    this.#key = key
    this.#call = call
  }

  /** Takes or renews the lease `name` for `ttlMs`; false when another holds it or Redis cannot be asked. Never rejects. */
  async take (name: string, ttlMs: number): Promise<boolean> {
    let held = false
    try {
      held = await this.#call((client) => client.eval(TAKE_OR_RENEW, 1, this.#leaseKey(name), this.#token, ttlMs)) === 1
    } catch {
      // Redis is away: not holding the lease is the safe answer (it expires on its own).
    }
    if (held) this.#held.add(name)
    else this.#held.delete(name)
    return held
  }

  /** The key of the lease `name` and the token that holds it when it is this instance's: what a fenced append checks. */
  fence (name: string): [key: string, token: string] {
    return [this.#leaseKey(name), this.#token]
  }

  /** A fenced append found the lease `name` not this instance's: nothing to give back at close. */
  lost (name: string): void {
    this.#held.delete(name)
  }

  /** Gives back every lease still held, as far as Redis answers; one it cannot reach expires on its own. */
  async releaseAll (): Promise<void> {
    await Promise.all([...this.#held].map(async (name) => {
      await this.#call((client) => client.eval(RELEASE, 1, this.#leaseKey(name), this.#token)).catch(() => {})
    }))
    this.#held.clear()
  }

  #leaseKey (name: string): string {
    return `${this.#key}:lease:${name}`
  }
}

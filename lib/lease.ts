import type { PushStreamAdapter } from './adapter.js'

/** How long a lease lasts unless renewed, and how often the holder renews it. */
export const LEASE_TTL_MS = 3000
export const LEASE_RENEW_MS = 1000

/**
 * Keeps asking the adapter for one named lease, so that exactly one instance
 * holds it at a time: the holder renews it every second; when the holder
 * closes (it lets go) or dies (the lease runs out), another takes it.
 */
export class LeaseKeeper {
  readonly #adapter: PushStreamAdapter
  readonly #name: string
  readonly #onError: (error: unknown) => void
  #timer: NodeJS.Timeout | undefined
  #held = false
  #stopped = false

  constructor (adapter: PushStreamAdapter, name: string, onError: (error: unknown) => void) {
    this.#adapter = adapter
    this.#name = name
    this.#onError = onError
  }

  /** True while this instance holds the lease (as of the last answer). */
  get held (): boolean {
    return this.#held
  }

  /** The engine found the lease no longer this instance's (a fenced publish was refused): not held until the next answer says so. */
  lost (): void {
    this.#held = false
  }

  /** Asks at once, then every `LEASE_RENEW_MS`; resolves after the first answer. */
  async start (): Promise<void> {
    await this.#ask()
    if (this.#stopped) return
    // #ask never rejects: it reports its own failures.
    this.#timer = setInterval(() => { this.#ask().catch(this.#onError) }, LEASE_RENEW_MS)
    this.#timer.unref()
  }

  /** Stops asking; the adapter's close() lets go of a held lease. */
  stop (): void {
    this.#stopped = true
    this.#held = false
    clearInterval(this.#timer)
    this.#timer = undefined
  }

  async #ask (): Promise<void> {
    let held: boolean
    try {
      held = await this.#adapter.lease(this.#name, LEASE_TTL_MS)
    } catch (error) {
      held = false
      this.#onError(error)
    }
    if (!this.#stopped) this.#held = held
  }
}

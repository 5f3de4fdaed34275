/**
 * Keys remembered for a window of time, each with the value it was stored
 * with: what the in-memory engine keeps of the idempotency keys it has seen.
 * Keys expire in the order they were remembered, so forgetting the expired
 * ones stops at the first that is not.
 */
export class RecentKeys {
  readonly #windowMs: number
  readonly #entries = new Map<string, { value: string, until: number }>()

  constructor (windowMs: number) {
    this.#windowMs = windowMs
  }

  /** The value remembered for `key` within the window, if any. */
  find (key: string): string | undefined {
    const now = Date.now()
    for (const [old, entry] of this.#entries) {
      if (entry.until > now) break
      this.#entries.delete(old)
    }
    return this.#entries.get(key)?.value
  }

  /** Remembers `key` with `value` for the window, from now. */
  remember (key: string, value: string): void {
    this.#entries.set(key, { value, until: Date.now() + this.#windowMs })
  }

  /** Keys remembered and not yet forgotten. */
  get size (): number {
    return this.#entries.size
  }
}

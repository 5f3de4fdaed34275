/** Latencies in 0.1 ms buckets up to 60 s (one overflow bucket past it), for percentiles without keeping every sample. */
export class Histogram {
  readonly #buckets = new Uint32Array(600_001)
  count = 0

  add (ms: number): void {
    this.#buckets[Math.min(600_000, Math.max(0, Math.round(ms * 10)))]!++
    this.count++
  }

  /** The latency (ms) below which `p` (0 to 1) of the samples fall. */
  percentile (p: number): number {
    const rank = Math.ceil(p * this.count)
    let seen = 0
    for (let i = 0; i < this.#buckets.length; i++) {
      seen += this.#buckets[i] as number
      if (seen >= rank && seen > 0) return i / 10
    }
    return 0
  }
}

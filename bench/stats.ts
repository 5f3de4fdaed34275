/** The value below which a fraction `q` of `sorted` lies (nearest rank); NaN when empty. */
export function percentile (sorted: ArrayLike<number>, q: number): number {
  if (sorted.length === 0) return NaN
  return sorted[Math.min(sorted.length - 1, Math.ceil(q * sorted.length) - 1)]
}

/** Median, minimum and maximum of the runs' values. */
export interface Spread { median: number, min: number, max: number }

export function spread (values: readonly number[]): Spread {
  const sorted = values.filter(Number.isFinite).sort((a, b) => a - b)
  if (sorted.length === 0) return { median: NaN, min: NaN, max: NaN }
  const mid = sorted.length >> 1
  const median = sorted.length % 2 === 1 ? sorted[mid] : (sorted[mid - 1] + sorted[mid]) / 2
  return { median, min: sorted[0], max: sorted[sorted.length - 1] }
}

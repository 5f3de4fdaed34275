/** The data of every benchmark event: a sequence number, the publish time and padding. */
export interface BenchEvent {
  seq: number
  /** Publish time in ms since the epoch, with sub-millisecond precision comparable across processes. */
  t: number
  pad: string
}

/** The JSON of an event without padding is about 45 bytes; this brings it to about 100. */
export const SMALL_PAD = 55

/** Wall-clock time in ms with sub-millisecond precision, the same clock in every process. */
export function now (): number {
  return performance.timeOrigin + performance.now()
}

/** Milliseconds since the epoch with sub-millisecond precision, comparable between processes on one machine. */
export function now (): number {
  return performance.timeOrigin + performance.now()
}

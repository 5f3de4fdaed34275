/**
 * The option checks the plugin's options and the Redis adapter's options
 * share: each returns the value it was given when it is allowed and throws
 * `FST_PUSH_STREAM_INVALID_OPTION` naming the option when it is not, so a bad
 * value fails at registration (or at `redisAdapter(...)`) with one wording.
 */
import { FST_PUSH_STREAM_INVALID_OPTION, describe } from './errors.js'

/** The longest delay `setTimeout` and `setInterval` can wait, in milliseconds: 2^31 - 1. */
export const MAX_DELAY = 2 ** 31 - 1

/**
 * `value` when it is an integer from `min` to `max`; else `FST_PUSH_STREAM_INVALID_OPTION`
 * (or the given error, with the same arguments) naming the option.
 */
export function integer (
  name: string,
  value: unknown,
  min: number,
  max: number,
  InvalidOption: new (name: string, got: string, expected: string) => Error = FST_PUSH_STREAM_INVALID_OPTION
): number {
  if (typeof value !== 'number' || !Number.isInteger(value) || value < min || value > max) {
    throw new InvalidOption(name, describe(value), `an integer from ${min} to ${max}`)
  }
  return value
}

/** The options without the keys whose value is undefined, so defaults apply to them. */
export function stripUndefined<T extends object> (options: T): Partial<T> {
  return Object.fromEntries(Object.entries(options).filter(([, value]) => value !== undefined)) as Partial<T>
}

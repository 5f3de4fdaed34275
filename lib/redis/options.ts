/**
 * What `redisAdapter(connection, options)` accepts: where to connect, the
 * stream's key and length and the command timeout, with their defaults, and
 * the checks that throw `FST_PUSH_STREAM_INVALID_OPTION` when it is called.
 */
import type { Redis } from 'ioredis'
import { FST_PUSH_STREAM_INVALID_OPTION, describe } from '../errors.js'
import { MAX_DELAY, integer, stripUndefined } from '../validate.js'

/**
 * Where the Redis adapter connects: a URL (the adapter opens and later quits
 * its own connections) or a client of the app's (used for commands, never
 * quit; the adapter only quits the duplicate it makes for reading).
 */
export type RedisConnection = { url: string } | { client: Redis }

/** The options of `redisAdapter(connection, options)`. */
export interface RedisAdapterOptions {
  /** The stream's key; leases live beside it under `<key>:lease:<name>`. Default `'push-stream'`. */
  key?: string
  /** Entries the stream keeps, roughly (`XADD … MAXLEN ~`): the shared replay history. Default `10000`. */
  maxLength?: number
  /** Milliseconds a command may wait for Redis before it fails (`publish` then rejects). Default `5000`. */
  commandTimeout?: number
}

/** The adapter's options after defaults and validation. */
export type ResolvedRedisOptions = Required<RedisAdapterOptions>

/** The defaults, as documented. */
export const redisDefaults = Object.freeze({
  key: 'push-stream',
  maxLength: 10000,
  commandTimeout: 5000
})

/** Checks the connection: `{ url }` with a redis:// or rediss:// URL, or `{ client }` with an ioredis client. */
export function resolveRedisConnection (connection: unknown): RedisConnection {
  const given = (typeof connection === 'object' && connection !== null ? connection : {}) as Record<string, unknown>
  const client = given.client as { duplicate?: unknown } | undefined
  if (typeof client === 'object' && client !== null && typeof client.duplicate === 'function') {
    return { client: client as Redis }
  }
  if (typeof given.url === 'string' && /^rediss?:\/\//.test(given.url)) return { url: given.url }
  throw new FST_PUSH_STREAM_INVALID_OPTION('connection', describe(connection), '{ url: "redis://…" } or { client: an ioredis client }')
}

/** Applies the defaults and throws `FST_PUSH_STREAM_INVALID_OPTION` for the first bad value. */
export function resolveRedisOptions (options: RedisAdapterOptions = {}): ResolvedRedisOptions {
  const given = { ...redisDefaults, ...stripUndefined(options) }
  if (typeof given.key !== 'string' || given.key.length === 0) {
    throw new FST_PUSH_STREAM_INVALID_OPTION('key', describe(given.key), 'a non-empty string')
  }
  return {
    key: given.key,
    maxLength: integer('maxLength', given.maxLength, 1, 1_000_000_000),
    commandTimeout: integer('commandTimeout', given.commandTimeout, 1, MAX_DELAY)
  }
}

/**
 * The Redis Streams adapter, `fastify-push-stream/redis`: every instance
 * appends to one stream (XADD with MAXLEN ~, which is also the shared replay
 * history) and tails it with XREAD BLOCK on a connection of its own, from the
 * last id it delivered, so a reconnect to Redis loses and repeats nothing.
 * Leases (SET NX PX, renewed by a script that checks the token) let one
 * instance at a time run the generator. Streams rather than pub/sub, because
 * pub/sub drops what is published while a subscriber reconnects.
 */
import type { PushStreamAdapter } from '../adapter.js'
import { RedisStreamAdapter } from './adapter.js'
import { resolveRedisConnection, resolveRedisOptions, type RedisAdapterOptions, type RedisConnection } from './options.js'

export { reconnectDelay } from './connections.js'
export { redisDefaults, type RedisAdapterOptions, type RedisConnection } from './options.js'

/**
 * Creates the Redis Streams adapter, for the plugin's `adapter` option.
 *
 * @param connection `{ url }` to let the adapter open (and quit) its own
 *   connections, or `{ client }` to use an ioredis client of the app's.
 * @param options `key` (default `'push-stream'`), `maxLength` (default
 *   `10000`), `commandTimeout` (default `5000` ms).
 * @throws FST_PUSH_STREAM_INVALID_OPTION for a bad connection or option.
 */
export function redisAdapter (connection: RedisConnection, options: RedisAdapterOptions = {}): PushStreamAdapter {
  return new RedisStreamAdapter(resolveRedisConnection(connection), resolveRedisOptions(options))
}

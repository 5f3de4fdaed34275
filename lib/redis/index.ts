/**
 * The Redis Streams adapter: every instance appends to one stream (XADD with
 * MAXLEN ~, which is also the shared replay history) and tails it with XREAD
 * BLOCK on a connection of its own, from the last id it delivered, so a
 * reconnect to Redis loses and repeats nothing. Leases (SET NX PX, renewed by
 * a script that checks the token) let one instance at a time run the
 * generator. Streams rather than pub/sub, because pub/sub drops what is
 * published while a subscriber reconnects.
 */
import { once } from 'node:events'
import { randomUUID } from 'node:crypto'
import { Redis, type RedisOptions } from 'ioredis'
import type { AdapterContext, AdapterEvent, AdapterMessage, PushStreamAdapter } from '../adapter.js'
import { FST_PUSH_STREAM_ADAPTER_UNAVAILABLE, FST_PUSH_STREAM_INVALID_OPTION, errorMessage } from '../errors.js'
import { compareEventIds, parseEventId, type EventId } from '../wire/event-id.js'
import { toEvents, toFields, type StreamEntry } from './entries.js'
import {
  resolveRedisConnection, resolveRedisOptions,
  type RedisAdapterOptions, type RedisConnection, type ResolvedRedisOptions
} from './options.js'

export { redisDefaults, type RedisAdapterOptions, type RedisConnection } from './options.js'

/** What a fresh client is told when the stream is empty: "before the first entry". */
const START_ID = '0-0'
/** Entries one XREAD may return. */
const READ_COUNT = 500
/** How long one XREAD waits for new entries before it is sent again. */
const READ_BLOCK_MS = 5000
/** The tailer's pause after Redis refused a read, and its longest wait for a reconnect before it looks again. */
const PAUSE_MS = 1000

// Takes the lease when it is free, renews it when it is still ours; 1 when held.
const TAKE_OR_RENEW = `
if redis.call('SET', KEYS[1], ARGV[1], 'NX', 'PX', ARGV[2]) then return 1 end
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('PEXPIRE', KEYS[1], ARGV[2])
  return 1
end
return 0`

// Deletes the lease only while it is still ours (it may have expired and been taken).
const RELEASE = `
if redis.call('GET', KEYS[1]) == ARGV[1] then return redis.call('DEL', KEYS[1]) end
return 0`

// How many entries left the stream (trimmed or deleted); 0 when there is no stream.
// XINFO answers a flat list inside a script, whatever protocol the caller speaks.
const REMOVED = `
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
local info = redis.call('XINFO', 'STREAM', KEYS[1])
local fields = {}
for i = 1, #info, 2 do fields[info[i]] = info[i + 1] end
return fields['entries-added'] - fields['length']`

/** Exponential backoff from 50 ms to 2 s, with jitter so instances do not all come back at once. */
export function reconnectDelay (attempt: number): number {
  const ceiling = Math.min(2000, 50 * 2 ** Math.min(attempt - 1, 6))
  return Math.round(ceiling / 2 + Math.random() * ceiling / 2)
}

// Options of the connections the adapter makes: a command fails at once while
// Redis is away (rather than waiting in ioredis's queue), and one in flight
// when the connection drops is rejected rather than sent again.
const FAIL_FAST: RedisOptions = {
  enableOfflineQueue: false,
  maxRetriesPerRequest: 0,
  autoResendUnfulfilledCommands: false,
  retryStrategy: reconnectDelay,
  // Replies in the shape the adapter reads, whatever the app's client prefers.
  replyMapping: 'legacy'
}

function ignore (): void {}

type State = 'idle' | 'started' | 'closed'

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

/** One instance's view of the shared stream. */
class RedisStreamAdapter implements PushStreamAdapter {
  readonly #connection: RedisConnection
  readonly #options: ResolvedRedisOptions
  /** Written into the lease keys this instance holds, so it only ever renews or releases its own. */
  readonly #token = randomUUID()
  readonly #held = new Set<string>()
  /** Connections this adapter opened: the only ones it closes. */
  readonly #own: Redis[] = []
  /** Listeners to remove at close (some are on the app's client). */
  readonly #listeners: Array<() => void> = []
  /** Names of the connections that are down; an outage lasts while one is. */
  readonly #down = new Set<string>()
  #state: State = 'idle'
  #commands: Redis | undefined
  #lastId = START_ID
  #lastError: string | undefined
  #tailing: Promise<void> = Promise.resolve()
  #wake: () => void = ignore

  constructor (connection: RedisConnection, options: ResolvedRedisOptions) {
    this.#connection = connection
    this.#options = options
  }

  async start (context: AdapterContext): Promise<string> {
    if (this.#state !== 'idle') {
      throw new FST_PUSH_STREAM_INVALID_OPTION('adapter', 'a Redis adapter that was already started', 'a new redisAdapter(...) for each plugin instance (one can only be started once)')
    }
    this.#state = 'started'
    const { key } = this.#options
    let reader: Redis
    try {
      const commands = this.#open('commands', { lazyConnect: true })
      this.#commands = commands
      if (commands.status === 'wait') await commands.connect()
      const newest = await this.#bounded(commands.xrevrange(key, '+', '-', 'COUNT', 1))
      this.#lastId = newest[0]?.[0] ?? START_ID
      reader = this.#open('reader', { lazyConnect: false })
    } catch (error) {
      const reason = this.#lastError ?? errorMessage(error)
      await this.close()
      throw new FST_PUSH_STREAM_ADAPTER_UNAVAILABLE(`Redis did not answer: ${reason}`, { cause: error })
    }
    this.#watch(context, 'commands', this.#commands)
    this.#watch(context, 'reader', reader)
    this.#tailing = this.#tail(context, reader)
    return this.#lastId
  }

  async publish (message: AdapterMessage): Promise<string> {
    const { key, maxLength } = this.#options
    try {
      return await this.#call((client) => client.xadd(key, 'MAXLEN', '~', maxLength, '*', ...toFields(message))) as string
    } catch (error) {
      throw new FST_PUSH_STREAM_ADAPTER_UNAVAILABLE(errorMessage(error), { cause: error })
    }
  }

  async replay (lastId: string, until: string, channels: ReadonlySet<string>): Promise<AdapterEvent[] | null> {
    // A malformed id never reaches Redis.
    const last = parseEventId(lastId)
    if (last === null) return null
    let entries: StreamEntry[] | null
    try {
      entries = await this.#entriesAfter(lastId, last, until)
    } catch (error) {
      throw new FST_PUSH_STREAM_ADAPTER_UNAVAILABLE(`replay from Redis failed: ${errorMessage(error)}`, { cause: error })
    }
    return entries === null ? null : toEvents(entries).filter((event) => channels.has(event.channel))
  }

  async lease (name: string, ttlMs: number): Promise<boolean> {
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

  async close (): Promise<void> {
    if (this.#state === 'closed') return
    // Leases are given back while the adapter is still counted as started, so the call goes through.
    await Promise.all([...this.#held].map(async (name) => {
      await this.#call((client) => client.eval(RELEASE, 1, this.#leaseKey(name), this.#token)).catch(ignore)
    }))
    this.#held.clear()
    this.#state = 'closed'
    this.#wake()
    for (const remove of this.#listeners) remove()
    // A blocked XREAD must not hold close up: the connections are dropped, not asked to quit.
    await Promise.all(this.#own.map(async (client) => {
      const ended = client.status === 'end' || client.status === 'reconnecting' ? undefined : once(client, 'end')
      client.disconnect()
      await this.#bounded(Promise.resolve(ended)).catch(ignore)
    }))
    await this.#tailing
  }

  /** Reads the stream from the last delivered id, for as long as the adapter is started. */
  async #tail (context: AdapterContext, reader: Redis): Promise<void> {
    const { key } = this.#options
    let refused = false
    while (this.#state === 'started') {
      if (reader.status !== 'ready') {
        await this.#pause(reader)
        continue
      }
      let reply: Array<[string, StreamEntry[]]> | null
      try {
        // Read through ioredis's xread, which answers one shape whichever protocol the connection speaks.
        reply = await reader.xread('COUNT', READ_COUNT, 'BLOCK', READ_BLOCK_MS, 'STREAMS', key, this.#lastId) as typeof reply
      } catch (error) {
        // A lost connection rejects the read: the next turn waits for the reconnect and reads on from the same id.
        if (this.#state !== 'started') break
        if (reader.status === 'ready' && !refused) {
          // Redis itself refused (the key holds something else than a stream): said once, tried again after a pause.
          context.log.error({ err: error, key }, 'push-stream: Redis refused to read the stream')
          refused = true
        }
        await this.#pause(reader)
        continue
      }
      refused = false
      if (reply !== null) this.#deliver(context, reply[0][1])
    }
  }

  #deliver (context: AdapterContext, entries: StreamEntry[]): void {
    this.#lastId = entries[entries.length - 1][0]
    // A batch of entries written by someone else delivers nothing, but the tailer still moves past it.
    const events = toEvents(entries)
    if (events.length > 0) {
      try {
        context.deliver(events)
      } catch (error) {
        // The events count as delivered: sending them again would repeat them to the clients that got them.
        context.log.error({ err: error }, 'push-stream: delivering events from Redis failed')
      }
    }
  }

  /** Resolves when the reader is ready again, after PAUSE_MS, or at close. */
  async #pause (reader: Redis): Promise<void> {
    await new Promise<void>((resolve) => {
      const done = (): void => {
        clearTimeout(timer)
        reader.off('ready', done)
        this.#wake = ignore
        resolve()
      }
      const timer = setTimeout(done, PAUSE_MS)
      timer.unref()
      reader.on('ready', done)
      this.#wake = done
    })
  }

  /**
   * The entries after `lastId` up to `until`, or null when `lastId` is not one
   * the stream can answer for (trimmed, never issued, in the future).
   */
  async #entriesAfter (lastId: string, last: EventId, until: string): Promise<StreamEntry[] | null> {
    const { key } = this.#options
    if (lastId === START_ID) {
      // "Before the first entry" holds only while nothing ever left the stream.
      const entries = await this.#call((client) => client.xrange(key, '-', until))
      return await this.#call((client) => client.eval(REMOVED, 1, key)) === 0 ? entries : null
    }
    const entries = await this.#call((client) => client.xrange(key, lastId, until))
    if (entries[0]?.[0] === lastId) return entries.slice(1)
    const newest = parseEventId(until)
    if (entries.length === 0 && newest !== null && compareEventIds(last, newest) > 0) {
      // A client ahead of this instance's history (it came from a quicker one): valid while the stream holds its id.
      const held = await this.#call((client) => client.xrange(key, lastId, lastId))
      return held.length === 1 ? [] : null
    }
    return null
  }

  /** Runs a command on the command connection: at once or not at all when Redis is away, and bounded in time. */
  async #call<T> (run: (client: Redis) => Promise<T>): Promise<T> {
    const client = this.#commands
    if (this.#state !== 'started' || client === undefined) {
      throw new Error(`the Redis adapter is ${this.#state === 'closed' ? 'closed' : 'not started'}`)
    }
    if (client.status !== 'ready') throw new Error(`the Redis connection is ${client.status}`)
    return await this.#bounded(run(client))
  }

  async #bounded<T> (promise: Promise<T>): Promise<T> {
    const ms = this.#options.commandTimeout
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new Error(`no answer from Redis within ${ms} ms`)), ms)
    })
    try {
      return await Promise.race([promise, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /** The app's client for commands, or a connection of the adapter's own; the reader is always its own. */
  #open (name: string, extra: RedisOptions): Redis {
    const connection = this.#connection
    if (name === 'commands' && 'client' in connection) return connection.client
    const options: RedisOptions = { ...FAIL_FAST, ...extra, connectionName: `push-stream:${this.#options.key.replace(/[^!-~]/g, '_').slice(0, 64)}:${name}` }
    const client = 'client' in connection ? connection.client.duplicate(options) : new Redis(connection.url, options)
    const onError = (error: Error): void => { this.#lastError = error.message }
    client.on('error', onError)
    this.#own.push(client)
    return client
  }

  /** Logs an outage once when a connection drops, and once when every connection is back. */
  #watch (context: AdapterContext, name: string, client: Redis): void {
    const { key } = this.#options
    const onClose = (): void => {
      if (this.#down.has(name)) return
      if (this.#down.size === 0) {
        context.log.warn({ key, connection: name, reason: this.#lastError }, 'push-stream: lost the connection to Redis; reconnecting')
      }
      this.#down.add(name)
    }
    const onReady = (): void => {
      this.#lastError = undefined
      if (!this.#down.delete(name) || this.#down.size > 0) return
      context.log.info({ key }, 'push-stream: reconnected to Redis')
    }
    client.on('close', onClose)
    client.on('ready', onReady)
    this.#listeners.push(() => {
      client.off('close', onClose)
      client.off('ready', onReady)
    })
  }

  #leaseKey (name: string): string {
    return `${this.#options.key}:lease:${name}`
  }
}

/**
 * The Redis Streams adapter: one instance's view of the shared stream, built
 * from the modules beside it (connections, the tail, replay, leases). Every
 * rejection of `publish` and `replay` leaves it as a
 * `FST_PUSH_STREAM_ADAPTER_UNAVAILABLE`, so the plugin never wraps one
 * again; `lease` never rejects.
 */
import type { Redis } from 'ioredis'
import type { AdapterContext, AdapterEvent, AdapterLag, AdapterMessage, AdapterRecordings, PublishFence, PushStreamAdapter } from '../adapter.js'
import { FST_PUSH_STREAM_ADAPTER_UNAVAILABLE, FST_PUSH_STREAM_INVALID_OPTION, FST_PUSH_STREAM_LEASE_LOST, FST_PUSH_STREAM_PUBLISH_UNCONFIRMED, errorMessage } from '../errors.js'
import { NotSent, RedisConnections, sentUnanswered, type Call } from './connections.js'
import { toEvents, toFields } from './entries.js'
import { RedisLeases } from './leases.js'
import { FENCED_APPEND, IDEMPOTENT_APPEND } from './scripts.js'
import { IDEMPOTENCY_WINDOW_MS } from '../message.js'
import type { RedisConnection, ResolvedRedisOptions } from './options.js'
import { entriesAfter } from './replay.js'
import { StreamTail } from './tail.js'
import { StreamContinuity } from './continuity.js'
import { RedisRecordings, RENEW_EVERY_MS } from './recordings.js'
import { RedisPresence } from './presence.js'

type State = 'idle' | 'started' | 'closed'

/** The `PushStreamAdapter` over one Redis stream; started once, then closed. */
export class RedisStreamAdapter implements PushStreamAdapter {
  readonly #options: ResolvedRedisOptions
  readonly #connections: RedisConnections
  readonly #leases: RedisLeases
  #state: State = 'idle'
  #commands: Redis | undefined
  #tail: StreamTail | undefined
  #continuity: StreamContinuity | undefined

  /** Resumable streams, recorded beside the stream: any instance can follow them. */
  readonly recordings: AdapterRecordings = {
    renewEvery: RENEW_EVERY_MS,
    store: (limits) => new RedisRecordings(this.#options.key, this.#call, limits)
  }

  /** Presence: this instance's counts beside the stream, summed over the instances still reporting. */
  readonly presence: RedisPresence

  /** Runs a command on the command connection: at once or not at all when Redis is away, and bounded in time. */
  readonly #call: Call = async (run) => {
    const client = this.#commands
    if (this.#state !== 'started' || client === undefined) {
      throw new NotSent(`the Redis adapter is ${this.#state === 'closed' ? 'closed' : 'not started'}`)
    }
    if (client.status !== 'ready') throw new NotSent(`the Redis connection is ${client.status}`)
    return await this.#connections.answer(run(client))
  }

  /**
   * @param connection where to connect, already checked.
   * @param options the options after defaults and validation.
   */
  constructor (connection: RedisConnection, options: ResolvedRedisOptions) {
    this.#options = options
    this.#connections = new RedisConnections(connection, options.key, options.commandTimeout)
    this.#leases = new RedisLeases(options.key, this.#call)
    this.presence = new RedisPresence(options.key, this.#call)
  }

  async start (context: AdapterContext): Promise<string> {
    if (this.#state !== 'idle') {
      throw new FST_PUSH_STREAM_INVALID_OPTION('adapter', 'a Redis adapter that was already started', 'a new redisAdapter(...) for each plugin instance (one can only be started once)')
    }
    this.#state = 'started'
    const { key } = this.#options
    const connections = this.#connections
    connections.logTo(context.log)
    let commands: Redis
    let reader: Redis
    let lastId: string
    const continuity = new StreamContinuity(key)
    this.#continuity = continuity
    try {
      commands = connections.open('commands', { lazyConnect: true })
      this.#commands = commands
      if (commands.status === 'wait') await commands.connect()
      lastId = await connections.bounded(continuity.join(commands))
      reader = connections.open('reader', { lazyConnect: false })
    } catch (error) {
      const reason = connections.lastError ?? errorMessage(error)
      await this.close()
      throw new FST_PUSH_STREAM_ADAPTER_UNAVAILABLE(`Redis did not answer: ${reason}`, { cause: error })
    }
    connections.watch(context.log, 'commands', commands)
    connections.watch(context.log, 'reader', reader)
    this.#tail = new StreamTail(reader, key, lastId, context, continuity)
    this.#tail.start()
    return lastId
  }

  async publish (message: AdapterMessage, shape: PublishFence = {}): Promise<string> {
    const { key, maxLength } = this.#options
    const { lease, idempotencyKey, idempotencyWindow = IDEMPOTENCY_WINDOW_MS } = shape
    let id: string | null
    try {
      if (lease !== undefined) {
        // The lease is checked and the entry appended in one step: no other instance can take the lease between them.
        const [leaseKey, token] = this.#leases.fence(lease)
        id = await this.#call((client) => client.eval(FENCED_APPEND, 2, key, leaseKey, token, maxLength, ...toFields(message))) as string | null
      } else if (idempotencyKey !== undefined) {
        // Whether the key was seen, and the append, in one step: two retries at once store one event.
        id = await this.#call((client) => client.eval(IDEMPOTENT_APPEND, 2, key, `${key}:published:${idempotencyKey}`, idempotencyWindow, maxLength, ...toFields(message))) as string
      } else {
        id = await this.#call((client) => client.xadd(key, 'MAXLEN', '~', maxLength, '*', ...toFields(message)))
      }
    } catch (error) {
      // Sent and not answered (in time, or before the connection dropped): Redis may have stored it.
      if (sentUnanswered(error)) {
        throw new FST_PUSH_STREAM_PUBLISH_UNCONFIRMED(errorMessage(error), { cause: error })
      }
      throw new FST_PUSH_STREAM_ADAPTER_UNAVAILABLE(errorMessage(error), { cause: error })
    }
    if (id !== null) return id
    this.#leases.lost(lease as string)
    throw new FST_PUSH_STREAM_LEASE_LOST(lease)
  }

  async replay (lastId: string, until: string, channels: ReadonlySet<string>): Promise<AdapterEvent[] | null> {
    try {
      const entries = await entriesAfter(this.#call, this.#options.key, lastId, until)
      return entries === null ? null : toEvents(entries).filter((event) => channels.has(event.channel))
    } catch (error) {
      throw new FST_PUSH_STREAM_ADAPTER_UNAVAILABLE(`replay from Redis failed: ${errorMessage(error)}`, { cause: error })
    }
  }

  lag (): AdapterLag | undefined {
    return this.#continuity?.lag()
  }

  async lease (name: string, ttlMs: number): Promise<boolean> {
    return await this.#leases.take(name, ttlMs)
  }

  async close (): Promise<void> {
    if (this.#state === 'closed') return
    // Leases are given back while the adapter is still counted as started, so the calls go through.
    await this.#leases.releaseAll()
    this.#state = 'closed'
    this.#tail?.stop()
    await this.#connections.close()
    await this.#tail?.ended
  }
}

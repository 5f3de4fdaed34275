/**
 * The Redis adapter's connections: the command connection (the app's client,
 * or one of the adapter's own) and the reader (always its own, since its
 * blocking reads would hold commands up). The adapter's own connections fail
 * fast while Redis is away and reconnect with backoff; every command is
 * bounded in time; an outage is logged once when it begins and once when it
 * ends; and at close only the connections the adapter opened are dropped.
 */
import { once } from 'node:events'
import { Redis, type RedisOptions } from 'ioredis'
import type { AdapterLogger } from '../adapter.js'
import { diagnostics } from '../diagnostics.js'
import type { RedisConnection } from './options.js'

/** A command that was never sent: the connection was not ready for it. Nothing of it reached Redis. */
export class NotSent extends Error {}

/** A command that was sent and not answered within `commandTimeout`: Redis may still carry it out. */
export class NoAnswer extends Error {}

/**
 * True when `error` says a command was sent and no answer came: not in time
 * (`NoAnswer`), or not before the connection dropped (ioredis then fails what
 * it had sent, having retried nothing: `maxRetriesPerRequest` is 0, or the
 * client was closed). Redis may have carried it out.
 */
export function sentUnanswered (error: unknown): boolean {
  return error instanceof NoAnswer || (error as Error).name === 'MaxRetriesPerRequestError' || (error as Error).message === 'Connection is closed.'
}

/** Runs one command on the command connection, bounded in time; rejects when it cannot be sent. */
export type Call = <T>(run: (client: Redis) => Promise<T>) => Promise<T>

/** Which of the adapter's two connections: part of its name in `CLIENT LIST` and of the outage log. */
export type ConnectionName = 'commands' | 'reader'

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

/** Opens, watches and closes the connections of one adapter. */
export class RedisConnections {
  readonly #connection: RedisConnection
  readonly #key: string
  readonly #commandTimeout: number
  /** Connections this adapter opened: the only ones it closes. */
  readonly #own: Redis[] = []
  /** Listeners to remove at close (some are on the app's client). */
  readonly #listeners: Array<() => void> = []
  /** Names of the connections that are down; an outage lasts while one is. */
  readonly #down = new Set<ConnectionName>()
  /** When the current outage began (`Date.now()`). */
  #downSince = 0
  #lastError: (Error & { code?: unknown }) | undefined
  /** Where silences and answers are reported: the adapter's context's logger, given at start. */
  #log!: AdapterLogger
  /** When commands began to go unanswered (`Date.now()`); 0 while Redis answers. */
  #silentSince = 0

  /**
   * @param connection where to connect, as `redisAdapter` was given it.
   * @param key the stream's key, which names the connections.
   * @param commandTimeout milliseconds `bounded` waits for an answer.
   */
  constructor (connection: RedisConnection, key: string, commandTimeout: number) {
    this.#connection = connection
    this.#key = key
    this.#commandTimeout = commandTimeout
  }

  /** Why a connection of the adapter's own last failed, until a watched connection is ready again. */
  get lastError (): string | undefined {
    return this.#lastError?.message
  }

  readonly #onError = (error: Error): void => {
    this.#lastError = error
  }

  /** Reports through `log` from now on: called first thing at start. */
  logTo (log: AdapterLogger): void {
    this.#log = log
  }

  /** The app's client for commands, or a connection of the adapter's own; the reader is always its own. */
  open (name: ConnectionName, extra: RedisOptions): Redis {
    const connection = this.#connection
    if (name === 'commands' && 'client' in connection) return connection.client
    const options: RedisOptions = { ...FAIL_FAST, ...extra, connectionName: `push-stream:${this.#key.replace(/[^!-~]/g, '_').slice(0, 64)}:${name}` }
    const client = 'client' in connection ? connection.client.duplicate(options) : new Redis(connection.url, options)
    client.on('error', this.#onError)
    this.#own.push(client)
    return client
  }

  /**
   * Logs an outage once when a connection drops, with its cause (the last
   * error's code and message, or that the connection was closed without one),
   * and once when every connection is back, with how long it lasted.
   */
  watch (log: AdapterLogger, name: ConnectionName, client: Redis): void {
    const key = this.#key
    const onClose = (): void => {
      if (this.#down.has(name)) return
      if (this.#down.size === 0) {
        this.#downSince = Date.now()
        const error = this.#lastError
        const outage = {
          key,
          connection: name,
          // Redis closing the socket (a restart, CLIENT KILL, a proxy) comes with no error of its own.
          code: typeof error?.code === 'string' ? error.code : 'CONNECTION_CLOSED',
          cause: error?.message ?? 'the connection was closed'
        }
        log.warn(outage, 'fastify-push-stream: lost the connection to Redis; reconnecting')
        if (diagnostics.adapterOutage.hasSubscribers) diagnostics.adapterOutage.publish(outage)
      }
      this.#down.add(name)
    }
    const onReady = (): void => {
      this.#lastError = undefined
      if (!this.#down.delete(name) || this.#down.size > 0) return
      const recovery = { key, outageMs: Date.now() - this.#downSince }
      log.info(recovery, 'fastify-push-stream: reconnected to Redis')
      if (diagnostics.adapterRecovery.hasSubscribers) diagnostics.adapterRecovery.publish(recovery)
    }
    // The app's client as well: its errors are the cause of an outage of the command connection.
    // (The adapter's own connections keep their error listener for good, closed or not.)
    const foreign = !this.#own.includes(client)
    if (foreign) client.on('error', this.#onError)
    client.on('close', onClose)
    client.on('ready', onReady)
    this.#listeners.push(() => {
      if (foreign) client.off('error', this.#onError)
      client.off('close', onClose)
      client.off('ready', onReady)
    })
  }

  /** `promise`, or a rejection once `commandTimeout` has passed without an answer. */
  async bounded<T> (promise: Promise<T>): Promise<T> {
    const ms = this.#commandTimeout
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(new NoAnswer(`no answer from Redis within ${ms} ms`)), ms)
    })
    try {
      return await Promise.race([promise, timeout])
    } finally {
      clearTimeout(timer)
    }
  }

  /**
   * A command's answer, bounded by `commandTimeout`. Redis going silent (a
   * command sent and not answered in time: frozen, overloaded) is logged once,
   * and so is the first answer after it, even one that comes after its caller
   * gave up on it.
   */
  async answer<T> (sent: Promise<T>): Promise<T> {
    sent.then(this.#answered, this.#answered)
    try {
      return await this.bounded(sent)
    } catch (error) {
      if (error instanceof NoAnswer && this.#silentSince === 0) {
        this.#silentSince = Date.now()
        this.#log.warn({ key: this.#key, commandTimeout: this.#commandTimeout }, 'fastify-push-stream: Redis did not answer within commandTimeout; what was sent may still be carried out')
      }
      throw error
    }
  }

  readonly #answered = (): void => {
    if (this.#silentSince === 0) return
    this.#log.info({ key: this.#key, silentMs: Date.now() - this.#silentSince }, 'fastify-push-stream: Redis answers again')
    this.#silentSince = 0
  }

  /** Stops watching and drops the connections the adapter opened; the app's client is left as it is. */
  async close (): Promise<void> {
    for (const remove of this.#listeners) remove()
    // A blocked XREAD must not hold close up: the connections are dropped, not asked to quit.
    await Promise.all(this.#own.map(async (client) => {
      const ended = client.status === 'end' || client.status === 'reconnecting' ? undefined : once(client, 'end')
      client.disconnect()
      await this.bounded(Promise.resolve(ended)).catch(() => {})
    }))
  }
}

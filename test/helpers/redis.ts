import { spawn, type ChildProcess } from 'node:child_process'
import net from 'node:net'
import { randomUUID } from 'node:crypto'
import { Redis } from 'ioredis'
import type { AdapterContext, AdapterEvent, LogGap } from '../../lib/adapter.js'
import type { Teardown } from './teardown.js'

/** The Redis the tests use: `REDIS_URL`, or the one the project's machines run on 127.0.0.1:6379. */
export const redisUrl = process.env.REDIS_URL ?? 'redis://127.0.0.1:6379'

/** Whether Redis answers PING within a second. */
async function redisAnswers (url: string): Promise<boolean> {
  const client = new Redis(url, { lazyConnect: true, retryStrategy: () => null, maxRetriesPerRequest: 0, connectTimeout: 1000 })
  client.on('error', () => {})
  try {
    await client.connect()
    return await client.ping() === 'PONG'
  } catch {
    return false
  } finally {
    client.disconnect()
  }
}

/**
 * `{ skip }` for `t.test(name, skipUnlessRedis, fn)`: the Redis tests are skipped,
 * with a message saying why, when Redis does not answer, unless
 * `REDIS_REQUIRED=1`: then this throws, and the test file fails.
 */
export const skipUnlessRedis: { skip: string | false } = await (async () => {
  if (await redisAnswers(redisUrl)) return { skip: false }
  const reason = `Redis does not answer at ${redisUrl} (start redis-server, or set REDIS_URL)`
  if (process.env.REDIS_REQUIRED === '1') throw new Error(`${reason}, and REDIS_REQUIRED=1`)
  console.log(`# ${reason}: the Redis tests are skipped`)
  return { skip: reason }
})()

/**
 * The adapter module, loaded only by tests that run, so that on a machine
 * without Redis the module is never loaded and coverage does not count it.
 */
export async function loadRedisAdapter (): Promise<typeof import('../../lib/redis/index.js')> {
  return await import('../../lib/redis/index.js')
}

/** A client for the test's own use (inspecting, killing connections); quit in teardown. */
export function testClient (t: Teardown, url = redisUrl): Redis {
  const client = new Redis(url)
  t.teardown(() => client.quit())
  return client
}

/** A stream key of the test's own; the stream and every key under it are deleted in teardown. */
export function testKey (t: Teardown): string {
  const key = `push-stream-test:${randomUUID()}`
  t.teardown(async () => {
    const client = new Redis(redisUrl)
    try {
      const keys = await client.keys(`${key}*`)
      if (keys.length > 0) await client.del(...keys)
    } finally {
      client.disconnect()
    }
  })
  return key
}

/** A log line an adapter wrote: its level, the object and the message. */
export interface LogLine {
  level: 'info' | 'warn' | 'error'
  obj: object
  msg: string
}

/**
 * What the plugin gives an adapter, recording what it gets: every delivered
 * event, every batch, every log line. `until` awaits a condition checked on
 * each delivery and each log line.
 */
export class RecordingContext implements AdapterContext {
  readonly events: AdapterEvent[] = []
  readonly batches: number[] = []
  readonly lines: LogLine[] = []
  readonly log = {
    info: (obj: object, msg: string) => this.#line('info', obj, msg),
    warn: (obj: object, msg: string) => this.#line('warn', obj, msg),
    error: (obj: object, msg: string) => this.#line('error', obj, msg)
  }

  /** Every gap the adapter reported. */
  readonly gaps: LogGap[] = []
  #waiters: Array<() => void> = []
  /** Replaces delivery for a test that needs it to fail. */
  onDeliver: (events: readonly AdapterEvent[]) => void = () => {}

  deliver = (events: readonly AdapterEvent[]): void => {
    this.onDeliver(events)
    this.events.push(...events)
    this.batches.push(events.length)
    this.#wake()
  }

  lost = (gap: LogGap): void => {
    this.gaps.push(gap)
    this.#wake()
  }

  /** The delivered ids, in order. */
  get ids (): string[] {
    return this.events.map((event) => event.id)
  }

  /** Log lines at `level`. */
  logged (level: LogLine['level']): LogLine[] {
    return this.lines.filter((line) => line.level === level)
  }

  /** Resolves once `test()` holds, rejects after `ms`. */
  async until (test: () => boolean, what: string, ms = 10_000): Promise<void> {
    const deadline = Date.now() + ms
    while (!test()) {
      const left = deadline - Date.now()
      if (left <= 0) throw new Error(`timed out waiting for ${what}`)
      await new Promise<void>((resolve) => {
        const timer = setTimeout(resolve, Math.min(left, 250))
        this.#waiters.push(() => { clearTimeout(timer); resolve() })
      })
    }
  }

  #line (level: LogLine['level'], obj: object, msg: string): void {
    this.lines.push({ level, obj, msg })
    this.#wake()
  }

  #wake (): void {
    const waiters = this.#waiters
    this.#waiters = []
    for (const wake of waiters) wake()
  }
}

/** The ids of a connection name's clients in CLIENT LIST. */
export async function clientIds (client: Redis, name: string): Promise<string[]> {
  const list = await client.client('LIST') as string
  return list.split('\n')
    .filter((line) => line.includes(` name=${name} `))
    .map((line) => /(?:^|\s)id=(\d+)/.exec(line)?.[1] ?? '')
}

/** Kills every connection whose name is `name` (in one transaction), returns how many. */
export async function killClients (client: Redis, name: string): Promise<number> {
  const ids = await clientIds(client, name)
  const multi = client.multi()
  for (const id of ids) multi.client('KILL', 'ID', id)
  await multi.exec()
  return ids.length
}

/**
 * A TCP proxy in front of Redis that a test can cut (every connection is
 * dropped and new ones are refused) and restore, or hold (Redis's answers are
 * kept back, as on a network that stalls) and release: outages of Redis as
 * the adapter sees them, without touching the Redis other tests share.
 */
export class RedisProxy {
  readonly #server: net.Server
  readonly #sockets = new Set<net.Socket>()
  /** Answers kept back while held, per client socket, in order. */
  readonly #held = new Map<net.Socket, Buffer[]>()
  #cut = false
  #holding = false

  private constructor (server: net.Server) {
    this.#server = server
  }

  static async start (t: Teardown, target = new URL(redisUrl)): Promise<RedisProxy> {
    const server = net.createServer()
    const proxy = new RedisProxy(server)
    server.on('connection', (socket) => proxy.#accept(socket, target))
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.teardown(() => proxy.close())
    return proxy
  }

  /** The URL to give an adapter. */
  get url (): string {
    return `redis://127.0.0.1:${(this.#server.address() as net.AddressInfo).port}`
  }

  /** Drops every connection and refuses new ones until `restore()`. */
  cut (): void {
    this.#cut = true
    for (const socket of this.#sockets) socket.destroy()
  }

  restore (): void {
    this.#cut = false
  }

  /** Keeps Redis's answers back until `release()`: commands go unanswered. */
  hold (): void {
    this.#holding = true
  }

  release (): void {
    this.#holding = false
    for (const [socket, chunks] of this.#held) for (const chunk of chunks.splice(0)) socket.write(chunk)
  }

  async close (): Promise<void> {
    this.cut()
    await new Promise((resolve) => this.#server.close(resolve))
  }

  #accept (socket: net.Socket, target: URL): void {
    if (this.#cut) {
      socket.destroy()
      return
    }
    const upstream = net.connect(Number(target.port || 6379), target.hostname)
    const held: Buffer[] = []
    this.#held.set(socket, held)
    socket.on('data', (chunk: Buffer) => upstream.write(chunk))
    upstream.on('data', (chunk: Buffer) => {
      if (this.#holding) held.push(chunk)
      else socket.write(chunk)
    })
    for (const [a, b] of [[socket, upstream], [upstream, socket]] as const) {
      this.#sockets.add(a)
      a.on('error', () => b.destroy())
      a.on('close', () => {
        this.#sockets.delete(a)
        this.#held.delete(a)
        b.destroy()
      })
    }
  }
}

/**
 * A redis-server of the test's own, on a free port, keeping nothing on disk:
 * for the tests that flush, stop or freeze Redis, which must never touch the
 * shared one. Stopped by its pid in teardown.
 */
export class OwnRedis {
  readonly port: number
  #process: ChildProcess

  private constructor (port: number, child: ChildProcess) {
    this.port = port
    this.#process = child
  }

  static async start (t: Teardown): Promise<OwnRedis> {
    const port = await freePort()
    const redis = new OwnRedis(port, await runRedis(port))
    t.teardown(() => redis.stop())
    return redis
  }

  get url (): string {
    return `redis://127.0.0.1:${this.port}`
  }

  /** FLUSHALL: every key gone, the leases with them. */
  async flushAll (): Promise<void> {
    const client = new Redis(this.url)
    try {
      await client.flushall()
    } finally {
      client.disconnect()
    }
  }

  /** SIGSTOP: the server keeps its connections but answers nothing. */
  freeze (): void {
    this.#process.kill('SIGSTOP')
  }

  /** SIGCONT after `freeze()`. */
  thaw (): void {
    this.#process.kill('SIGCONT')
  }

  /** Kills the server and starts a new one on the same port: it keeps nothing on disk, so it comes back empty. */
  async restart (): Promise<void> {
    await this.stop()
    this.#process = await runRedis(this.port)
  }

  async stop (): Promise<void> {
    const child = this.#process
    if (child.exitCode !== null || child.signalCode !== null) return
    const exited = new Promise((resolve) => child.once('exit', resolve))
    child.kill('SIGCONT')
    child.kill('SIGKILL')
    await exited
  }
}

/** Starts redis-server on `port`, keeping nothing on disk; resolves once it accepts connections, rejects if it exits first. */
async function runRedis (port: number): Promise<ChildProcess> {
  const child = spawn('redis-server', ['--port', String(port), '--bind', '127.0.0.1', '--save', '', '--appendonly', 'no'], { stdio: ['ignore', 'pipe', 'inherit'] })
  await new Promise<void>((resolve, reject) => {
    let said = ''
    child.stdout?.on('data', (chunk: Buffer) => {
      said += chunk.toString()
      if (said.includes('Ready to accept connections')) resolve()
    })
    child.once('exit', (code) => reject(new Error(`redis-server on port ${port} exited (${code}): ${said.slice(-500)}`)))
  })
  child.stdout?.resume()
  return child
}

/** A TCP port nothing listens on (just now). */
async function freePort (): Promise<number> {
  const server = net.createServer()
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
  const { port } = server.address() as net.AddressInfo
  await new Promise((resolve) => server.close(resolve))
  return port
}

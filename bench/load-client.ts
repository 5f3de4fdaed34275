// The load client, run as its own process: opens N streams, parses every event,
// checks each stream gets every event once and in order, and measures latency.
// The work is done by bench/load-client.c, a single-threaded epoll program built
// here with gcc, which costs less per event than the servers it measures (a Node
// client cost more, and became the bottleneck); this file answers the bench's RPC
// calls by relaying them to it. Its ready message adds `nativePid`, the C process.
import { execFileSync, spawn } from 'node:child_process'
import { mkdirSync, renameSync, rmSync, statSync } from 'node:fs'
import { isIPv4 } from 'node:net'
import { createInterface } from 'node:readline'
import { fileURLToPath } from 'node:url'
import { serveRpc } from './rpc.js'

/** What one `expect` window saw, over all streams. */
export interface WindowResult {
  delivered: number
  /** Events a stream never got (skipped, or still missing at the timeout). */
  lost: number
  /** Events that came twice or out of order. */
  outOfOrder: number
  /** Streams the server ended. */
  dropped: number
  /** Events whose data was not the benchmark's JSON. */
  malformed: number
  timedOut: boolean
  /** Publish time of the window's first event and arrival time of its last one. */
  firstPublished: number
  lastReceived: number
  p50: number
  p99: number
  /**
   * CPU time (user + system, µs) the client process used during the window: from the
   * report of the previous window (or the last `closeAll`) to this report. Divided by
   * the window's wall time, it is the client's share of its core.
   */
  clientCpuMicros: number
}

const SOURCE = fileURLToPath(new URL('./load-client.c', import.meta.url))
// Under node_modules, which git ignores.
const BUILD_DIR = fileURLToPath(new URL('../node_modules/.cache/push-stream-bench/', import.meta.url))
const BINARY = `${BUILD_DIR}load-client`

function modified (path: string): number | undefined {
  try {
    return statSync(path).mtimeMs
  } catch {
    return undefined
  }
}

/** Compiles load-client.c unless the binary is newer than it; returns the binary's path. */
function build (): string {
  const source = modified(SOURCE)
  if (source === undefined) throw new Error(`${SOURCE} is missing`)
  const built = modified(BINARY)
  if (built !== undefined && built >= source) return BINARY
  mkdirSync(BUILD_DIR, { recursive: true })
  // Built under a name of its own, then renamed: two runs building at once never see half a binary.
  const partial = `${BINARY}.${process.pid}`
  try {
    execFileSync('gcc', ['-O2', '-std=c11', '-Wall', '-Wextra', '-o', partial, SOURCE], { stdio: ['ignore', 'ignore', 'pipe'] })
  } catch (err) {
    rmSync(partial, { force: true })
    const error = err as NodeJS.ErrnoException & { stderr?: Buffer }
    if (error.code === 'ENOENT') {
      throw new Error('gcc is needed: the benchmark load client is bench/load-client.c, compiled with gcc when it changes (on Debian or Ubuntu: apt-get install gcc)')
    }
    throw new Error(`gcc could not compile ${SOURCE}:\n${error.stderr?.toString() ?? error.message}`)
  }
  renameSync(partial, BINARY)
  return BINARY
}

let binary: string
try {
  binary = build()
} catch (err) {
  const message = (err as Error).message
  process.stderr.write(`load client: ${message}\n`)
  // The reason reaches the parent before this process exits.
  await new Promise<void>((resolve) => {
    if (process.send === undefined) resolve()
    else process.send({ ready: false, error: message }, () => resolve())
  })
  process.exit(1)
}

// The C process inherits this one's CPU affinity and open-file limit: it runs on the core the client is pinned to.
const native = spawn(binary, [], { stdio: ['pipe', 'pipe', 'inherit'] })
const waiting: Array<{ resolve: (answer: Record<string, unknown>) => void, reject: (err: Error) => void }> = []
let stopping = false

const ready = new Promise<Record<string, unknown>>((resolve, reject) => {
  waiting.push({ resolve, reject })
})

createInterface({ input: native.stdout }).on('line', (line) => {
  const call = waiting.shift()
  if (call === undefined) return
  let answer: Record<string, unknown>
  try {
    answer = JSON.parse(line) as Record<string, unknown>
  } catch {
    call.reject(new Error(`the load client answered something that is not JSON: ${line}`))
    return
  }
  if (typeof answer.error === 'string') call.reject(new Error(answer.error))
  else call.resolve(answer)
})

native.on('error', (err) => {
  process.stderr.write(`load client: could not start ${binary}: ${err.message}\n`)
  process.exit(1)
})

native.on('exit', (code, signal) => {
  if (stopping) return
  // Nothing can be measured without it: exiting makes the parent fail every pending call.
  process.stderr.write(`load client: the C process exited (${signal ?? `code ${code}`})\n`)
  process.exit(1)
})

/** Sends one command line; the C process answers its commands in order. */
function call (...words: Array<string | number>): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    waiting.push({ resolve, reject })
    native.stdin.write(words.join(' ') + '\n')
  })
}

function integer (value: unknown, name: string): number {
  if (!Number.isSafeInteger(value)) throw new Error(`${name} must be an integer, got ${String(value)}`)
  return value as number
}

/**
 * Opens `n` streams, at most `concurrency` handshakes at a time so the listen backlog never overflows.
 * With `sources` (addresses such as 127.0.0.2), the sockets are bound to them in turn, so more
 * streams than one address's ephemeral ports can be opened.
 */
async function connect ({ port, n, firstSeq, concurrency = 200, sources = [] }: {
  port: number, n: number, firstSeq: number, concurrency?: number, sources?: string[]
}): Promise<{ ms: number, failed: number, firstError?: string }> {
  for (const source of sources) if (!isIPv4(source)) throw new Error(`not an IPv4 address: ${source}`)
  const answer = await call('connect', integer(port, 'port'), integer(n, 'n'), integer(firstSeq, 'firstSeq'), integer(concurrency, 'concurrency'), ...sources)
  return answer as { ms: number, failed: number, firstError?: string }
}

/** Waits until every live stream has the events up to `until`, then reports the window and starts a new one. */
async function expect ({ until, timeoutMs }: { until: number, timeoutMs: number }): Promise<WindowResult> {
  const answer = await call('expect', integer(until, 'until'), Math.ceil(timeoutMs)) as Record<keyof WindowResult, number | boolean | null>
  // JSON has no Infinity or NaN: a window without events comes as null.
  return {
    ...answer,
    firstPublished: answer.firstPublished ?? Infinity,
    p50: answer.p50 ?? NaN,
    p99: answer.p99 ?? NaN
  } as WindowResult
}

/** Opens a stream that sends its request and then never reads a byte. */
async function stall ({ port }: { port: number }): Promise<void> {
  await call('stall', integer(port, 'port'))
}

/** Closes every stream this client opened, stalled ones too, and starts a fresh window. */
async function closeAll (): Promise<void> {
  await call('closeAll')
}

async function stop (): Promise<void> {
  stopping = true
  await call('stop')
  setImmediate(() => process.exit(0))
}

const started = await ready
serveRpc({ connect, expect, stall, closeAll, stop })
process.send?.({ ready: true, pid: process.pid, nativePid: started.pid, maxFiles: started.maxFiles })

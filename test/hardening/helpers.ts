import { spawn, type ChildProcess } from 'node:child_process'
import { once } from 'node:events'
import http from 'node:http'
import v8 from 'node:v8'
import vm from 'node:vm'
import { fileURLToPath } from 'node:url'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { isAppEvent } from '../helpers/sse.js'
import { waitFor } from '../helpers/wait.js'

/**
 * Tools shared by the hardening checks: a forced GC to read the heap without
 * garbage in it, turns of the event loop, lean stream readers and child
 * processes. Bounded waits are `waitFor` (../helpers/wait.ts).
 */

v8.setFlagsFromString('--expose-gc')
const collect = vm.runInNewContext('gc') as () => void

/** Bytes the process holds in JavaScript objects and in buffers, read after a full GC. */
export function heldBytes (): number {
  collect()
  collect()
  const { heapUsed, arrayBuffers } = process.memoryUsage()
  return heapUsed + arrayBuffers
}

/** One turn of the event loop (after pending I/O callbacks). */
export async function turn (): Promise<void> {
  await new Promise((resolve) => setImmediate(resolve))
}

/** The port of a `http://host:port` URL. */
export function portOf (url: string): number {
  return Number(new URL(url).port)
}

/** A child process running one of the fixtures under tsx, with an IPC channel. */
export function spawnFixture (name: string, args: string[] = []): ChildProcess {
  const file = fileURLToPath(new URL(`./fixtures/${name}`, import.meta.url))
  const child = spawn(process.execPath, ['--import', 'tsx', file, ...args], {
    stdio: ['ignore', 'inherit', 'inherit', 'ipc']
  })
  return child
}

/** The next IPC message from `child` whose `type` is `type`; rejects if the child exits first. */
export async function nextMessage<T extends { type: string }> (child: ChildProcess, type: string): Promise<T> {
  return await new Promise<T>((resolve, reject) => {
    const onMessage = (message: T): void => {
      if (message.type !== type) return
      cleanup()
      resolve(message)
    }
    const onExit = (code: number | null): void => {
      cleanup()
      reject(new Error(`child exited (${code}) before sending "${type}"`))
    }
    const cleanup = (): void => {
      child.off('message', onMessage)
      child.off('exit', onExit)
    }
    child.on('message', onMessage)
    child.once('exit', onExit)
  })
}

/** Ends a child and waits for it to exit. */
export async function stopChild (child: ChildProcess): Promise<void> {
  if (child.exitCode !== null || child.signalCode !== null) return
  const exited = once(child, 'exit')
  child.kill()
  await exited
}

/**
 * A stream reader that keeps only what each event's `pick` returns, so a test
 * that measures the server's memory is not measuring its own clients.
 */
export class LeanReader<T> {
  readonly picked: T[] = []
  readonly request: http.ClientRequest
  #wake: () => void = () => {}

  constructor (url: string, pick: (event: EventSourceMessage) => T, headers: Record<string, string> = {}) {
    const decoder = new TextDecoder()
    const parser = createParser({ onEvent: (event) => { if (isAppEvent(event)) this.picked.push(pick(event)); this.#wake() } })
    this.request = http.get(url, { agent: false, headers }, (res) => {
      res.on('data', (chunk: Buffer) => parser.feed(decoder.decode(chunk, { stream: true })))
      res.on('error', () => {})
    })
    this.request.on('error', () => {})
  }

  /** Resolves once `n` events arrived. */
  async take (n: number): Promise<T[]> {
    while (this.picked.length < n) await new Promise<void>((resolve) => { this.#wake = resolve })
    return this.picked.slice(0, n)
  }

  close (): void {
    this.request.destroy()
  }
}

/**
 * Opens `clients` streams on `path` from a child process (one process may not
 * hold both ends of thousands of sockets), `atOnce` at a time; resolves once
 * each has its opening block, with the child, which then reports `ended`.
 */
export async function openHeldStreams (t: { teardown: (fn: () => unknown) => void }, port: number, clients: number, options: { atOnce: number, path?: string }): Promise<ChildProcess> {
  const child = spawnFixture('close-clients.ts')
  t.teardown(() => stopChild(child))
  await nextMessage(child, 'ready')
  const open = nextMessage(child, 'open')
  child.send({ type: 'connect', port, clients, ...options })
  await waitFor(open, `${clients} streams to open`, 15_000)
  return child
}

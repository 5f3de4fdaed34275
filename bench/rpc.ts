import type { ChildProcess } from 'node:child_process'

/** A request sent over IPC: a command name, its arguments and an id to match the answer. */
interface Request { id: number, cmd: string, args: unknown }
/** The answer to one request. */
interface Answer { id: number, result?: unknown, error?: string }

/**
 * Calls into a child process over its IPC channel, one promise per call.
 * If the child dies, every pending call rejects with its exit status, so a
 * crashed server fails the run instead of hanging it.
 */
export class RpcClient {
  readonly #child: ChildProcess
  readonly #pending = new Map<number, { resolve: (value: unknown) => void, reject: (err: Error) => void }>()
  #nextId = 1
  #exited: Error | undefined

  constructor (child: ChildProcess, readonly name: string) {
    this.#child = child
    child.on('message', (message: Answer) => {
      const call = this.#pending.get(message.id)
      if (call === undefined) return
      this.#pending.delete(message.id)
      if (message.error === undefined) call.resolve(message.result)
      else call.reject(new Error(`${name}: ${message.error}`))
    })
    child.on('exit', (code, signal) => {
      this.#exited = new Error(`${name} exited (${signal ?? `code ${code}`})`)
      for (const call of this.#pending.values()) call.reject(this.#exited)
      this.#pending.clear()
    })
  }

  /** Sends `cmd` and resolves with the child's answer; rejects after `timeoutMs`. */
  call<T> (cmd: string, args: unknown = {}, timeoutMs = 120_000): Promise<T> {
    if (this.#exited !== undefined) return Promise.reject(this.#exited)
    const id = this.#nextId++
    return new Promise<T>((resolve, reject) => {
      const timer = setTimeout(() => {
        this.#pending.delete(id)
        reject(new Error(`${this.name}: ${cmd} took more than ${timeoutMs} ms`))
      }, timeoutMs)
      this.#pending.set(id, {
        resolve: (value) => { clearTimeout(timer); resolve(value as T) },
        reject: (err) => { clearTimeout(timer); reject(err) }
      })
      this.#child.send({ id, cmd, args } satisfies Request)
    })
  }
}

/** A child's command table: each handler gets the call's arguments and returns the answer. */
export type Handlers = Record<string, (args: any) => unknown>

/** In the child: answers the parent's calls with `handlers` until the channel closes. */
export function serveRpc (handlers: Handlers): void {
  const send = process.send?.bind(process)
  if (send === undefined) throw new Error('this file runs as a child process with an IPC channel')
  process.on('message', (message: Request) => {
    const handler = handlers[message.cmd]
    Promise.resolve()
      .then(() => {
        if (handler === undefined) throw new Error(`unknown command ${message.cmd}`)
        return handler(message.args)
      })
      .then(
        (result) => send({ id: message.id, result } satisfies Answer),
        (err: unknown) => send({ id: message.id, error: err instanceof Error ? err.stack ?? err.message : String(err) } satisfies Answer)
      )
  })
  // The parent went away: nothing left to serve.
  process.on('disconnect', () => process.exit(0))
}

import net from 'node:net'
import type { Teardown } from './teardown.js'

/** What the proxy does with the n-th connection (0 first): hold it back until `before` settles, then cut it after `blocks` SSE blocks. */
export interface ConnectionPlan {
  /** Awaited before the connection reaches the app: the test publishes here, while the client is away. */
  before?: () => Promise<unknown>
  /** Ends the client's side (a FIN, after every byte forwarded) once this many blocks of the body have passed. */
  blocks?: number
}

/**
 * A TCP proxy in front of an app that drops a stream where a test says: after
 * its n-th SSE block (the opening one is the first), as a server, a balancer or
 * a network would. The client reads every byte forwarded before it sees the end,
 * so what it makes of that block is settled when it reconnects. Each connection's
 * request head is kept, to check what a reconnect sent (`Last-Event-ID`).
 */
export class CutProxy {
  readonly #server: net.Server
  readonly #plans: ConnectionPlan[]
  readonly #sockets = new Set<net.Socket>()
  /** The request head (up to the blank line) of every connection, in order. */
  readonly requests: string[] = []

  private constructor (server: net.Server, plans: ConnectionPlan[]) {
    this.#server = server
    this.#plans = plans
  }

  static async start (t: Teardown, target: number, plans: ConnectionPlan[]): Promise<CutProxy> {
    const server = net.createServer()
    const proxy = new CutProxy(server, plans)
    server.on('connection', (socket) => { proxy.#accept(socket, target).catch(() => socket.destroy()) })
    await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve))
    t.teardown(() => proxy.close())
    return proxy
  }

  get url (): string {
    return `http://127.0.0.1:${(this.#server.address() as net.AddressInfo).port}`
  }

  async close (): Promise<void> {
    for (const socket of this.#sockets) socket.destroy()
    await new Promise((resolve) => this.#server.close(resolve))
  }

  async #accept (socket: net.Socket, target: number): Promise<void> {
    const index = this.requests.length
    this.requests.push('')
    this.#sockets.add(socket)
    socket.on('close', () => this.#sockets.delete(socket))
    socket.on('error', () => {})
    // What the client sends while the connection is held back waits with it.
    const early: Buffer[] = []
    const keep = (chunk: Buffer): void => { early.push(chunk) }
    socket.on('data', keep)
    const plan = this.#plans[index] ?? {}
    await plan.before?.()
    if (socket.destroyed) return
    const upstream = net.connect(target, '127.0.0.1')
    this.#sockets.add(upstream)
    upstream.on('close', () => { this.#sockets.delete(upstream); socket.destroy() })
    upstream.on('error', () => {})
    socket.on('close', () => upstream.destroy())
    socket.off('data', keep)
    let head = ''
    const forward = (chunk: Buffer): void => {
      if (!head.includes('\r\n\r\n')) head += chunk.toString('latin1')
      this.requests[index] = head.split('\r\n\r\n')[0] as string
      upstream.write(chunk)
    }
    for (const chunk of early) forward(chunk)
    socket.on('data', forward)

    // The head ends at the first blank line (CRLF CRLF); a block of the body, at each LF LF after it.
    let seen = ''
    let inBody = false
    let blocks = 0
    upstream.on('data', (chunk: Buffer) => {
      if (plan.blocks === undefined) {
        socket.write(chunk)
        return
      }
      const text = chunk.toString('latin1')
      let cutAt = -1
      for (let i = 0; i < text.length && cutAt === -1; i++) {
        seen = (seen + text[i]).slice(-4)
        if (!inBody) {
          inBody = seen === '\r\n\r\n'
          if (inBody) seen = ''
        } else if (seen.endsWith('\n\n') && ++blocks === plan.blocks) {
          cutAt = i + 1
        }
      }
      if (cutAt === -1) {
        socket.write(chunk)
        return
      }
      socket.end(chunk.subarray(0, cutAt))
      upstream.destroy()
    })
  }
}

import type { ServerResponse } from 'node:http'
import { serveRpc } from '../../rpc.js'
import { tokenText } from '../../token.js'
import { exitSoon, memoryAfterGc } from '../harness.js'

/** One stream being served, for the counts the benchmark asks for. */
interface Served {
  res: ServerResponse
  /** Opened by a client that never reads: its source starts at once and is counted apart. */
  stalled: boolean
}

/** What the server holds for the clients that stopped reading, summed over them. */
export interface StalledCounts {
  /** Their streams opened so far. */
  opened: number
  /** Their streams still open, as the server counts them. */
  streams: number
  /** Tokens their sources have yielded, streams since closed included. */
  pulled: number
  /** Bytes waiting in their responses' write buffers (`res.writableLength`: the response's and its socket's). */
  queued: number
  /** Bytes their sockets handed to the kernel (`bytesWritten` less what still waits), response heads included. */
  sent: number
}

/**
 * The token sources of one server. Every request's source is made here, the
 * same way for every server; only how it reaches the library differs.
 */
export class TokenSources {
  readonly #served = new Set<Served>()
  #release: () => void = () => {}
  #gate: Promise<void> = this.#armed()
  #waiting = 0
  #stalledOpened = 0
  #stalledPulled = 0

  /**
   * The source of the request to `url` (`/tokens?count=T`, plus `&stall=1` from
   * a client that will not read), yielding `make(token)` for each token. A
   * reading client's source waits for `go` before its first token, so that
   * all of a round's streams run at once; a stalled client's starts at once.
   */
  source<T> (url: string | undefined, res: ServerResponse, make: (token: string) => T): AsyncGenerator<T> {
    const query = new URL(url ?? '/', 'http://127.0.0.1').searchParams
    const count = Number(query.get('count'))
    if (!Number.isInteger(count) || count < 0) throw new Error(`bad token count in ${url}`)
    const served: Served = { res, stalled: query.get('stall') === '1' }
    this.#served.add(served)
    if (served.stalled) this.#stalledOpened++
    res.once('close', () => this.#served.delete(served))
    return served.stalled ? this.#stalledTokens(count, make) : this.#tokens(count, this.#gate, make)
  }

  async * #tokens<T> (count: number, gate: Promise<void>, make: (token: string) => T): AsyncGenerator<T> {
    this.#waiting++
    try {
      await gate
    } finally {
      this.#waiting--
    }
    for (let i = 0; i < count; i++) yield make(tokenText(i))
  }

  async * #stalledTokens<T> (count: number, make: (token: string) => T): AsyncGenerator<T> {
    for (let i = 0; i < count; i++) {
      this.#stalledPulled++
      yield make(tokenText(i))
    }
  }

  #armed (): Promise<void> {
    return new Promise((resolve) => { this.#release = resolve })
  }

  /** Sources whose first token waits for `go`. */
  get waiting (): number {
    return this.#waiting
  }

  /** Lets every waiting source start, and arms the gate again for the next round. */
  go (): void {
    this.#release()
    this.#gate = this.#armed()
  }

  /** What the stalled clients' streams hold now. */
  stalled (): StalledCounts {
    const counts: StalledCounts = { opened: this.#stalledOpened, streams: 0, pulled: this.#stalledPulled, queued: 0, sent: 0 }
    for (const { res, stalled } of this.#served) {
      if (!stalled) continue
      counts.streams++
      counts.queued += res.writableLength
      const socket = res.socket
      if (socket !== null) counts.sent += socket.bytesWritten - socket.writableLength
    }
    return counts
  }

  /** Streams open now, reading or stalled. */
  get open (): number {
    return this.#served.size
  }
}

/**
 * Runs a per-request benchmark server: `start` registers a `GET /tokens` route
 * that streams `sources.source(...)` with its library and returns the port.
 * Tells the parent its port and pid, then answers `waiting`, `go`, `stalled`,
 * `memory` and `stop` over IPC.
 */
export async function runStreamServer (start: (sources: TokenSources) => Promise<number>): Promise<void> {
  const sources = new TokenSources()
  const port = await start(sources)
  serveRpc({
    waiting: () => sources.waiting,
    go: () => sources.go(),
    stalled: () => sources.stalled(),
    memory: () => memoryAfterGc(sources.open),
    stop: () => exitSoon()
  })
  process.send?.({ ready: true, port, pid: process.pid })
}

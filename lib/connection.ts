import type { ServerResponse, OutgoingHttpHeaders } from 'node:http'
import type { Http2ServerResponse } from 'node:http2'

/** The raw response a stream writes to, over HTTP/1.1 or HTTP/2. */
export type RawResponse = ServerResponse | Http2ServerResponse

/** The stream under a response: the response itself over HTTP/1.1, its `Http2Stream` over HTTP/2. */
function transportOf (res: RawResponse): { readonly writableLength: number, readonly destroyed: boolean } {
  return 'stream' in res ? res.stream : res
}

/** True when the client is already gone: its response can never be written or closed again. */
export function isGone (res: RawResponse): boolean {
  return transportOf(res).destroyed
}

/** Why a connection ended. */
export type CloseReason = 'client' | 'slow' | 'server'

/**
 * One client's stream: writes frames to the raw response, ends it when the
 * client falls more than `maxBufferedBytes` behind, and reports its own end
 * exactly once through `onClose`.
 */
export class Connection {
  readonly channels: ReadonlySet<string>
  readonly #res: RawResponse
  readonly #maxBufferedBytes: number
  readonly #onClose: (connection: Connection, reason: CloseReason) => void
  #closed = false
  /** The buffered bytes past which the client counts as too slow; raised while a replay drains. */
  #limit: number
  /** Set by every write; the heartbeat skips connections that were written to. */
  wroteSinceHeartbeat = false

  constructor (
    res: RawResponse,
    channels: ReadonlySet<string>,
    maxBufferedBytes: number,
    onClose: (connection: Connection, reason: CloseReason) => void
  ) {
    this.#res = res
    this.channels = channels
    this.#maxBufferedBytes = maxBufferedBytes
    this.#limit = maxBufferedBytes
    this.#onClose = onClose
    // The one listener per connection: removal happens the moment the socket goes.
    res.once('close', this.#handleClose)
  }

  /** Sends the status line and headers. */
  open (headers: OutgoingHttpHeaders): void {
    const res = this.#res
    // An HTTP/1.1 socket that carried a stream is not reused: kept alive, it would hold up server.close().
    if (!('stream' in res)) res.shouldKeepAlive = false
    res.writeHead(200, headers)
  }

  /** Bytes written but not yet taken by the client's socket. */
  get bufferedBytes (): number {
    return transportOf(this.#res).writableLength
  }

  /**
   * Writes one frame. A client that has fallen more than `maxBufferedBytes`
   * behind is disconnected instead of being queued for without bound.
   */
  write (frame: Buffer): void {
    this.wroteSinceHeartbeat = true
    ;(this.#res as ServerResponse).write(frame)
    if (this.bufferedBytes > this.#limit) {
      this.#res.destroy()
      this.#finish('slow')
    }
  }

  /**
   * Writes the events a reconnecting client missed. A replay may be larger
   * than `maxBufferedBytes`; its frames are shared with history, so until the
   * client has drained it the limit is the replay plus `maxBufferedBytes`.
   */
  writeReplay (frames: readonly Buffer[]): void {
    for (const frame of frames) (this.#res as ServerResponse).write(frame)
    const buffered = this.bufferedBytes
    if (buffered <= this.#maxBufferedBytes) return
    this.#limit = buffered + this.#maxBufferedBytes
    this.#res.once('drain', this.#resetLimit)
  }

  readonly #resetLimit = (): void => {
    this.#limit = this.#maxBufferedBytes
  }

  /**
   * Ends the stream from the server side, after a last frame, when the server
   * shuts down. Over HTTP/2 it also closes the stream's session once its
   * other streams are done: Fastify leaves sessions open on Node < 24 unless
   * `forceCloseConnections` is true, and an open session holds up close().
   */
  end (lastFrame: Buffer): void {
    const res = this.#res
    if ('stream' in res) {
      const { stream } = res
      // A client that never ended its half of the stream would keep it, and the session, open.
      res.end(lastFrame, () => stream.close())
      stream.session?.close()
    } else {
      res.end(lastFrame)
    }
    this.#finish('server')
  }

  readonly #handleClose = (): void => {
    this.#finish('client')
  }

  /** Marks the connection ended and reports it, once, whichever way it ended. */
  #finish (reason: CloseReason): void {
    if (this.#closed) return
    this.#closed = true
    this.#onClose(this, reason)
  }
}

import type { ServerResponse, OutgoingHttpHeaders } from 'node:http'
import type { Http2ServerResponse } from 'node:http2'

/** The raw response a stream writes to, over HTTP/1.1 or HTTP/2. */
export type RawResponse = ServerResponse | Http2ServerResponse

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

  /** True once the stream has ended, for whatever reason. */
  get closed (): boolean {
    return this.#closed
  }

  /** Bytes written but not yet taken by the client's socket. */
  get bufferedBytes (): number {
    const res = this.#res
    return 'stream' in res ? res.stream.writableLength : res.writableLength
  }

  /**
   * Writes one frame. A client that has fallen more than `maxBufferedBytes`
   * behind is disconnected instead of being queued for without bound.
   */
  write (frame: Buffer): void {
    if (this.#closed) return
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

  /** Ends the stream from the server side, after a last frame if given. */
  end (lastFrame?: Buffer): void {
    if (this.#closed) return
    if (lastFrame === undefined) this.#res.end()
    else (this.#res as ServerResponse).end(lastFrame)
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

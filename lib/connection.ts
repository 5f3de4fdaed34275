import type { ServerResponse, OutgoingHttpHeaders } from 'node:http'
import type { Http2ServerResponse } from 'node:http2'
import { Socket } from 'node:net'
import type { Readable } from 'node:stream'
import { diagnostics, type StreamEndReason } from './diagnostics.js'

/** The raw response a stream writes to, over HTTP/1.1 or HTTP/2. */
export type RawResponse = ServerResponse | Http2ServerResponse

/** What a connection reads of the stream under its response. */
interface Transport { readonly writableLength: number, readonly destroyed: boolean }

/** Where a connection's frames go once the headers are out, and what says it has drained. */
interface Sink {
  write: (chunk: Buffer) => boolean
  once: (event: 'drain', listener: () => void) => unknown
}

/** The stream under a response: the response itself over HTTP/1.1, its `Http2Stream` over HTTP/2. */
function transportOf (res: RawResponse): Transport {
  return 'stream' in res ? res.stream : res
}

/** True when the client is already gone: its response can never be written or closed again. */
export function isGone (res: RawResponse): boolean {
  return transportOf(res).destroyed
}

/** The socket errors that say the client went away, rather than that the connection failed. */
const PEER_GONE: ReadonlySet<string> = new Set(['ECONNRESET', 'EPIPE', 'ECONNABORTED'])

/**
 * How long a client whose stream has ended has to take what is still waiting
 * for it (the last frame included) before its connection is cut: at close(),
 * a client that reads nothing must not hold the server open.
 */
export const DRAIN_GRACE_MS = 2000

/** Where a response keeps its connection, for the shared close listener. */
const CONNECTION = Symbol('fastify-push-stream.connection')

/**
 * Why a connection ended: the client left (`client`, also when it reset the
 * connection), the connection failed otherwise (`failed`), it fell too far behind (`slow`), took nothing for
 * `stallTimeout` (`stalled`), the server closed (`server`), or its source
 * ended it (`done`, `error`).
 */
export type CloseReason = 'client' | 'failed' | 'slow' | 'stalled' | 'server' | 'done' | 'error'

/** What a connection keeps of its request for the log line of its end. */
export interface StreamLog {
  debug: (obj: object, msg: string) => void
}

/** The request a stream answers, as the diagnostics messages name it. */
export interface StreamOrigin {
  /** Fastify's `request.id`. */
  id: string
  url: string
}

/** How a stream's end reads in its log line. */
const END_REASONS: Record<CloseReason, StreamEndReason> = {
  client: 'client-closed',
  failed: 'write-failed',
  slow: 'too-slow',
  stalled: 'stalled',
  server: 'server-closing',
  done: 'done',
  error: 'source-failed'
}

/** A response made by `fastify.inject()` (light-my-request): its body goes to a stream the caller reads. */
interface InjectedResponse { _lightMyRequest?: { stream?: Readable } }

/**
 * One client's stream: writes frames to the raw response, ends it when the
 * client falls more than `maxBufferedBytes` behind, and reports its own end
 * exactly once through `onClose`.
 */
export class Connection {
  /** The channels it subscribes to (a set the hub shares among connections on the same channels). */
  readonly channels: ReadonlySet<string>
  /** The client's address (`request.ip`), counted against `maxConnectionsPerIp`. */
  readonly address: string
  /** The request it answers; none for a refusal. */
  readonly origin: StreamOrigin | undefined
  readonly #res: RawResponse
  readonly #transport: Transport
  /** The response until the headers are sent; then, over HTTP/1.1, its socket. */
  #sink: Sink
  /**
   * What holds the bytes not yet taken: the transport, or over HTTP/1.1 the socket itself once
   * the headers are out (the same count, read without the response's getter on every write).
   */
  #queue: { readonly writableLength: number }
  readonly #maxBufferedBytes: number
  readonly #onClose: (connection: Connection, reason: CloseReason) => void
  #closed = false
  /** The buffered bytes past which the client counts as too slow; raised while a replay drains. */
  #limit: number
  /** Set by every write; a heartbeat is skipped for a connection that was written to since the last one. */
  #wroteSinceHeartbeat = false
  /** Bytes handed to the client's stream (the headers aside). */
  #bytesWritten = 0
  /** Events handed to the client's stream, as counted by the callers of `write` and `writeReplay`. */
  #eventsWritten = 0
  /** The error under which the connection failed, if it did. */
  #error: Error | undefined
  /** When the connection was made (`Date.now()`). */
  readonly #openedAt = Date.now()
  /** Set once the stream has ended with bytes still waiting: cuts the connection if the client does not take them in time. */
  #drainTimer: NodeJS.Timeout | undefined
  /** The request's logger, which carries its id; none for a refusal, whose end is logged apart. */
  readonly #log: StreamLog | undefined

  constructor (
    res: RawResponse,
    channels: ReadonlySet<string>,
    maxBufferedBytes: number,
    onClose: (connection: Connection, reason: CloseReason) => void,
    address: string,
    log: StreamLog | undefined,
    paced = false,
    origin?: StreamOrigin
  ) {
    this.address = address
    this.origin = origin
    this.#log = log
    this.#res = res
    this.#transport = transportOf(res)
    this.#queue = this.#transport
    this.#sink = res as ServerResponse
    this.channels = channels
    this.#maxBufferedBytes = maxBufferedBytes
    // A paced stream is never ended for being behind: its writer waits for the client instead.
    this.#limit = paced ? Infinity : maxBufferedBytes
    this.#onClose = onClose
    // The one listener per connection: removal happens the moment the socket goes.
    ;(res as RawResponse & { [CONNECTION]?: Connection })[CONNECTION] = this
    res.on('close', Connection.#onResponseClose)
  }

  /** Sends the status line and headers. */
  open (headers: OutgoingHttpHeaders): void {
    const res = this.#res
    if (!('stream' in res)) {
      // An HTTP/1.1 socket that carried a stream is not reused: kept alive, it would hold up server.close().
      res.shouldKeepAlive = false
      // The stream ends when the connection does, so its body needs no chunk framing: each
      // write goes to the socket as it is, one buffer instead of a size line, the data and a CRLF.
      res.useChunkedEncodingByDefault = false
      res.writeHead(200, headers)
      // With no framing left for the response to add, frames go straight to the socket:
      // no per-write bookkeeping of the response, no cork and deferred uncork per write.
      res.flushHeaders()
      // Chosen once, so that write() has no branch: the socket when there is a real one (checked by
      // the caller, isGone: the client is still there), else the response, e.g. one made by inject().
      if (res.socket instanceof Socket) {
        this.#sink = res.socket
        this.#queue = res.socket
      } else {
        (res as InjectedResponse)._lightMyRequest?.stream?.once('close', () => res.destroy())
      }
      return
    }
    res.writeHead(200, headers)
  }

  /** True once the connection has ended, whichever way. */
  get closed (): boolean {
    return this.#closed
  }

  /** Bytes written but not yet taken by the client's socket. */
  get bufferedBytes (): number {
    return this.#transport.writableLength
  }

  /** Bytes handed to the client's stream, the headers aside. */
  get bytesWritten (): number {
    return this.#bytesWritten
  }

  /** Bytes the client's stream has taken (written, less what still waits): grows while the client reads. */
  get bytesTaken (): number {
    return this.#bytesWritten - this.#transport.writableLength
  }

  /** The error under which the connection failed (its reason then is `failed`). */
  get error (): Error | undefined {
    return this.#error
  }

  /**
   * Calls `listener` once the client's stream asks for more ('drain'), or on
   * the next turn of the event loop when it does not wait for a drain (a
   * stream with no socket, or a limit below its high-water mark). Never once
   * the connection has closed: the caller also listens for the end.
   */
  whenDrained (listener: () => void): void {
    // The socket over HTTP/1.1, the Http2Stream over HTTP/2, the response itself for inject().
    const stream = (this.#sink === this.#res ? this.#transport : this.#sink) as Transport & Sink & { writableNeedDrain?: boolean }
    if (stream.writableNeedDrain === true) stream.once('drain', listener)
    else setImmediate(listener)
  }

  /**
   * Writes one frame, unless the client is so far behind that it would then
   * hold more than `maxBufferedBytes`: it is disconnected instead of being
   * queued for without bound. (A client with nothing waiting always gets the
   * frame, however large.) `events` is how many events the frame holds (a
   * joined write holds several, a heartbeat none).
   */
  write (frame: Buffer, events = 1): void {
    if (this.#closed) return
    this.#wroteSinceHeartbeat = true
    const buffered = this.#queue.writableLength
    if (buffered > 0 && buffered + frame.length > this.#limit) {
      if (this.origin !== undefined && diagnostics.slow.hasSubscribers) {
        diagnostics.slow.publish({ requestId: this.origin.id, bufferedBytes: buffered, maxBufferedBytes: this.#maxBufferedBytes })
      }
      this.#res.destroy()
      this.#finish('slow')
      return
    }
    this.#sink.write(frame)
    this.#bytesWritten += frame.length
    this.#eventsWritten += events
  }

  /**
   * Writes `frame` (a comment) unless something else was written since the
   * last call: one shared timer calls it for every connection.
   */
  heartbeat (frame: Buffer): void {
    // Bytes still waiting would carry the comment no sooner, and are not silence: the client is behind.
    if (!this.#wroteSinceHeartbeat && this.#queue.writableLength === 0) this.write(frame, 0)
    this.#wroteSinceHeartbeat = false
  }

  /**
   * Writes the events a reconnecting client missed, joined in one buffer
   * (one write, shared with every client that resumes from the same place in
   * the same turn of the event loop). A replay may be larger than
   * `maxBufferedBytes`: until the client has drained it, the limit is the
   * replay plus `maxBufferedBytes`. `events` is how many events it holds.
   */
  writeReplay (replay: Buffer, events: number): void {
    if (replay.length === 0) return
    this.#wroteSinceHeartbeat = true
    this.#sink.write(replay)
    this.#bytesWritten += replay.length
    this.#eventsWritten += events
    const buffered = this.bufferedBytes
    if (buffered <= this.#maxBufferedBytes) return
    this.#limit = buffered + this.#maxBufferedBytes
    this.#sink.once('drain', this.#resetLimit)
  }

  readonly #resetLimit = (): void => {
    this.#limit = this.#maxBufferedBytes
  }

  /**
   * Ends the stream from the server side, after a last frame, when the server
   * shuts down, or when a per-request stream is done. Over HTTP/2, when the
   * server shuts down, it also closes the stream's session once its
   * other streams are done: Fastify leaves sessions open on Node < 24 unless
   * `forceCloseConnections` is true, and an open session holds up close().
   */
  end (lastFrame: Buffer, reason: 'server' | 'done' | 'error' = 'server', drainWithin = DRAIN_GRACE_MS): void {
    const res = this.#res
    if ('stream' in res) {
      const { stream } = res
      // A client that never ended its half of the stream would keep it, and the session, open.
      res.end(lastFrame, () => stream.close())
      // Only a server that closes lets go of the session: a per-request stream's end leaves it to its other streams.
      if (reason === 'server') stream.session?.close()
    } else if (this.#sink === res) {
      // No socket of its own (inject()): the response ends the way any response does.
      res.end(lastFrame)
    } else {
      // The last frame goes where the others went; then the socket closes once it is flushed,
      // without waiting for the client and without the response's own finishing steps. When the
      // kernel took every byte, closing it sends them and the FIN: a shutdown first would add a
      // system call and a turn of the event loop per stream, which close() pays 10,000 times.
      const socket = this.#sink as Socket
      socket.write(lastFrame)
      if (socket.writableLength === 0) socket.destroy()
      else socket.destroySoon()
    }
    this.#bytesWritten += lastFrame.length
    // A client that takes nothing more would hold its socket, and close(), for as long as it likes.
    if (this.#transport.writableLength > 0 && !this.#transport.destroyed) {
      this.#drainTimer = setTimeout(() => res.destroy(), drainWithin)
    }
    this.#finish(reason)
  }

  /** Ends a stream whose client took nothing for too long: nothing more can reach it. */
  stall (): void {
    this.#res.destroy()
    this.#finish('stalled')
  }

  /** The one 'close' listener of every response: shared, so that a connection owns no function of its own. */
  static readonly #onResponseClose = function (this: RawResponse & { [CONNECTION]: Connection }): void {
    const connection = this[CONNECTION]
    clearTimeout(connection.#drainTimer)
    // A connection that failed leaves its error on the stream under the response.
    const error = (connection.#sink as { errored?: Error | null }).errored ?? (connection.#transport as { errored?: Error | null }).errored
    // A reset is how many clients leave: one that closes with unread bytes resets the connection.
    if (error == null || PEER_GONE.has((error as NodeJS.ErrnoException).code as string)) return connection.#finish('client')
    connection.#error = error
    connection.#finish('failed')
  }

  /** Marks the connection ended, reports it and logs it, once, whichever way it ended. */
  #finish (reason: CloseReason): void {
    if (this.#closed) return
    this.#closed = true
    this.#onClose(this, reason)
    const ended = {
      reason: END_REASONS[reason],
      durationMs: Date.now() - this.#openedAt,
      bytes: this.#bytesWritten,
      events: this.#eventsWritten
    }
    this.#log?.debug(ended, 'fastify-push-stream: stream ended')
    // A refusal (no request of its own) neither opened nor ends as a stream.
    if (this.origin !== undefined && diagnostics.end.hasSubscribers) diagnostics.end.publish({ requestId: this.origin.id, ...ended })
  }
}

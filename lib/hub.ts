import { Connection, type CloseReason } from './connection.js'
import { encodeComment } from './encoder.js'

const HEARTBEAT = encodeComment()

/**
 * The open connections, indexed by channel. A broadcast writes one
 * already-encoded frame to every subscriber of a channel; one shared timer
 * sends heartbeats, so an idle connection costs no timer of its own.
 */
export class Hub {
  readonly #byChannel = new Map<string, Set<Connection>>()
  readonly #all = new Set<Connection>()
  #heartbeat: NodeJS.Timeout | undefined
  /** Connections ended because the client fell behind `maxBufferedBytes`. */
  slowDisconnects = 0

  /** `heartbeatMs` 0 turns heartbeats off. */
  constructor (heartbeatMs: number) {
    if (heartbeatMs > 0) {
      this.#heartbeat = setInterval(this.#beat, heartbeatMs)
      this.#heartbeat.unref()
    }
  }

  /** Open connections. */
  get size (): number {
    return this.#all.size
  }

  /** Subscribes a connection to its channels until it closes. */
  add (connection: Connection): void {
    this.#all.add(connection)
    for (const channel of connection.channels) {
      let set = this.#byChannel.get(channel)
      if (set === undefined) {
        set = new Set()
        this.#byChannel.set(channel, set)
      }
      set.add(connection)
    }
  }

  /** The `onClose` callback to give each connection: unsubscribes it at once. */
  readonly remove = (connection: Connection, reason: CloseReason): void => {
    this.#all.delete(connection)
    if (reason === 'slow') this.slowDisconnects++
    for (const channel of connection.channels) {
      // Every connection is added before it can close, so its channels are indexed.
      const set = this.#byChannel.get(channel) as Set<Connection>
      set.delete(connection)
      if (set.size === 0) this.#byChannel.delete(channel)
    }
  }

  /** Writes the same bytes to every subscriber of `channel`. */
  broadcast (channel: string, frame: Buffer): void {
    const set = this.#byChannel.get(channel)
    if (set === undefined) return
    for (const connection of set) connection.write(frame)
  }

  /** Ends every connection, each after its own last frame, and stops the heartbeat. */
  closeAll (lastFrame: () => Buffer): void {
    clearInterval(this.#heartbeat)
    this.#heartbeat = undefined
    for (const connection of [...this.#all]) connection.end(lastFrame())
  }

  readonly #beat = (): void => {
    for (const connection of this.#all) {
      if (!connection.wroteSinceHeartbeat) connection.write(HEARTBEAT)
      connection.wroteSinceHeartbeat = false
    }
  }
}

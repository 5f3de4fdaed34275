import type { OutgoingHttpHeaders } from 'node:http'
import { Connection, type CloseReason, type RawResponse, type StreamLog, type StreamOrigin } from './connection.js'
import { diagnostics, type ResetMessage } from './diagnostics.js'
import { encodeComment, encodeEvent } from './wire/encoder.js'
import { LOST_RESET_DATA, RESET_DATA, RESET_EVENT } from './wire/protocol.js'

const HEARTBEAT = encodeComment()

/**
 * The most bytes one coalesced write carries. A tick's events are joined into
 * writes of at most this size, so a burst never lands on a client as one
 * huge buffer that would count it as slow.
 */
export const MAX_JOINED_BYTES = 16 * 1024

/** A `reset` event ready for the wire, with the id it carries and why it is sent. */
export interface ResetFrame {
  readonly frame: Buffer
  readonly id: string
  readonly reason: ResetMessage['reason']
}

/** The `reset` event at `id`: for a resume history cannot answer, or for a gap in the shared log (`events-lost`). */
export function resetFrame (id: string, reason: ResetMessage['reason']): ResetFrame {
  const data = reason === 'events-lost' ? LOST_RESET_DATA : RESET_DATA
  return { frame: encodeEvent({ id, event: RESET_EVENT, data }), id, reason }
}

/** One event ready for the wire: its channel and its encoded bytes. */
export interface OutgoingFrame {
  readonly channel: string
  readonly frame: Buffer
}

/** The connections that subscribe to exactly the same channels: they all get the same bytes. */
interface Group {
  readonly channels: ReadonlySet<string>
  readonly connections: Set<Connection>
}

/** One name for a set of channels, whatever order they were asked in. */
export function groupKey (channels: ReadonlySet<string>): string {
  // Commas cannot appear in a channel name.
  return [...channels].sort().join(',')
}

/**
 * The frames of `frames` that belong to `channels`, in order, joined into as
 * few buffers as fit in `MAX_JOINED_BYTES` (a frame larger than that goes alone).
 * `counts`, when given, receives how many frames each buffer holds.
 */
export function joinFrames (frames: readonly OutgoingFrame[], channels: ReadonlySet<string>, counts: number[] = []): Buffer[] {
  const joined: Buffer[] = []
  let run: Buffer[] = []
  let runBytes = 0
  const flush = (): void => {
    if (run.length === 0) return
    joined.push(run.length === 1 ? run[0] as Buffer : Buffer.concat(run, runBytes))
    counts.push(run.length)
    run = []
    runBytes = 0
  }
  for (const { channel, frame } of frames) {
    if (!channels.has(channel)) continue
    if (runBytes + frame.length > MAX_JOINED_BYTES) flush()
    run.push(frame)
    runBytes += frame.length
  }
  flush()
  return joined
}

/** A replay joined into one buffer, and how many events it holds. */
export interface JoinedReplay {
  readonly buffer: Buffer
  readonly count: number
}

/**
 * Every open stream, and the one place that writes to them. A stream is
 * counted (also per client address) from the moment it opens; once
 * subscribed, it is grouped by the set of channels it asked for and indexed
 * by channel. A broadcast encodes nothing: it writes bytes already encoded,
 * the same Buffer to every connection of a group, once per connection per
 * tick. One shared timer sends heartbeats, so an idle connection costs no
 * timer of its own.
 */
export class Hub {
  readonly #groups = new Map<string, Group>()
  readonly #byChannel = new Map<string, Set<Group>>()
  /** Every open connection, subscribed or not. */
  readonly #open = new Set<Connection>()
  /** The subscribed ones: they get broadcasts. */
  readonly #live = new Set<Connection>()
  /** Open streams per client address, for `maxConnectionsPerIp`. */
  readonly #perAddress = new Map<string, number>()
  /** Subscribed streams per channel: presence, counted as streams subscribe and end, never by walking them. */
  readonly #perChannel = new Map<string, number>()
  /** Bytes written to streams that have ended. */
  #endedBytes = 0
  readonly #maxBufferedBytes: number
  readonly #onEnd: (connection: Connection, reason: CloseReason) => void
  #heartbeat: NodeJS.Timeout | undefined
  #slowDisconnects = 0
  #replayed = 0
  #resets = 0

  /** `heartbeatMs` 0 turns heartbeats off; `onEnd` is told of every connection that ends, once. */
  constructor (options: { heartbeatMs: number, maxBufferedBytes: number, onEnd: (connection: Connection, reason: CloseReason) => void }) {
    this.#maxBufferedBytes = options.maxBufferedBytes
    this.#onEnd = options.onEnd
    if (options.heartbeatMs > 0) {
      // Every half heartbeat, each stream that had nothing written in the previous half gets a
      // comment: so none is silent longer than one heartbeat, whenever its last write was.
      this.#heartbeat = setInterval(this.#beat, Math.max(1, Math.floor(options.heartbeatMs / 2)))
      this.#heartbeat.unref()
    }
  }

  /** Open connections. */
  get size (): number {
    return this.#open.size
  }

  /** Streams ended because the client fell behind `maxBufferedBytes`. */
  get slowDisconnects (): number {
    return this.#slowDisconnects
  }

  /** Events written again to clients that resumed. */
  get replayed (): number {
    return this.#replayed
  }

  /** `reset` events written. */
  get resets (): number {
    return this.#resets
  }

  /** Bytes written to every stream so far, the headers aside. */
  get bytesWritten (): number {
    let bytes = this.#endedBytes
    for (const connection of this.#open) bytes += connection.bytesWritten
    return bytes
  }

  /** Streams subscribed to `channel` now. */
  subscribers (channel: string): number {
    return this.#perChannel.get(channel) ?? 0
  }

  /** Every channel with a subscribed stream, and how many. */
  get presence (): ReadonlyMap<string, number> {
    return this.#perChannel
  }

  /** Open streams from one client address. */
  connectionsFrom (address: string): number {
    return this.#perAddress.get(address) ?? 0
  }

  /**
   * Opens a stream on `res` (status line and headers), counted until it
   * ends and sent heartbeats; it gets broadcasts once `subscribe`d.
   * Connections on the same channels share one set of them. A `paced`
   * stream (one request's own source) is never ended for being behind: its
   * writer waits for the client to drain instead.
   */
  open (res: RawResponse, headers: OutgoingHttpHeaders, request: { channels: ReadonlySet<string>, address: string, log: StreamLog, paced?: boolean, origin?: StreamOrigin }): Connection {
    const channels = this.#groups.get(groupKey(request.channels))?.channels ?? request.channels
    const connection = new Connection(res, channels, this.#maxBufferedBytes, this.#remove, request.address, request.log, request.paced, request.origin)
    this.#open.add(connection)
    this.#perAddress.set(request.address, this.connectionsFrom(request.address) + 1)
    connection.open(headers)
    return connection
  }

  /** Writes one frame holding `events` events (0 for a block the client does not dispatch). */
  write (connection: Connection, frame: Buffer, events: number): void {
    connection.write(frame, events)
  }

  /** Writes what a resuming client missed. */
  replay (connection: Connection, replay: JoinedReplay): void {
    connection.writeReplay(replay.buffer, replay.count)
    this.#replayed += replay.count
  }

  /** Writes a `reset` event: its frame, the id it carries and why. */
  reset (connection: Connection, reset: ResetFrame): void {
    this.#resets++
    connection.write(reset.frame)
    if (connection.origin !== undefined && diagnostics.reset.hasSubscribers) {
      diagnostics.reset.publish({ requestId: connection.origin.id, reason: reset.reason, id: reset.id })
    }
  }

  /** Writes a `reset` event to every subscribed connection; answers how many got it. */
  resetLive (reset: ResetFrame): number {
    for (const connection of this.#live) this.reset(connection, reset)
    return this.#live.size
  }

  /**
   * Subscribes a connection to its channels until it ends, unless it has
   * already ended: it is live from now on. `resumed` and `replayed` say how
   * it got there, for the `open` diagnostics message.
   */
  subscribe (connection: Connection, resumed = false, replayed = 0): void {
    if (connection.closed) return
    this.#live.add(connection)
    for (const channel of connection.channels) this.#perChannel.set(channel, this.subscribers(channel) + 1)
    const origin = connection.origin
    if (origin !== undefined && diagnostics.open.hasSubscribers) {
      diagnostics.open.publish({ requestId: origin.id, kind: 'broadcast', channels: [...connection.channels], url: origin.url, resumed, replayed })
    }
    const key = groupKey(connection.channels)
    let group = this.#groups.get(key)
    if (group === undefined) {
      group = { channels: connection.channels, connections: new Set() }
      this.#groups.set(key, group)
      for (const channel of group.channels) {
        let groups = this.#byChannel.get(channel)
        if (groups === undefined) {
          groups = new Set()
          this.#byChannel.set(channel, groups)
        }
        groups.add(group)
      }
    }
    group.connections.add(connection)
  }

  /** Every connection's `onClose`: forgets it at once, whichever way it ended. */
  readonly #remove = (connection: Connection, reason: CloseReason): void => {
    this.#open.delete(connection)
    const left = this.connectionsFrom(connection.address) - 1
    if (left > 0) this.#perAddress.set(connection.address, left)
    else this.#perAddress.delete(connection.address)
    if (reason === 'slow') this.#slowDisconnects++
    this.#endedBytes += connection.bytesWritten
    this.#onEnd(connection, reason)
    if (!this.#live.delete(connection)) return
    for (const channel of connection.channels) {
      const left = this.subscribers(channel) - 1
      if (left > 0) this.#perChannel.set(channel, left)
      else this.#perChannel.delete(channel)
    }
    const key = groupKey(connection.channels)
    // Every live connection was subscribed, so its group exists.
    const group = this.#groups.get(key) as Group
    group.connections.delete(connection)
    if (group.connections.size > 0) return
    this.#groups.delete(key)
    for (const channel of group.channels) {
      const groups = this.#byChannel.get(channel) as Set<Group>
      groups.delete(group)
      if (groups.size === 0) this.#byChannel.delete(channel)
    }
  }

  /**
   * Writes a tick's frames to their subscribers: one frame goes as it is;
   * several are joined once per group, so each connection gets one write.
   */
  broadcast (frames: readonly OutgoingFrame[]): void {
    if (frames.length === 1) {
      const { channel, frame } = frames[0] as OutgoingFrame
      const groups = this.#byChannel.get(channel)
      if (groups === undefined) return
      for (const group of groups) {
        for (const connection of group.connections) connection.write(frame)
      }
      return
    }
    const groups = new Set<Group>()
    for (const { channel } of frames) {
      const subscribed = this.#byChannel.get(channel)
      if (subscribed !== undefined) for (const group of subscribed) groups.add(group)
    }
    for (const group of groups) {
      const counts: number[] = []
      const joined = joinFrames(frames, group.channels, counts)
      for (const connection of group.connections) {
        for (let i = 0; i < joined.length; i++) connection.write(joined[i] as Buffer, counts[i])
      }
    }
  }

  /** Ends every open connection, subscribed or not, each after its own last frame, and stops the heartbeat. */
  closeAll (lastFrame: () => Buffer): void {
    clearInterval(this.#heartbeat)
    this.#heartbeat = undefined
    for (const connection of [...this.#open]) connection.end(lastFrame())
  }

  readonly #beat = (): void => {
    for (const connection of this.#open) connection.heartbeat(HEARTBEAT)
  }
}

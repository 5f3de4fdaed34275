import { Connection, type CloseReason } from './connection.js'
import { encodeComment } from './wire/encoder.js'

const HEARTBEAT = encodeComment()

/**
 * The most bytes one coalesced write carries. A tick's events are joined into
 * writes of at most this size, so a burst never lands on a client as one
 * huge buffer that would count it as slow.
 */
export const MAX_JOINED_BYTES = 16 * 1024

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

/**
 * The open connections, grouped by the set of channels they subscribe to and
 * indexed by channel. A broadcast encodes nothing: it writes bytes already
 * encoded, the same Buffer to every connection of a group, once per
 * connection per tick. One shared timer sends heartbeats, so an idle
 * connection costs no timer of its own.
 */
export class Hub {
  readonly #groups = new Map<string, Group>()
  readonly #byChannel = new Map<string, Set<Group>>()
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
    // One set for all the connections of a group, not one each.
    connection.channels = group.channels
    group.connections.add(connection)
  }

  /** The `onClose` callback to give each connection: unsubscribes it at once. */
  readonly remove = (connection: Connection, reason: CloseReason): void => {
    if (!this.#all.delete(connection)) return
    if (reason === 'slow') this.slowDisconnects++
    const key = groupKey(connection.channels)
    // Every connection in #all was added, so its group exists.
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

  /** Ends every connection, each after its own last frame, and stops the heartbeat. */
  closeAll (lastFrame: () => Buffer): void {
    clearInterval(this.#heartbeat)
    this.#heartbeat = undefined
    for (const connection of [...this.#all]) connection.end(lastFrame())
  }

  readonly #beat = (): void => {
    for (const connection of this.#all) {
      if (!connection.wroteSinceHeartbeat) connection.write(HEARTBEAT, 0)
      connection.wroteSinceHeartbeat = false
    }
  }
}

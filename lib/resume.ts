import type { Connection } from './connection.js'
import type { Engine } from './engine/engine.js'
import type { HistoryEntry } from './history.js'
import { groupKey, resetFrame, type Hub, type JoinedReplay, type ResetFrame } from './hub.js'
import { compareEventIds, formatEventId, parseEventId, type EventId } from './wire/event-id.js'

/**
 * Where a stream that resumes from a `Last-Event-ID` stands until it goes
 * live: asking the engine for what history no longer holds, or waiting for
 * this instance to deliver the id it came with (it was seen first on a
 * faster instance). A fresh stream, or one history can answer at once, goes
 * live without passing through either.
 */
export type ResumeState =
  | { readonly phase: 'asking' }
  | { readonly phase: 'waiting', readonly lastId: EventId }

/**
 * Brings a resuming client up to date: the events it missed, joined in one
 * write, or a `reset` when they cannot be known; then it subscribes it.
 * From history this happens in one synchronous step, so no event can fall
 * between replay and live.
 */
export class Resume {
  readonly #hub: Hub
  readonly #engine: Engine
  readonly #states = new Map<Connection, ResumeState>()
  /**
   * Joined replays by resume point and channels, shared by the clients of a
   * reconnect storm; kept until the next tick's events are written or the
   * current turn of the event loop ends, whichever comes first.
   */
  readonly #replays = new Map<string, JoinedReplay>()

  constructor (hub: Hub, engine: Engine) {
    this.#hub = hub
    this.#engine = engine
  }

  /** The state of a stream not yet live; undefined for one that is live or ended. */
  stateOf (connection: Connection): ResumeState | undefined {
    return this.#states.get(connection)
  }

  /** Resumes `connection` after `lastEventId`, as the client sent it. */
  start (connection: Connection, lastEventId: string): void {
    const lastId = parseEventId(lastEventId)
    const history = this.#engine.history
    const missed = lastId === null ? null : history.since(lastId, connection.channels)
    const until = history.newest
    // Only a well-formed id older than history is worth asking about.
    const older = lastId === null || missed !== null ? null : this.#engine.replayOlder(lastEventId, until, connection.channels)
    if (older === null) return this.#fromHistory(connection, lastEventId, missed)
    this.#states.set(connection, { phase: 'asking' })
    // The engine answers null for an id it cannot serve, rather than rejecting.
    older.then((entries) => { this.#answered(connection, entries, until, lastId as EventId) })
  }

  /** After a tick's events were recorded and written: drops the shared replays and releases the streams history now covers. */
  afterTick (): void {
    this.#forgetReplays()
    const newest = this.#engine.history.newest
    for (const [connection, state] of this.#states) {
      if (state.phase !== 'waiting' || compareEventIds(state.lastId, newest) > 0) continue
      this.#states.delete(connection)
      this.#fromHistory(connection, formatEventId(state.lastId), this.#engine.history.since(state.lastId, connection.channels))
    }
  }

  /**
   * Events were lost from the log: every stream still asking or waiting gets
   * `reset` (a `reset` event) instead of a replay, and goes live. Answers how many.
   */
  lost (reset: ResetFrame): number {
    const connections = [...this.#states.keys()]
    this.#states.clear()
    this.#forgetReplays()
    for (const connection of connections) {
      this.#hub.reset(connection, reset)
      this.#hub.subscribe(connection, true)
    }
    return connections.length
  }

  /** A stream that ended: nothing more is done for it. */
  forget (connection: Connection): void {
    this.#states.delete(connection)
  }

  /**
   * The engine answered for a client history could not serve: its answer,
   * then what history holds since `until`; then live. A client ahead of this
   * instance waits until this instance has caught up with it.
   */
  #answered (connection: Connection, older: HistoryEntry[] | null, until: EventId, lastId: EventId): void {
    // Ended (by the client or by close()) while the engine was asked.
    if (!this.#states.has(connection)) return
    const history = this.#engine.history
    if (older !== null && compareEventIds(lastId, history.newest) > 0) {
      this.#states.set(connection, { phase: 'waiting', lastId })
      return
    }
    this.#states.delete(connection)
    const newer = older === null ? null : history.since(until, connection.channels)
    if (older === null || newer === null) return this.#finish(connection, null)
    const frames = [...older, ...newer].map((entry) => entry.frame)
    this.#finish(connection, { buffer: Buffer.concat(frames), count: frames.length })
  }

  /** Writes what history holds after `lastId` (found by `since`), or a `reset` when it holds no answer; then live. */
  #fromHistory (connection: Connection, lastId: string, missed: readonly HistoryEntry[] | null): void {
    this.#finish(connection, missed === null ? null : this.#joined(lastId, connection.channels, missed))
  }

  /** Writes what the client missed, or a `reset` when that is unknown, and subscribes it. */
  #finish (connection: Connection, missed: JoinedReplay | null): void {
    if (missed === null) {
      this.#hub.reset(connection, resetFrame(formatEventId(this.#engine.history.newest), 'unknown-last-event-id'))
    } else {
      this.#hub.replay(connection, missed)
    }
    this.#hub.subscribe(connection, true, missed?.count ?? 0)
  }

  /**
   * The frames a client resuming after `lastId` missed, joined once: until
   * the cache is dropped, every client resuming from the same id on the same
   * channels shares the buffer.
   */
  #joined (lastId: string, channels: ReadonlySet<string>, missed: readonly HistoryEntry[]): JoinedReplay {
    const key = `${lastId} ${groupKey(channels)}`
    let replay = this.#replays.get(key)
    if (replay === undefined) {
      replay = { buffer: Buffer.concat(missed.map((entry) => entry.frame)), count: missed.length }
      if (this.#replays.size === 0) setImmediate(this.#forgetReplays)
      this.#replays.set(key, replay)
    }
    return replay
  }

  readonly #forgetReplays = (): void => {
    this.#replays.clear()
  }
}

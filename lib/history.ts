import { compareEventIds, type EventId } from './wire/event-id.js'

/** One published event as history keeps it: its id, channel, name, data text and encoded bytes. */
export interface HistoryEntry {
  id: EventId
  /** The id as written on the wire. */
  idText: string
  channel: string
  /** The event name; undefined for the client's `message`. */
  event: string | undefined
  /** The `data:` text. */
  data: string
  frame: Buffer
}

/**
 * The bounded replay log: the last `capacity` events in publish order, so a
 * client that reconnects with `Last-Event-ID` gets exactly what it missed.
 */
export class EventHistory {
  readonly capacity: number
  #origin: EventId
  readonly #ring: HistoryEntry[] = []
  #start = 0
  /** The newest id no longer held, if any: a client at exactly that id missed only held events. */
  #lastEvicted: EventId | undefined
  #newest: EventId

  /** `origin` is the id that stands for "before the first event". */
  constructor (capacity: number, origin: EventId) {
    this.capacity = capacity
    this.#origin = origin
    this.#newest = origin
  }

  /**
   * Forgets every event and starts again at `origin`, as if just made: after
   * a gap in the log, nothing before it may be replayed as if it joined what
   * comes after.
   */
  restart (origin: EventId): void {
    this.#origin = origin
    this.#newest = origin
    this.#lastEvicted = undefined
    this.#ring.length = 0
    this.#start = 0
  }

  /** How many events are held. */
  get size (): number {
    return this.#ring.length
  }

  /** The id of the newest event published, held or not (the origin before any). */
  get newest (): EventId {
    return this.#newest
  }

  /** Records an event; the oldest one is dropped once `capacity` is reached. */
  append (entry: HistoryEntry): void {
    this.#newest = entry.id
    if (this.capacity === 0) {
      this.#lastEvicted = entry.id
      return
    }
    if (this.#ring.length < this.capacity) {
      this.#ring.push(entry)
      return
    }
    this.#lastEvicted = this.#at(0).id
    this.#ring[this.#start] = entry
    this.#start = (this.#start + 1) % this.capacity
  }

  /**
   * The events after `lastId`, oldest first, restricted to `channels`; an
   * empty list when nothing was missed, and `null` when `lastId` is not an id
   * this history can answer for (unknown, from another process, or older than
   * what it holds), so the client must be told it may have missed events.
   */
  since (lastId: EventId, channels: ReadonlySet<string>): HistoryEntry[] | null {
    if (compareEventIds(lastId, this.#newest) === 0) return []
    let from: number
    // Everything after the last evicted id (or after the origin, if none was) is still held.
    const beforeHeld = this.#lastEvicted ?? this.#origin
    if (compareEventIds(lastId, beforeHeld) === 0) {
      from = 0
    } else {
      const at = this.#indexOf(lastId)
      if (at < 0) return null
      from = at + 1
    }
    const missed: HistoryEntry[] = []
    for (let i = from; i < this.#ring.length; i++) {
      const entry = this.#at(i)
      if (channels.has(entry.channel)) missed.push(entry)
    }
    return missed
  }

  /** The entry at logical position `i` (0 = oldest). */
  #at (i: number): HistoryEntry {
    return this.#ring[(this.#start + i) % this.#ring.length] as HistoryEntry
  }

  /** Binary search by id (entries are in increasing id order); -1 when absent. */
  #indexOf (id: EventId): number {
    let low = 0
    let high = this.#ring.length - 1
    while (low <= high) {
      const mid = (low + high) >>> 1
      const order = compareEventIds(this.#at(mid).id, id)
      if (order === 0) return mid
      if (order < 0) low = mid + 1
      else high = mid - 1
    }
    return -1
  }
}

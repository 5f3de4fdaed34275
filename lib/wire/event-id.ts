/**
 * Event ids: `<milliseconds>-<sequence>`, strictly increasing within a process
 * and comparable across restarts (the same form as Redis stream ids), so an id
 * a client kept from an earlier process is recognised as unknown.
 */

/** A parsed event id. */
export interface EventId {
  ms: number
  seq: number
}

// Bounded on purpose: a client sends this back as Last-Event-ID.
const EVENT_ID = /^(\d{1,15})-(\d{1,9})$/

/** Parses an id written by `formatEventId`; anything else (too long, NUL, not an id) is `null`. */
export function parseEventId (text: unknown): EventId | null {
  if (typeof text !== 'string' || text.length > 32) return null
  const match = EVENT_ID.exec(text)
  if (match === null) return null
  return { ms: Number(match[1]), seq: Number(match[2]) }
}

/** The wire form of an id. */
export function formatEventId (id: EventId): string {
  return `${id.ms}-${id.seq}`
}

/** Negative, zero or positive as `a` is before, equal to or after `b`. */
export function compareEventIds (a: EventId, b: EventId): number {
  return a.ms !== b.ms ? a.ms - b.ms : a.seq - b.seq
}

/**
 * Hands out increasing ids. The clock's `origin` (`<start ms>-0`) is never an
 * event's id: it names "before the first event" of this process.
 */
export class EventIdClock {
  readonly origin: EventId
  readonly #now: () => number
  #last: EventId

  constructor (now: () => number = Date.now) {
    this.#now = now
    this.origin = { ms: now(), seq: 0 }
    this.#last = this.origin
  }

  /** The next id: later than every id handed out before, even if the wall clock steps back. */
  next (): EventId {
    const ms = Math.max(this.#now(), this.#last.ms)
    const id = ms === this.#last.ms ? { ms, seq: this.#last.seq + 1 } : { ms, seq: 0 }
    this.#last = id
    return id
  }
}

import { EventHistory, type HistoryEntry } from '../history.js'
import { IDEMPOTENCY_WINDOW_MS, type OutgoingMessage } from '../message.js'
import { RecentKeys } from '../recent-keys.js'
import { encodeEvent } from '../wire/encoder.js'
import { EventIdClock, formatEventId } from '../wire/event-id.js'
import type { Engine } from './engine.js'

/**
 * The in-memory engine: ids from this process's clock, events kept in its
 * history only. An event is delivered the moment it is appended, so it goes
 * out at the end of the current turn of the event loop with the others published in it.
 */
export class LocalEngine implements Engine {
  readonly #clock = new EventIdClock()
  readonly history: EventHistory
  readonly #deliver: (entry: HistoryEntry) => void
  /** The idempotency keys of the last `IDEMPOTENCY_WINDOW_MS`, with the ids they were stored under. */
  readonly #keys = new RecentKeys(IDEMPOTENCY_WINDOW_MS)
  #published = 0

  constructor (historySize: number, deliver: (entry: HistoryEntry) => void) {
    this.history = new EventHistory(historySize, this.#clock.origin)
    this.#deliver = deliver
  }

  get published (): number {
    return this.#published
  }

  /** Never behind: there is no shared log. */
  readonly lag = undefined

  /** Always: there is no other instance. */
  get mayGenerate (): boolean {
    return true
  }

  async start (): Promise<void> {}

  append ({ event, channel, text, idempotencyKey }: OutgoingMessage): Promise<string> {
    if (idempotencyKey !== undefined) {
      const first = this.#keys.find(idempotencyKey)
      if (first !== undefined) return Promise.resolve(first)
    }
    const id = this.#clock.next()
    const idText = formatEventId(id)
    if (idempotencyKey !== undefined) this.#keys.remember(idempotencyKey, idText)
    this.#published++
    this.#deliver({ id, idText, channel, event, data: text, frame: encodeEvent({ id: idText, event, data: text }) })
    return Promise.resolve(idText)
  }

  /** Nothing is kept beyond history: the client gets a reset at once. */
  replayOlder (): null {
    return null
  }

  async close (): Promise<void> {}
}

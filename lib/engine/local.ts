import { EventHistory, type HistoryEntry } from '../history.js'
import type { OutgoingMessage } from '../message.js'
import { encodeEvent } from '../wire/encoder.js'
import { EventIdClock, formatEventId } from '../wire/event-id.js'
import type { Engine } from './engine.js'

/**
 * The in-memory engine: ids from this process's clock, events kept in its
 * history only. An event is delivered the moment it is appended, so it goes
 * out at the end of the current tick with the others published in it.
 */
export class LocalEngine implements Engine {
  readonly #clock = new EventIdClock()
  readonly history: EventHistory
  readonly #deliver: (entry: HistoryEntry) => void
  #published = 0

  constructor (historySize: number, deliver: (entry: HistoryEntry) => void) {
    this.history = new EventHistory(historySize, this.#clock.origin)
    this.#deliver = deliver
  }

  get published (): number {
    return this.#published
  }

  /** Always: there is no other instance. */
  get mayGenerate (): boolean {
    return true
  }

  async start (): Promise<void> {}

  append ({ event, channel, text }: OutgoingMessage): Promise<string> {
    const id = this.#clock.next()
    const idText = formatEventId(id)
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

import type { AdapterEvent, AdapterLogger, LogGap, PushStreamAdapter } from '../adapter.js'
import { FST_PUSH_STREAM_ADAPTER_UNAVAILABLE, FST_PUSH_STREAM_INVALID_OPTION, describe, errorMessage } from '../errors.js'
import { EventHistory, type HistoryEntry } from '../history.js'
import { LeaseKeeper } from '../lease.js'
import { IDEMPOTENCY_WINDOW_MS, type OutgoingMessage } from '../message.js'
import { encodeEvent } from '../wire/encoder.js'
import { compareEventIds, formatEventId, parseEventId, type EventId } from '../wire/event-id.js'
import { isValidChannel } from '../wire/protocol.js'
import type { Engine, EngineLag, EngineOutput } from './engine.js'

/** The name of the lease that decides which instance runs the message source. */
const SOURCE_LEASE = 'generator'

/**
 * The engine shared by every instance through an adapter (Redis): the
 * adapter's log gives the ids and is the long history; this instance tails
 * it and delivers each event once, in log order, including its own.
 */
export class SharedEngine implements Engine {
  readonly #adapter: PushStreamAdapter
  readonly #log: AdapterLogger
  readonly #historySize: number
  readonly #output: EngineOutput
  readonly #lease: LeaseKeeper
  /** Made again at start, once the log's end (its starting point) is known. */
  #history: EventHistory
  /** The newest id taken from the log: anything not after it was delivered already. */
  #lastDelivered: EventId = { ms: 0, seq: 0 }
  #published = 0

  constructor (adapter: PushStreamAdapter, historySize: number, output: EngineOutput, log: AdapterLogger) {
    this.#adapter = adapter
    this.#log = log
    this.#historySize = historySize
    this.#output = output
    this.#history = new EventHistory(historySize, this.#lastDelivered)
    this.#lease = new LeaseKeeper(adapter, SOURCE_LEASE, (err) => {
      log.warn({ err }, 'fastify-push-stream: could not take or renew the generator lease')
    })
  }

  get history (): EventHistory {
    return this.#history
  }

  get published (): number {
    return this.#published
  }

  get lag (): EngineLag | undefined {
    const seen = this.#adapter.lag?.()
    const newest = parseEventId(seen?.newestId)
    if (seen === undefined || newest === null) return undefined
    const delivered = this.#lastDelivered
    return {
      deliveredId: formatEventId(delivered),
      newestId: seen.newestId,
      behind: seen.behind,
      ms: Math.max(0, newest.ms - delivered.ms)
    }
  }

  /** Only the instance that holds the lease runs the source. */
  get mayGenerate (): boolean {
    return this.#lease.held
  }

  /** Starts the adapter (its log's end becomes the history's starting point), then the lease when this instance may run the source. */
  async start (runsSource: boolean): Promise<void> {
    const end = await this.#adapter.start({ deliver: this.#take, lost: this.#lost, log: this.#log })
    const origin = parseEventId(end)
    if (origin === null) throw new FST_PUSH_STREAM_INVALID_OPTION('adapter', `a start() that resolved with ${describe(end)}`, 'one that resolves with the id of the log\'s newest event')
    this.#history = new EventHistory(this.#historySize, origin)
    this.#lastDelivered = origin
    if (runsSource) await this.#lease.start()
  }

  /** Stores the event in the log; it reaches subscribers, here too, when the adapter delivers it back. */
  async append ({ event, channel, text, idempotencyKey }: OutgoingMessage, generated = false): Promise<string> {
    let id: string
    try {
      // What the generator makes is stored only while this instance holds its lease, checked by the adapter as it stores.
      const shape = generated
        ? { lease: SOURCE_LEASE }
        : idempotencyKey === undefined ? undefined : { idempotencyKey, idempotencyWindow: IDEMPOTENCY_WINDOW_MS }
      id = await this.#adapter.publish({ channel, event, data: text }, shape)
    } catch (error) {
      if ((error as { code?: unknown }).code === 'FST_PUSH_STREAM_LEASE_LOST') {
        this.#lease.lost()
        throw error
      }
      throw unavailable(error)
    }
    this.#published++
    return id
  }

  /** Asks the log for what history no longer holds; an engine that fails to answer counts as not knowing (a reset). */
  replayOlder (lastId: string, until: EventId, channels: ReadonlySet<string>): Promise<HistoryEntry[] | null> {
    return this.#adapter.replay(lastId, formatEventId(until), channels).then(
      (older) => older === null ? null : this.#entriesOf(older),
      (err: unknown) => {
        this.#log.warn({ err }, 'fastify-push-stream: the adapter could not replay; the client gets a reset')
        return null
      }
    )
  }

  async close (): Promise<void> {
    this.#lease.stop()
    await this.#adapter.close()
  }

  /** The adapter's `deliver`: events from the shared log, in log order. */
  readonly #take = (events: readonly AdapterEvent[]): void => {
    for (const event of events) {
      const entry = this.#entryOf(event)
      // An adapter that hands over an event twice (or one from before start) cannot make a client see it twice.
      if (entry === undefined || compareEventIds(entry.id, this.#lastDelivered) <= 0) continue
      this.#lastDelivered = entry.id
      this.#output.deliver(entry)
    }
  }

  /** The adapter's `lost`: what follows is read from after the gap's head, even if the log went back. */
  readonly #lost = (gap: LogGap): void => {
    const head = parseEventId(gap.head)
    if (head === null) {
      this.#log.error({ gap }, 'fastify-push-stream: the adapter reported a gap with a head that is not an event id; ignored')
      return
    }
    this.#lastDelivered = head
    this.#output.lost(head, gap)
  }

  #entriesOf (events: readonly AdapterEvent[]): HistoryEntry[] {
    const entries: HistoryEntry[] = []
    for (const event of events) {
      const entry = this.#entryOf(event)
      if (entry !== undefined) entries.push(entry)
    }
    return entries
  }

  /** An event of the shared log, checked and encoded; undefined (and logged) for one this plugin could not have written. */
  #entryOf ({ id: idText, channel, event, data }: AdapterEvent): HistoryEntry | undefined {
    try {
      const id = parseEventId(idText)
      if (id === null || !isValidChannel(channel)) throw new Error(`not an event of this plugin: id ${describe(idText)}, channel ${describe(channel)}`)
      return { id, idText, channel, event, data, frame: encodeEvent({ id: idText, event, data }) }
    } catch (err) {
      // Something else wrote to the log: skipped, never sent half-checked.
      this.#log.warn({ err }, 'fastify-push-stream: skipped an entry of the shared log')
      return undefined
    }
  }
}

/** The errors an adapter names itself: passed on as they are. */
const NAMED_BY_ADAPTERS: ReadonlySet<unknown> = new Set(['FST_PUSH_STREAM_ADAPTER_UNAVAILABLE', 'FST_PUSH_STREAM_PUBLISH_UNCONFIRMED'])

/** The adapter's failure as `FST_PUSH_STREAM_ADAPTER_UNAVAILABLE`, unless it named it: the one place an engine's error is named, never twice. */
function unavailable (error: unknown): unknown {
  if (NAMED_BY_ADAPTERS.has((error as { code?: unknown }).code)) return error
  return new FST_PUSH_STREAM_ADAPTER_UNAVAILABLE(errorMessage(error), { cause: error })
}

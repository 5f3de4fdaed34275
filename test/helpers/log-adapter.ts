import type { AdapterContext, AdapterEvent, AdapterMessage, AdapterPresence, LogGap, PublishFence, PushStreamAdapter } from '../../lib/adapter.js'

/**
 * A shared log in this process that several app instances can use through
 * the adapter interface, the way they would use Redis: it exercises the
 * plugin's adapter path on a machine without Redis. Ids are `<ms>-<seq>`
 * with a fixed `ms`, delivery is asynchronous (as from a network), and the
 * log keeps its last `capacity` events.
 */
export class SharedLog {
  readonly events: AdapterEvent[] = []
  readonly leases = new Map<string, { holder: object, until: number }>()
  readonly #readers = new Set<AdapterContext>()
  readonly #capacity: number
  /** The idempotency keys used, with the ids of the events they stored. */
  readonly #keys = new Map<string, string>()
  #seq = 0
  #trimmed = false
  /** While set, publish, replay and lease reject with it (the engine is unreachable). */
  failure: Error | undefined
  /** Each instance's presence counts, as its adapter last reported them. */
  readonly presence = new Map<object, ReadonlyMap<string, number>>()
  /** While set, replay waits for it (a slow engine). */
  hold: Promise<void> | undefined

  constructor (capacity = 10_000) {
    this.#capacity = capacity
  }

  /** A new adapter on this log (one per app instance); with `presence`, it keeps presence counts too, reported every `presence` ms. */
  adapter (options: { presence?: number } = {}): PushStreamAdapter & { readonly closed: boolean, holdDeliveries: () => void, catchUp: () => Promise<void>, lose: (gap: LogGap) => void } {
    const log = this
    const self = {}
    let context: AdapterContext | undefined
    let closed = false
    // While lagging, this instance's deliveries wait, as behind a slow link.
    let lagged: AdapterEvent[] | undefined
    const check = (): void => {
      if (log.failure !== undefined) throw log.failure
    }
    const presence: AdapterPresence | undefined = options.presence === undefined
      ? undefined
      : {
          reportEvery: options.presence,
          async report (counts) {
            check()
            log.presence.set(self, new Map(counts))
          },
          async count (channel) {
            check()
            let total = 0
            for (const counts of log.presence.values()) total += counts.get(channel) ?? 0
            return total
          },
          async leave () {
            check()
            log.presence.delete(self)
          }
        }
    return {
      presence,
      get closed () { return closed },
      holdDeliveries () { lagged = [] },
      /** Reports a gap to this instance, at once, as an adapter that found one would. */
      lose (gap: LogGap) { context?.lost(gap) },
      /** Delivers what waited, one event per turn of the event loop (so one per flush). */
      async catchUp () {
        const events = lagged ?? []
        lagged = undefined
        for (const event of events) {
          context?.deliver([event])
          await new Promise((resolve) => setImmediate(resolve))
        }
      },
      async start (ctx) {
        context = {
          log: ctx.log,
          lost: ctx.lost,
          deliver: (events) => {
            if (lagged === undefined) ctx.deliver(events)
            else lagged.push(...events)
          }
        }
        log.#readers.add(context)
        return log.events.at(-1)?.id ?? '0-0'
      },
      async publish (message: AdapterMessage, shape: PublishFence = {}) {
        check()
        // An idempotency key already used answers with its first id (this log keeps keys for good).
        const first = shape.idempotencyKey === undefined ? undefined : log.#keys.get(shape.idempotencyKey)
        if (first !== undefined) return first
        const event = { id: `1-${++log.#seq}`, ...message }
        if (shape.idempotencyKey !== undefined) log.#keys.set(shape.idempotencyKey, event.id)
        log.events.push(event)
        if (log.events.length > log.#capacity) {
          log.events.shift()
          log.#trimmed = true
        }
        setImmediate(() => { for (const reader of log.#readers) reader.deliver([event]) })
        return event.id
      },
      async replay (lastId, until, channels) {
        await log.hold
        check()
        const at = log.events.findIndex((event) => event.id === lastId)
        if (at < 0 && !(lastId === '0-0' && !log.#trimmed)) return null
        const end = log.events.findIndex((event) => event.id === until)
        return log.events.slice(at + 1, end + 1).filter((event) => channels.has(event.channel))
      },
      async lease (name, ttlMs) {
        check()
        const held = log.leases.get(name)
        if (held !== undefined && held.holder !== self && held.until > Date.now()) return false
        log.leases.set(name, { holder: self, until: Date.now() + ttlMs })
        return true
      },
      async close () {
        closed = true
        if (context !== undefined) log.#readers.delete(context)
        for (const [name, held] of log.leases) if (held.holder === self) log.leases.delete(name)
      }
    }
  }

  /** Writes an entry as another program might, bypassing the plugin's checks. */
  inject (event: AdapterEvent): void {
    this.events.push(event)
    for (const reader of this.#readers) reader.deliver([event])
  }
}

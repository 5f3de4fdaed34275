/**
 * Presence: how many streams are on a channel. This instance's counts are
 * the hub's, kept as streams subscribe and end; with an adapter that keeps
 * presence, they are reported to it every `reportEvery` ms and a count is
 * asked of it, summed over every instance.
 */
import type { AdapterLogger, AdapterPresence } from './adapter.js'
import { FST_PUSH_STREAM_ADAPTER_UNAVAILABLE, errorMessage } from './errors.js'
import type { Hub } from './hub.js'

/** This instance's presence, and the adapter's when there is one. */
export class Presence {
  readonly #hub: Hub
  readonly #shared: AdapterPresence | undefined
  readonly #log: AdapterLogger
  #timer: NodeJS.Timeout | undefined
  /** Whether the last report failed: a failure is logged once until one succeeds. */
  #failing = false

  constructor (hub: Hub, shared: AdapterPresence | undefined, log: AdapterLogger) {
    this.#hub = hub
    this.#shared = shared
    this.#log = log
  }

  /** Starts reporting to the adapter, at once and then every `reportEvery` ms. */
  start (): void {
    const shared = this.#shared
    if (shared === undefined) return
    this.#report()
    this.#timer = setInterval(this.#report, shared.reportEvery)
    this.#timer.unref()
  }

  /** The streams on `channel`: on this instance, or through the adapter on every instance. */
  count (channel: string): number | Promise<number> {
    const shared = this.#shared
    if (shared === undefined) return this.#hub.subscribers(channel)
    return shared.count(channel).catch((error: unknown) => {
      throw new FST_PUSH_STREAM_ADAPTER_UNAVAILABLE(`presence from the adapter failed: ${errorMessage(error)}`, { cause: error })
    })
  }

  /** Stops reporting and takes this instance's counts out. */
  async close (): Promise<void> {
    clearInterval(this.#timer)
    await this.#shared?.leave().catch(this.#failed)
  }

  readonly #report = (): void => {
    (this.#shared as AdapterPresence).report(this.#hub.presence).then(() => { this.#failing = false }, this.#failed)
  }

  readonly #failed = (err: unknown): void => {
    if (this.#failing) return
    this.#failing = true
    this.#log.warn({ err }, 'fastify-push-stream: could not report presence to the adapter; counts from other instances may leave this one out')
  }
}

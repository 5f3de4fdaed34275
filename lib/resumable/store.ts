import { Recording, type Ending } from './recording.js'

/** What a request for a key is to do: start the producer, follow one running or kept, or learn the key is unknown. */
export type Claim = 'produce' | 'follow' | 'unknown'

/** What became of an append (or a renewal): recorded, refused because the stream was cancelled, or refused because this instance no longer holds the key. */
export type Outcome = 'ok' | 'cancelled' | 'lost'

/**
 * Where resumable streams are recorded: this process's memory, or an
 * adapter's engine shared by every instance (`PushStreamAdapter.recordings`).
 * One producer per key: `claim` decides it atomically, and an engine shared
 * between instances fences `append` by it.
 */
export interface RecordingStore {
  /** Decides create-or-follow for `key`; with `mayCreate` false (the request sent a `Last-Event-ID`), a key not running nor kept is `unknown`. */
  claim: (key: string, mayCreate: boolean) => Promise<Claim>
  /** Records event `id` (1, 2, 3…) of `key`, already encoded with that id. */
  append: (key: string, id: number, frame: Buffer) => Promise<Outcome>
  /** Keeps this instance's claim on `key` alive; says when the stream was cancelled elsewhere, or the claim lost. Only for a store shared between instances. */
  renew?: (key: string) => Promise<Outcome>
  /** Records how the stream ended, keeps it for `ttl`, and lets go of the claim. */
  finish: (key: string, ending: Ending) => Promise<void>
  /** Asks the producer of `key`, wherever it runs, to stop; true when one was running. */
  cancel: (key: string) => Promise<boolean>
  /**
   * The frames a follower reads after `lastEventId` (from the start when it
   * is not one of the stream's ids), then live ones, then how it ended.
   * Ends early, returning nothing, when `signal` aborts.
   */
  follow: (key: string, lastEventId: string | undefined, signal: AbortSignal) => AsyncGenerator<Buffer, Ending | undefined>
  /** Forgets what it keeps. */
  close: () => Promise<void>
}

/** The position a follower resumes after: the id it sent, when it is one of the stream's (1 to `size`); else 0, the start. */
export function positionOf (lastEventId: string | undefined, size: number): number {
  if (lastEventId === undefined || !/^\d{1,15}$/.test(lastEventId)) return 0
  const position = Number(lastEventId)
  return position <= size ? position : 0
}

/** Resumable streams recorded in this process's memory, each kept `ttl` ms after it ended. */
export class MemoryRecordings implements RecordingStore {
  readonly #ttl: number
  readonly #recordings = new Map<string, Recording>()
  readonly #expiries = new Set<NodeJS.Timeout>()

  constructor (ttl: number) {
    this.#ttl = ttl
  }

  async claim (key: string, mayCreate: boolean): Promise<Claim> {
    if (this.#recordings.has(key)) return 'follow'
    if (!mayCreate) return 'unknown'
    this.#recordings.set(key, new Recording(key))
    return 'produce'
  }

  async append (key: string, _id: number, frame: Buffer): Promise<Outcome> {
    this.#recordings.get(key)?.append(frame)
    return 'ok'
  }

  async finish (key: string, ending: Ending): Promise<void> {
    // Claimed by its producer, and kept until `ttl` after this.
    ;(this.#recordings.get(key) as Recording).finish(ending)
    const expiry = setTimeout(() => {
      this.#expiries.delete(expiry)
      this.#recordings.delete(key)
    }, this.#ttl)
    expiry.unref()
    this.#expiries.add(expiry)
  }

  /** Nothing runs elsewhere: the producers of this process are cancelled by the caller. */
  async cancel (): Promise<boolean> {
    return false
  }

  async * follow (key: string, lastEventId: string | undefined, signal: AbortSignal): AsyncGenerator<Buffer, Ending | undefined> {
    // Claimed in the same turn of the event loop: it cannot have expired since.
    const recording = this.#recordings.get(key) as Recording
    return yield * recording.follow(positionOf(lastEventId, recording.size), signal)
  }

  async close (): Promise<void> {
    for (const expiry of this.#expiries) clearTimeout(expiry)
    this.#expiries.clear()
    this.#recordings.clear()
  }
}

import type { AdapterLogger, LogGap } from '../adapter.js'
import type { EventHistory, HistoryEntry } from '../history.js'
import type { OutgoingMessage } from '../message.js'
import type { ResolvedOptions } from '../options.js'
import type { EventId } from '../wire/event-id.js'
import { LocalEngine } from './local.js'
import { SharedEngine } from './shared.js'

/**
 * Where events get their ids and are kept: this process alone (the default),
 * or a log shared by every instance through an adapter. Exactly one engine
 * runs per plugin instance, chosen once by `createEngine`; nothing else asks
 * whether there is an adapter.
 */
export interface Engine {
  /** The recent events, as this instance delivered them: what replay is served from first. */
  readonly history: EventHistory
  /** Events this instance published (stored, with an adapter). */
  readonly published: number
  /** With an adapter that can tell, how far this instance's reading is behind the log. */
  readonly lag: EngineLag | undefined
  /** False while another instance runs the message source (it holds the lease). */
  readonly mayGenerate: boolean
  /** Connects, and takes part in the source's lease when `runsSource`. */
  start: (runsSource: boolean) => Promise<void>
  /**
   * Gives `message` its id and stores it; resolves with the id. The event
   * reaches this instance's subscribers through the engine's `deliver`, not
   * through this call. A `generated` message (the source loop's, while it
   * runs by its timer) is stored only while this instance holds the
   * generator's lease; else the promise rejects with `FST_PUSH_STREAM_LEASE_LOST`.
   */
  append: (message: OutgoingMessage, generated?: boolean) => Promise<string>
  /**
   * The events on `channels` after `lastId` up to `until` that history no
   * longer holds: `null` (at once) when there is nowhere else to look, else a
   * promise of them, or of `null` when the id is unknown there too.
   */
  replayOlder: (lastId: string, until: EventId, channels: ReadonlySet<string>) => Promise<HistoryEntry[] | null> | null
  /** Stops taking part and lets go of what the engine holds. */
  close: () => Promise<void>
}

/** How far an instance is behind the shared log: the newest id delivered here and the log's newest, the entries between, and their distance in time. */
export interface EngineLag {
  deliveredId: string
  newestId: string
  /** Entries of the log not yet delivered here. */
  behind: number
  /** The newest id's time less the delivered one's, in milliseconds (0 when caught up). */
  ms: number
}

/** Where an engine hands what it reads from its log: each event once, in order, encoded; and a gap, at the point in that order where it was found. */
export interface EngineOutput {
  deliver: (entry: HistoryEntry) => void
  /** Events after the last one delivered are gone from the log (never with the in-memory engine); the next delivered come after `head`. */
  lost: (head: EventId, gap: LogGap) => void
}

/** The engine the options ask for. */
export function createEngine (options: ResolvedOptions, output: EngineOutput, log: AdapterLogger): Engine {
  return options.adapter === undefined
    ? new LocalEngine(options.history, output.deliver)
    : new SharedEngine(options.adapter, options.history, output, log)
}

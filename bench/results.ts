import { availableParallelism, cpus, release, totalmem } from 'node:os'
import type { BroadcastFigures, Settings, StallFigures, SustainedFigures, VariantName } from './measure.js'
import type { PerRequestFigures, PerRequestSettings, PerRequestVariant } from './per-request.js'

/** Everything one run measured, by variant (and by N for the broadcast figures). */
export interface RunResult {
  broadcast: Partial<Record<VariantName, Record<number, BroadcastFigures>>>
  /** The sustained scenario, by variant and N. */
  sustained: Partial<Record<VariantName, Record<number, SustainedFigures>>>
  idleBytes: Partial<Record<VariantName, number>>
  stall: Partial<Record<VariantName, StallFigures>>
}

/** A whole benchmark: its setting, every run and what went wrong. */
export interface Results {
  machine: string
  command: string
  date: string
  minutes: number
  variants: VariantName[]
  clientCounts: number[]
  idleClients: number
  settings: Settings
  runs: RunResult[]
  skipped: string[]
  failures: string[]
}

/** CPU model, cores, memory, kernel, Node version and whether processes were pinned. */
export function describeMachine (pinned: boolean): string {
  const model = cpus()[0]?.model.trim() ?? 'unknown CPU'
  const memory = Math.round(totalmem() / 2 ** 30)
  const pinning = pinned ? 'server pinned to core 0 and load client to core 1 with `taskset`' : 'processes not pinned (no `taskset` or a single core)'
  return `${model}, ${availableParallelism()} cores, ${memory} GiB, Linux ${release()}, Node ${process.version}; ${pinning}`
}

/** The per-request scenario: its setting, every run and what went wrong, apart from the broadcast's. */
export interface PerRequestResults {
  machine: string
  command: string
  date: string
  minutes: number
  variants: PerRequestVariant[]
  settings: PerRequestSettings
  runs: Array<Partial<Record<PerRequestVariant, PerRequestFigures>>>
  failures: string[]
}

/**
 * The adapter's messages as Redis stream entries and back: the fields XADD
 * stores for a message, and the events a batch of entries from XRANGE or
 * XREAD holds, skipping entries the adapter did not write.
 */
import type { AdapterEvent, AdapterMessage } from '../adapter.js'

/** The id before the first entry of any stream: what a fresh client is told when the stream is empty. */
export const START_ID = '0-0'

/** A stream entry as XRANGE and XREAD return it: its id and its fields as name, value, name, value… */
export type StreamEntry = [id: string, fields: string[]]

/** The fields XADD stores for a message: channel, event (only when named) and data. */
export function toFields (message: AdapterMessage): string[] {
  const event = message.event === undefined ? [] : ['event', message.event]
  return ['channel', message.channel, ...event, 'data', message.data]
}

/**
 * The events the entries hold, in order. An entry without a channel or data
 * was not written by this adapter (someone else appended to the key): it is
 * skipped rather than sent to clients as an empty message.
 */
export function toEvents (entries: readonly StreamEntry[]): AdapterEvent[] {
  const events: AdapterEvent[] = []
  for (const [id, fields] of entries) {
    const values = new Map<string, string>()
    for (let i = 0; i + 1 < fields.length; i += 2) values.set(fields[i] as string, fields[i + 1] as string)
    const channel = values.get('channel')
    const data = values.get('data')
    if (channel === undefined || data === undefined) continue
    events.push({ id, channel, event: values.get('event'), data })
  }
  return events
}

/**
 * Replay from the shared stream: the entries after a client's last event id,
 * or null when the stream cannot answer for that id (malformed, trimmed,
 * never issued, in the future), so the client gets a reset. The edge cases
 * are the id before the first entry, and a client ahead of this instance
 * because it came from a quicker one.
 */
import { compareEventIds, parseEventId } from '../wire/event-id.js'
import type { Call } from './connections.js'
import { START_ID, type StreamEntry } from './entries.js'
import { REMOVED } from './scripts.js'

/**
 * The entries of stream `key` after `lastId` up to and including `until`, or
 * null when `lastId` is not one the stream can answer for.
 */
export async function entriesAfter (call: Call, key: string, lastId: string, until: string): Promise<StreamEntry[] | null> {
  // A malformed id never reaches Redis.
  const last = parseEventId(lastId)
  if (last === null) return null
  if (lastId === START_ID) {
    // "Before the first entry" holds only while nothing ever left the stream.
    const entries = await call((client) => client.xrange(key, '-', until))
    return await call((client) => client.eval(REMOVED, 1, key)) === 0 ? entries : null
  }
  const entries = await call((client) => client.xrange(key, lastId, until))
  if (entries[0]?.[0] === lastId) return entries.slice(1)
  const newest = parseEventId(until)
  if (entries.length === 0 && newest !== null && compareEventIds(last, newest) > 0) {
    // A client ahead of this instance's history (it came from a quicker one): valid while the stream holds its id.
    const held = await call((client) => client.xrange(key, lastId, lastId))
    return held.length === 1 ? [] : null
  }
  return null
}

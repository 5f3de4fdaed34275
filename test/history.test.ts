import t from 'tap'
import fc from 'fast-check'
import { EventIdClock, formatEventId, type EventId } from '../lib/wire/event-id.js'
import { EventHistory, type HistoryEntry } from '../lib/history.js'

/** A clock that stands still, so ids differ only in `seq` (and are predictable). */
function stillClock (ms = 1_700_000_000_000): EventIdClock {
  return new EventIdClock(() => ms)
}

function makeEntry (clock: EventIdClock, channel = 'default'): HistoryEntry {
  const id = clock.next()
  const idText = formatEventId(id)
  return { id, idText, channel, event: undefined, data: channel, frame: Buffer.from(`id: ${idText}\ndata: ${channel}\n\n`) }
}

/** Appends `count` entries, channels taken in turn from `channels`. */
function fill (history: EventHistory, clock: EventIdClock, count: number, channels = ['default']): HistoryEntry[] {
  const entries: HistoryEntry[] = []
  for (let i = 0; i < count; i++) {
    const entry = makeEntry(clock, channels[i % channels.length])
    history.append(entry)
    entries.push(entry)
  }
  return entries
}

const ids = (entries: HistoryEntry[] | null): string[] | null => entries === null ? null : entries.map((entry) => entry.idText)
const all = new Set(['default', 'a', 'b', 'c'])

t.test('since(id) returns what came after it, oldest first, filtered to the channels', async (t) => {
  const clock = stillClock()
  const history = new EventHistory(100, clock.origin)
  const entries = fill(history, clock, 9, ['a', 'b', 'c'])
  const [e0, e1, , , , , , , e8] = entries as [HistoryEntry, ...HistoryEntry[]]
  t.equal(history.size, 9)
  t.same(history.newest, e8?.id)
  const after1 = history.since(e1!.id, all)
  t.same(ids(after1), entries.slice(2).map((e) => e.idText), 'everything after, in order')
  t.equal(after1?.[0], entries[2], 'the very entries that were appended')
  t.equal(after1?.[0]?.frame, entries[2]?.frame, 'with their frames')
  t.same(ids(history.since(e0.id, new Set(['a']))), ['1700000000000-4', '1700000000000-7'], 'only channel a')
  t.same(ids(history.since(e0.id, new Set(['b', 'c']))), ['1700000000000-2', '1700000000000-3', '1700000000000-5', '1700000000000-6', '1700000000000-8', '1700000000000-9'], 'channels b and c')
  t.same(history.since(e0.id, new Set(['nope'])), [], 'a channel that has nothing')
  t.same(history.since(e0.id, new Set()), [], 'no channels at all')
  t.same(ids(history.since(clock.origin, new Set(['c']))), ['1700000000000-3', '1700000000000-6', '1700000000000-9'], 'from the origin, channel c')
})

t.test('since(newest) is empty', async (t) => {
  const clock = stillClock()
  const history = new EventHistory(10, clock.origin)
  t.same(history.since(clock.origin, all), [], 'before anything, the origin is the newest')
  t.same(history.newest, clock.origin)
  t.equal(history.size, 0)
  const entries = fill(history, clock, 3)
  t.same(history.since(entries[2]!.id, all), [])
  t.same(history.since({ ...entries[2]!.id }, all), [], 'compared by value, not identity')
  t.same(history.since(entries[2]!.id, new Set()), [])
})

t.test('since() is null for ids this history cannot answer for', async (t) => {
  let now = 5_000
  const clock = new EventIdClock(() => now)
  const history = new EventHistory(10, clock.origin)
  const entries: HistoryEntry[] = []
  for (const reading of [5_000, 5_010, 5_020, 5_030]) {
    now = reading
    entries.push(...fill(history, clock, 1))
  }
  t.same(ids(entries), ['5000-1', '5010-0', '5020-0', '5030-0'])
  const cases: Array<[string, EventId]> = [
    ['an id between two held ones', { ms: 5_015, seq: 0 }],
    ['a held ms with a seq never used', { ms: 5_010, seq: 1 }],
    ['an id never appended, after the newest', { ms: 5_030, seq: 1 }],
    ['an id far in the future', { ms: 9_999_999, seq: 0 }],
    ['an id before the origin', { ms: 4_999, seq: 7 }],
    ['the origin ms with a seq never used', { ms: 5_000, seq: 2 }]
  ]
  for (const [what, id] of cases) t.equal(history.since(id, all), null, what)
  // Another process: its own clock, started at another time.
  const other = stillClock(6_000)
  const foreign = [other.origin, other.next(), other.next()]
  for (const id of foreign) t.equal(history.since(id, all), null, `${formatEventId(id)} from another clock`)
  const earlier = new EventIdClock(() => 4_000)
  t.equal(history.since(earlier.origin, all), null, 'the origin of an earlier process')
  t.equal(history.since(earlier.next(), all), null, 'an id of an earlier process')
})

t.test('ids evicted before the last eviction, and the origin after one, are null', async (t) => {
  const clock = stillClock()
  const history = new EventHistory(3, clock.origin)
  const entries = fill(history, clock, 3)
  t.same(ids(history.since(clock.origin, all)), ids(entries), 'at capacity, nothing evicted yet: everything from the origin')
  t.same(ids(history.since(entries[0]!.id, all)), ids(entries.slice(1)))
  entries.push(...fill(history, clock, 1))
  t.equal(history.size, 3, 'the size stays at capacity')
  t.equal(history.since(clock.origin, all), null, 'the origin after one eviction')
  t.same(ids(history.since(entries[0]!.id, all)), ids(entries.slice(1)), 'the id evicted last: it missed exactly what is held')
  t.same(ids(history.since(entries[1]!.id, all)), ids(entries.slice(2)), 'the oldest held id')
  t.same(history.since(entries[3]!.id, all), [])
  entries.push(...fill(history, clock, 1))
  t.equal(history.since(entries[0]!.id, all), null, 'an id evicted before the last eviction')
  t.same(ids(history.since(entries[1]!.id, all)), ids(entries.slice(2)), 'the id evicted last')
})

t.test('capacity 0 keeps nothing', async (t) => {
  const clock = stillClock()
  const history = new EventHistory(0, clock.origin)
  t.same(history.since(clock.origin, all), [], 'nothing published yet: the origin is the newest')
  const entries = fill(history, clock, 3)
  t.equal(history.size, 0)
  t.same(history.newest, entries[2]!.id, 'the newest is tracked even when not held')
  t.same(history.since(entries[2]!.id, all), [], 'since(newest) is empty')
  t.equal(history.since(entries[1]!.id, all), null, 'an earlier id is null')
  t.equal(history.since(entries[0]!.id, all), null, 'the first id is null')
  t.equal(history.since(clock.origin, all), null, 'the origin is null once something was published')
})

t.test('capacity 0, one event: the origin is already unanswerable', async (t) => {
  const clock = stillClock()
  const history = new EventHistory(0, clock.origin)
  const [only] = fill(history, clock, 1)
  t.same(history.since(only!.id, all), [])
  t.equal(history.since(clock.origin, all), null)
})

t.test('the ring wraps correctly: capacity 5, 23 appends', async (t) => {
  const capacity = 5
  const clock = stillClock()
  const history = new EventHistory(capacity, clock.origin)
  const entries: HistoryEntry[] = []
  let wrong = 0
  for (let n = 1; n <= 23; n++) {
    entries.push(...fill(history, clock, 1, [n % 2 === 0 ? 'a' : 'b']))
    if (history.size !== Math.min(n, capacity)) wrong++
    if (history.newest !== entries[n - 1]!.id) wrong++
    for (let j = 0; j < n; j++) {
      const got = history.since(entries[j]!.id, all)
      // Held ids, and the one evicted last (everything after it is held), can be answered.
      const expected = j >= n - capacity - 1 ? entries.slice(j + 1) : null
      const same = expected === null
        ? got === null
        : got !== null && got.length === expected.length && got.every((entry, k) => entry === expected[k])
      if (!same) {
        wrong++
        t.fail(`after ${n} appends, since(#${j}) gave ${JSON.stringify(ids(got))}, wanted ${JSON.stringify(ids(expected))}`)
      }
      // The channel filter over a wrapped ring.
      const onlyA = history.since(entries[j]!.id, new Set(['a']))
      const expectedA = expected === null ? null : expected.filter((e) => e.channel === 'a')
      if (JSON.stringify(ids(onlyA)) !== JSON.stringify(ids(expectedA))) wrong++
    }
    const fromOrigin = history.since(clock.origin, all)
    if (JSON.stringify(ids(fromOrigin)) !== JSON.stringify(n <= capacity ? ids(entries) : null)) wrong++
  }
  t.equal(wrong, 0, 'every held id and the one evicted last give exactly their suffix; earlier ids give null')
  t.same(ids(history.since(entries[18]!.id, all)), ids(entries.slice(19)), 'the oldest held after 23 appends')
  t.same(ids(history.since(entries[17]!.id, all)), ids(entries.slice(18)), 'the last one evicted')
  t.equal(history.since(entries[16]!.id, all), null, 'the one evicted before it')
})

t.test('property: since() matches a plain list model', async (t) => {
  t.doesNotThrow(() => fc.assert(fc.property(
    fc.integer({ min: 0, max: 12 }),
    fc.array(fc.record({ channel: fc.constantFrom('a', 'b', 'c'), tick: fc.integer({ min: -3, max: 3 }) }), { maxLength: 40 }),
    fc.subarray(['a', 'b', 'c']),
    (capacity, appends, channels) => {
      let now = 1_000
      const clock = new EventIdClock(() => now)
      const history = new EventHistory(capacity, clock.origin)
      const entries: HistoryEntry[] = []
      for (const { channel, tick } of appends) {
        now += tick
        const entry = makeEntry(clock, channel)
        history.append(entry)
        entries.push(entry)
      }
      const wanted = new Set(channels)
      const held = capacity === 0 ? 0 : Math.min(capacity, entries.length)
      const queries: Array<[EventId, number | null]> = [
        [clock.origin, entries.length === 0 ? 0 : entries.length <= capacity ? 0 : null],
        ...entries.map((entry, j): [EventId, number | null] =>
          [entry.id, j >= entries.length - held - 1 ? j + 1 : null])
      ]
      for (const [id, from] of queries) {
        const got = history.since(id, wanted)
        if (from === null) {
          if (got !== null) return false
          continue
        }
        const expected = entries.slice(from).filter((entry) => wanted.has(entry.channel))
        if (got === null || got.length !== expected.length || !got.every((entry, k) => entry === expected[k])) return false
      }
      return history.size === held
    }
  ), { numRuns: 1000 }))
})

import tap from 'tap'
import fc from 'fast-check'
import { EventIdClock, compareEventIds, formatEventId, parseEventId, type EventId } from '../lib/wire/event-id.js'

/** Checks that every id is strictly after the one before it and after `origin`. */
function assertIncreasing (t: Pick<typeof tap, 'equal'>, origin: EventId, ids: EventId[]): void {
  let previous = origin
  let failures = 0
  for (const id of ids) {
    if (!(compareEventIds(id, previous) > 0)) failures++
    // The wire form must keep the order too: a client only ever sees the text.
    const parsed = parseEventId(formatEventId(id))
    if (parsed === null || compareEventIds(parsed, previous) <= 0) failures++
    previous = id
  }
  t.equal(failures, 0, `${ids.length} ids, each after the one before`)
  t.equal(new Set(ids.map(formatEventId)).size, ids.length, 'all distinct on the wire')
}

tap.test('ids strictly increase with the real clock', async (t) => {
  const clock = new EventIdClock()
  const ids = Array.from({ length: 10_000 }, () => clock.next())
  assertIncreasing(t, clock.origin, ids)
})

tap.test('ids strictly increase while the clock stands still', async (t) => {
  const clock = new EventIdClock(() => 1_700_000_000_000)
  t.same(clock.origin, { ms: 1_700_000_000_000, seq: 0 })
  const ids = Array.from({ length: 10_000 }, () => clock.next())
  assertIncreasing(t, clock.origin, ids)
  t.same(ids[0], { ms: 1_700_000_000_000, seq: 1 }, 'the first id is after the origin, not the origin')
  t.same(ids.at(-1), { ms: 1_700_000_000_000, seq: 10_000 })
})

tap.test('ids strictly increase when the clock steps backwards', async (t) => {
  let now = 5_000
  const clock = new EventIdClock(() => now)
  const readings = [5_000, 4_000, 4_000, 0, 5_000, 5_001, 3_000, 5_001, 10_000, 9_999, 1, 10_000, 10_001]
  const ids = readings.map((reading) => {
    now = reading
    return clock.next()
  })
  assertIncreasing(t, clock.origin, ids)
  t.same(ids.map(formatEventId), [
    '5000-1', '5000-2', '5000-3', '5000-4', '5000-5', '5001-0', '5001-1', '5001-2',
    '10000-0', '10000-1', '10000-2', '10000-3', '10001-0'
  ])
})

tap.test('the first id is after the origin, even if the clock went back before it', async (t) => {
  for (const first of [2_000, 1_000, 999, 0]) {
    let now = 1_000
    const clock = new EventIdClock(() => now)
    now = first
    const id = clock.next()
    t.ok(compareEventIds(id, clock.origin) > 0, `clock at ${first} after an origin at 1000`)
  }
})

tap.test('property: any sequence of clock readings gives strictly increasing ids', async (t) => {
  t.doesNotThrow(() => fc.assert(fc.property(
    fc.integer({ min: 0, max: 1e13 }),
    fc.array(fc.integer({ min: 0, max: 1e13 }), { maxLength: 60 }),
    (start, readings) => {
      let now = start
      const clock = new EventIdClock(() => now)
      let previous = clock.origin
      for (const reading of readings) {
        now = reading
        const id = clock.next()
        if (compareEventIds(id, previous) <= 0) return false
        const parsed = parseEventId(formatEventId(id))
        if (parsed === null || compareEventIds(parsed, id) !== 0) return false
        previous = id
      }
      return true
    }
  ), { numRuns: 1000 }))
})

tap.test('format and parse round-trip', async (t) => {
  for (const text of ['0-0', '1-0', '0-1', '1700000000000-0', '1700000000000-42', '999999999999999-999999999']) {
    const parsed = parseEventId(text)
    t.not(parsed, null, `${text} parses`)
    if (parsed !== null) t.equal(formatEventId(parsed), text, `${text} round-trips`)
  }
  t.same(parseEventId('1700000000000-42'), { ms: 1_700_000_000_000, seq: 42 })
  t.equal(formatEventId({ ms: 12, seq: 3 }), '12-3')
  t.doesNotThrow(() => fc.assert(fc.property(
    fc.integer({ min: 0, max: 999_999_999_999_999 }),
    fc.integer({ min: 0, max: 999_999_999 }),
    (ms, seq) => {
      const parsed = parseEventId(formatEventId({ ms, seq }))
      return parsed !== null && parsed.ms === ms && parsed.seq === seq
    }
  ), { numRuns: 1000 }))
})

tap.test('compareEventIds orders by ms, then by seq', async (t) => {
  t.ok(compareEventIds({ ms: 1, seq: 0 }, { ms: 2, seq: 0 }) < 0)
  t.ok(compareEventIds({ ms: 2, seq: 0 }, { ms: 1, seq: 0 }) > 0)
  t.ok(compareEventIds({ ms: 1, seq: 999 }, { ms: 2, seq: 0 }) < 0, 'ms wins over seq')
  t.ok(compareEventIds({ ms: 2, seq: 0 }, { ms: 1, seq: 999 }) > 0, 'ms wins over seq')
  t.ok(compareEventIds({ ms: 5, seq: 1 }, { ms: 5, seq: 2 }) < 0)
  t.ok(compareEventIds({ ms: 5, seq: 2 }, { ms: 5, seq: 1 }) > 0)
  t.equal(compareEventIds({ ms: 5, seq: 2 }, { ms: 5, seq: 2 }), 0)
  t.ok(compareEventIds({ ms: 999_999_999_999_999, seq: 0 }, { ms: 999_999_999_999_998, seq: 999_999_999 }) > 0)
  // Numeric, not textual: '9-0' is before '10-0' although it sorts after it as text.
  const nine = parseEventId('9-0')
  const ten = parseEventId('10-0')
  t.ok(nine !== null && ten !== null && compareEventIds(nine, ten) < 0, '9-0 before 10-0')
  const a = parseEventId('1-9')
  const b = parseEventId('1-10')
  t.ok(a !== null && b !== null && compareEventIds(a, b) < 0, '1-9 before 1-10')
  t.doesNotThrow(() => fc.assert(fc.property(
    fc.record({ ms: fc.nat(), seq: fc.nat() }),
    fc.record({ ms: fc.nat(), seq: fc.nat() }),
    (x, y) => Math.sign(compareEventIds(x, y)) === -Math.sign(compareEventIds(y, x)) &&
      (compareEventIds(x, y) === 0) === (x.ms === y.ms && x.seq === y.seq)
  ), { numRuns: 1000 }))
})

tap.test('parseEventId rejects everything that is not an id', async (t) => {
  const bad: Array<[string, unknown]> = [
    ['an 8 KiB string of digits', '1'.repeat(8192)],
    ['an 8 KiB id-shaped string', '1-' + '0'.repeat(8190)],
    ['an 8 KiB string', 'x'.repeat(8192)],
    ['NUL inside', '1\0-2'],
    ['NUL at the end', '1-2\0'],
    ['NUL at the start', '\u00001-2'],
    ['letters', 'abc'],
    ['empty', ''],
    ['no seq', '1-'],
    ['no ms', '-1'],
    ['three parts', '1-2-3'],
    ['only a dash', '-'],
    ['no dash', '12'],
    ['a negative ms', '-1-2'],
    ['a decimal', '1.5-2'],
    ['hex', '0x1-2'],
    ['an exponent', '1e3-2'],
    ['a leading space', ' 1-2'],
    ['a trailing space', '1-2 '],
    ['a trailing LF', '1-2\n'],
    ['a trailing CR', '1-2\r'],
    ['a plus sign', '+1-2'],
    ['full-width digits', '\uff11-\uff12'],
    ['Arabic-Indic digits', '\u0661-\u0662'],
    ['16 digits of ms', '1234567890123456-1'],
    ['10 digits of seq', '1-1234567890'],
    ['too many digits on both sides', '12345678901234567890-12345678901234567890'],
    ['a number', 1],
    ['zero', 0],
    ['NaN', NaN],
    ['a bigint', 1n],
    ['null', null],
    ['undefined', undefined],
    ['an object', { ms: 1, seq: 2 }],
    ['an array', ['1-2']],
    ['a boxed string', Object('1-2')],
    ['a Buffer', Buffer.from('1-2')]
  ]
  for (const [what, value] of bad) t.equal(parseEventId(value), null, what)
})

tap.test('ids of a later clock (a restart) compare greater than the earlier clock\'s', async (t) => {
  let now = 1_700_000_000_000
  const first = new EventIdClock(() => now)
  const before: EventId[] = []
  for (let i = 0; i < 1000; i++) {
    if (i % 100 === 0) now++
    before.push(first.next())
  }
  // The process restarts one millisecond after the last reading.
  const second = new EventIdClock(() => now + 1)
  const after = [second.next(), second.next()]
  t.ok(compareEventIds(second.origin, first.origin) > 0, 'the new origin is after the old one')
  for (const id of [second.origin, ...after]) {
    const newest = before.at(-1) as EventId
    t.ok(compareEventIds(id, newest) > 0, `${formatEventId(id)} after ${formatEventId(newest)}`)
  }
  t.equal(before.filter((id) => compareEventIds(after[0] as EventId, id) <= 0).length, 0, 'after every earlier id')
})

import t from 'tap'
import fc from 'fast-check'
import { createParser, type EventSourceMessage } from 'eventsource-parser'
import { encodeComment, encodeEvent, type WireEvent } from '../../lib/index.js'
import { openStream, startApp } from '../helpers/sse.js'

// 100,000 generated cases in all, spread over the properties below.
const RUNS = { roundTrip: 80_000, unsafeEventName: 12_000, unsafeId: 7_500, long: 500 }

// Characters that have broken SSE encoders: every line break form, NUL,
// separators that are not line breaks in SSE, a BOM, halves of surrogate pairs.
const SPECIAL = ['\r', '\n', '\r\n', '\n\r', '\0', '\u2028', '\u2029', '\u0085', '\uFEFF', '\uD800', '\uDFFF', ' ', ':', 'data: x', 'event: y', 'id: 1', 'retry: 0']

/** One unit of a hostile string: a special sequence, any code point, or any UTF-16 code unit (lone surrogates included). */
const hostileUnit = fc.oneof(
  fc.constantFrom(...SPECIAL),
  fc.string({ unit: 'binary', minLength: 1, maxLength: 1 }),
  fc.integer({ min: 0, max: 0xffff }).map((code) => String.fromCharCode(code))
)
const hostileString = (maxLength: number): fc.Arbitrary<string> => fc.string({ unit: hostileUnit, maxLength })

const UNSAFE = /[\r\n\0]/
const LONE_SURROGATE = /[\uD800-\uDBFF](?![\uDC00-\uDFFF])|(?<![\uD800-\uDBFF])[\uDC00-\uDFFF]/g

/** What a client reads back from a string sent as UTF-8: lone surrogates cannot be encoded and arrive as U+FFFD. */
function afterUtf8 (text: string): string {
  return text.replace(LONE_SURROGATE, '\uFFFD')
}

/** The data a spec-following client dispatches: each line break form becomes one LF. */
function dispatchedData (data: string): string {
  return afterUtf8(data).split(/\r\n|\r|\n/).join('\n')
}

/** Feeds `bytes` to a real SSE parser in pieces cut at the given byte offsets (which may split a character). */
function parse (bytes: Buffer, cuts: number[]): { events: EventSourceMessage[], retries: number[], comments: string[] } {
  const events: EventSourceMessage[] = []
  const retries: number[] = []
  const comments: string[] = []
  const parser = createParser({
    onEvent: (event) => events.push(event),
    onRetry: (retry) => retries.push(retry),
    onComment: (comment) => comments.push(comment)
  })
  const decoder = new TextDecoder()
  const offsets = [...new Set(cuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b)
  let start = 0
  for (const offset of [...offsets, bytes.length]) {
    parser.feed(decoder.decode(bytes.subarray(start, offset), { stream: true }))
    start = offset
  }
  parser.feed(decoder.decode())
  return { events, retries, comments }
}

function throwsCode (fn: () => unknown): string | undefined {
  try {
    fn()
  } catch (error) {
    return (error as { code?: string }).code
  }
  return undefined
}

/** Checks one well-formed event end to end: exactly one event, every field as given. */
function roundTrips (event: WireEvent, cuts: number[]): boolean {
  const bytes = encodeEvent(event)
  // The encoder's own line ends are LF, and every CR of the data became a line break: no CR on the wire at all.
  if (bytes.includes(0x0d)) return false
  const { events, retries } = parse(bytes, cuts)
  if (events.length !== 1) return false
  const [got] = events as [EventSourceMessage]
  if (got.data !== dispatchedData(event.data)) return false
  if (got.event !== (event.event === undefined ? undefined : afterUtf8(event.event))) return false
  if (got.id !== (event.id === undefined ? undefined : afterUtf8(event.id))) return false
  return retries.length === (event.retry === undefined ? 0 : 1) && (event.retry === undefined || retries[0] === event.retry)
}

const cutsArb = fc.array(fc.nat(), { maxLength: 8 })
const safeName = hostileString(24).filter((name) => name !== '' && !UNSAFE.test(name))
const safeId = hostileString(24).filter((id) => !UNSAFE.test(id))

t.test('well-formed events round-trip through a real parser, split at any byte', async (t) => {
  fc.assert(fc.property(
    hostileString(48),
    fc.option(safeName, { nil: undefined }),
    fc.option(safeId, { nil: undefined }),
    fc.option(fc.nat(), { nil: undefined }),
    cutsArb,
    (data, event, id, retry, cuts) => roundTrips({ data, event, id, retry }, cuts)
  ), { numRuns: RUNS.roundTrip })
  t.pass(`${RUNS.roundTrip} events`)
})

t.test('an event name holding CR, LF or NUL throws FST_PUSH_STREAM_INVALID_EVENT_NAME', async (t) => {
  const unsafeName = fc.tuple(hostileString(12), fc.constantFrom('\r', '\n', '\r\n', '\0'), hostileString(12))
    .map(([before, bad, after]) => before + bad + after)
  fc.assert(fc.property(
    unsafeName,
    hostileString(24),
    fc.option(hostileString(12), { nil: undefined }),
    (event, data, id) => throwsCode(() => encodeEvent({ data, event, id })) === 'FST_PUSH_STREAM_INVALID_EVENT_NAME'
  ), { numRuns: RUNS.unsafeEventName })
  t.equal(throwsCode(() => encodeEvent({ data: 'x', event: '' })), 'FST_PUSH_STREAM_INVALID_EVENT_NAME', 'the empty name too')
})

t.test('an id holding CR, LF or NUL, or a retry that is not whole milliseconds, throws FST_PUSH_STREAM_INVALID_FIELD', async (t) => {
  const unsafeId = fc.tuple(hostileString(12), fc.constantFrom('\r', '\n', '\r\n', '\0'), hostileString(12))
    .map(([before, bad, after]) => before + bad + after)
  const badRetry = fc.oneof(fc.integer({ max: -1 }), fc.double().filter((n) => !Number.isSafeInteger(n)))
  fc.assert(fc.property(
    fc.oneof(
      unsafeId.map((id): WireEvent => ({ data: 'x', id })),
      badRetry.map((retry): WireEvent => ({ data: 'x', retry }))
    ),
    (event) => throwsCode(() => encodeEvent(event)) === 'FST_PUSH_STREAM_INVALID_FIELD'
  ), { numRuns: RUNS.unsafeId })
  t.pass(`${RUNS.unsafeId} fields`)
})

t.test('very long payloads, names and ids round-trip', async (t) => {
  const long = fc.tuple(hostileString(16), fc.integer({ min: 1_000, max: 8_000 })).map(([unit, times]) => unit.repeat(times))
  fc.assert(fc.property(
    long,
    fc.option(long.map((name) => `n${name.replace(/[\r\n\0]/g, '')}`), { nil: undefined }),
    fc.option(long.map((id) => id.replace(/[\r\n\0]/g, '')), { nil: undefined }),
    cutsArb,
    (data, event, id, cuts) => roundTrips({ data, event, id }, cuts)
  ), { numRuns: RUNS.long })
  t.pass(`${RUNS.long} long events`)
})

// The injection vectors reported against fastify-sse-v2 in its issue #110
// (a lone CR in data, and CR/LF in the event, id and comment fields),
// kept as named cases so a regression names the attack it reopens.
const DATA_INJECTIONS: Record<string, string> = {
  'lone CR in data injects an event name': 'legit\revent: admin\rdata: spoofed',
  'lone CR pair in data ends the event early': 'legit\r\rdata: spoofed',
  'CR in data sets an id and a retry': 'legit\rid: 999\rretry: 1',
  'CRLF in data injects a second event': 'legit\r\n\r\nevent: admin\r\ndata: spoofed'
}
const EVENT_INJECTIONS: Record<string, string> = {
  'LF in event name injects data': 'message\ndata: spoofed\n\n',
  'CR in event name switches the event': 'update\revent: admin',
  'CRLF in event name injects an id': 'update\r\nid: 0',
  'NUL in event name': 'update\0admin'
}
const ID_INJECTIONS: Record<string, string> = {
  'LF in id injects a whole event': 'abc\ndata: spoofed\n\nid: next',
  'CR in id injects a retry': 'abc\rretry: 1',
  'NUL in id stops Last-Event-ID from advancing': 'abc\0'
}

t.test('fastify-sse-v2 #110 regression: each injection stays one event or is refused', async (t) => {
  for (const [name, data] of Object.entries(DATA_INJECTIONS)) {
    const { events, retries } = parse(encodeEvent({ data, event: 'chat', id: '1-0' }), [7, 19])
    t.same(events, [{ event: 'chat', id: '1-0', data: dispatchedData(data) }], name)
    t.same(retries, [], `${name}: no retry taken from the data`)
  }
  for (const [name, event] of Object.entries(EVENT_INJECTIONS)) {
    t.equal(throwsCode(() => encodeEvent({ data: 'x', event })), 'FST_PUSH_STREAM_INVALID_EVENT_NAME', name)
  }
  for (const [name, id] of Object.entries(ID_INJECTIONS)) {
    t.equal(throwsCode(() => encodeEvent({ data: 'x', id })), 'FST_PUSH_STREAM_INVALID_FIELD', name)
  }
  const comment = parse(encodeComment('ping\ndata: spoofed\r\rdata: again'), [3])
  t.same(comment.events, [], 'a comment with line breaks dispatches nothing')
  t.equal(comment.comments.length, 1, 'and stays one comment line')
})

t.test('fastify-sse-v2 #110 regression through publish: subscribers see one event per publish, refused names send nothing', async (t) => {
  const { app, url } = await startApp(t)
  const client = await openStream(`${url}/events`)
  t.teardown(() => client.close())
  for (const event of Object.values(EVENT_INJECTIONS)) {
    t.throws(() => app.pushStream.publish('x', { event }), { code: 'FST_PUSH_STREAM_INVALID_EVENT_NAME' })
  }
  const datas = Object.values(DATA_INJECTIONS)
  for (const data of datas) app.pushStream.publish(data, { event: 'chat' })
  const events = await client.take(datas.length)
  t.same(events.map((e) => [e.event, e.data]), datas.map((data) => ['chat', dispatchedData(data)]))
  t.equal(app.pushStream.stats().published, datas.length, 'a refused name was never published')
  t.notMatch(client.raw, /^(event: admin|retry: 1|id: 999)$/m, 'no injected field reached the wire as a field of its own')
})

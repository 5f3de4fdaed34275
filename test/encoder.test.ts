import { isDeepStrictEqual } from 'node:util'
import t from 'tap'
import fc from 'fast-check'
import { createParser, type EventSourceMessage, type ParseError } from 'eventsource-parser'
import {
  assertEventName,
  encodeComment,
  encodeControl,
  encodeData,
  encodeEvent,
  isValidEventName,
  type WireEvent
} from '../lib/wire/encoder.js'
import { FST_PUSH_STREAM_INVALID_EVENT_NAME } from '../lib/errors.js'
import { formatEventId } from '../lib/wire/event-id.js'

/** What a client saw after reading a whole stream. */
interface Parsed {
  events: EventSourceMessage[]
  comments: string[]
  retries: number[]
  errors: ParseError[]
}

/**
 * Reads `bytes` the way a client does: in chunks cut at `cuts` (byte offsets),
 * each decoded with one streaming TextDecoder and fed to eventsource-parser.
 */
function parse (bytes: Uint8Array, cuts: readonly number[] = []): Parsed {
  const parsed: Parsed = { events: [], comments: [], retries: [], errors: [] }
  const parser = createParser({
    onEvent: (event) => { parsed.events.push(event) },
    onComment: (comment) => { parsed.comments.push(comment) },
    onRetry: (retry) => { parsed.retries.push(retry) },
    onError: (error) => { parsed.errors.push(error) }
  })
  const decoder = new TextDecoder()
  let start = 0
  for (const cut of [...cuts, bytes.length]) {
    parser.feed(decoder.decode(bytes.subarray(start, cut), { stream: true }))
    start = cut
  }
  parser.feed(decoder.decode())
  return parsed
}

/** One event as the WHATWG interpretation algorithm dispatches it. */
interface SpecEvent {
  type: string
  data: string
  lastEventId: string
}

/**
 * The WHATWG "interpreting an event stream" algorithm, step by step (HTML
 * 9.2.6), as a second reader: unlike eventsource-parser it keeps the last event
 * id across events and reports it even when no event is dispatched.
 */
function interpret (text: string): { events: SpecEvent[], lastEventId: string, retry: number | undefined } {
  const events: SpecEvent[] = []
  let lastEventIdBuffer = ''
  let lastEventId = ''
  let data = ''
  let type = ''
  let retry: number | undefined
  if (text.startsWith('\uFEFF')) text = text.slice(1)
  const lines = text.split(/\r\n|\r|\n/)
  lines.pop() // an unterminated last line is never processed
  for (const line of lines) {
    if (line === '') {
      lastEventId = lastEventIdBuffer
      if (data === '') {
        type = ''
        continue
      }
      if (data.endsWith('\n')) data = data.slice(0, -1)
      events.push({ type: type === '' ? 'message' : type, data, lastEventId })
      data = ''
      type = ''
      continue
    }
    if (line.startsWith(':')) continue
    const colon = line.indexOf(':')
    const field = colon === -1 ? line : line.slice(0, colon)
    let value = colon === -1 ? '' : line.slice(colon + 1)
    if (value.startsWith(' ')) value = value.slice(1)
    if (field === 'event') type = value
    else if (field === 'data') data += value + '\n'
    else if (field === 'id' && !value.includes('\0')) lastEventIdBuffer = value
    else if (field === 'retry' && /^[0-9]+$/.test(value)) retry = Number(value)
  }
  return { events, lastEventId, retry }
}

/** `String.prototype.toWellFormed` (Node 20), which the ES2023 lib types lack. */
function toWellFormed (text: string): string {
  return (text as unknown as { toWellFormed: () => string }).toWellFormed()
}

/**
 * What a client can get back for `data`: lone surrogates become U+FFFD (UTF-8
 * cannot carry them) and every CR or CRLF becomes LF (SSE has no way to send a
 * CR inside data: it is a line end).
 */
function received (data: string): string {
  return toWellFormed(data).replace(/\r\n|\r/g, '\n')
}

const text = (bytes: Uint8Array): string => Buffer.from(bytes).toString('utf8')

/** A value as a one-line ASCII label (a raw U+2028 would split the TAP line). */
function show (value: unknown): string {
  const json = typeof value === 'string' ? JSON.stringify(value) : String(value)
  return json.replace(/[^\x20-\x7e]/g, (c) => `\\u${c.charCodeAt(0).toString(16).padStart(4, '0')}`)
}

t.test('exact bytes: field order, "field: value" with the space, blank line at the end', async (t) => {
  t.equal(text(encodeEvent({ data: 'hello' })), 'data: hello\n\n')
  t.equal(text(encodeEvent({ id: '7-1', event: 'tick', data: 'a\nb', retry: 500 })),
    'retry: 500\nid: 7-1\nevent: tick\ndata: a\ndata: b\n\n')
  t.equal(encodeData('one\rtwo\r\nthree\nfour'), 'data: one\ndata: two\ndata: three\ndata: four\n')
  t.ok(Buffer.isBuffer(encodeEvent({ data: 'x' })), 'encodeEvent returns a Buffer')
})

t.test('data is split on CR, LF and CRLF into one data line each', async (t) => {
  const cases: Array<[string, string[]]> = [
    ['a\nb', ['a', 'b']],
    ['a\rb', ['a', 'b']],
    ['a\r\nb', ['a', 'b']],
    ['a\n\rb', ['a', '', 'b']],
    ['a\r\rb', ['a', '', 'b']],
    ['a\r\n\r\nb', ['a', '', 'b']],
    ['\r', ['', '']],
    ['\n\n', ['', '', '']]
  ]
  for (const [data, lines] of cases) {
    const wire = text(encodeEvent({ data }))
    t.equal(wire, lines.map((line) => `data: ${line}\n`).join('') + '\n', `wire form of ${show(data)}`)
    t.notOk(wire.includes('\r'), `no CR left on the wire for ${show(data)}`)
    const { events, errors } = parse(encodeEvent({ data }))
    t.same(events.map((event) => event.data), [lines.join('\n')], `one event for ${show(data)}`)
    t.same(errors, [])
  }
})

t.test('injection attempts in data stay inside one event (fastify-sse-v2 #110 style)', async (t) => {
  const attacks = [
    'x\n\nevent: evil\ndata: pwned',
    'x\rid: 666',
    'x\r\rid: 666\r\rdata: pwned',
    'x\r\nretry: 1\r\n\r\nevent: evil\r\ndata: pwned',
    'x\r\revent: evil\rdata: pwned\r\r',
    'x\n\nid: 666\n\n',
    '\n\ndata: pwned\n\n',
    'x\r\n\r\n:comment\r\n\r\ndata: pwned',
    'x\n\n\n\n\n\nretry: 0\n\n',
    'data: pwned\revent: evil\r\r'
  ]
  // "Original" as far as SSE can carry it: a CR inside data is a line end on
  // the wire, so it comes back as LF; everything else comes back unchanged.
  for (const attack of attacks) {
    for (const given of [{ data: attack }, { data: attack, id: '5-0', event: 'safe' }] as WireEvent[]) {
      const label = `${show(attack)}${given.event === undefined ? '' : ' (with id and event)'}`
      const { events, retries, errors, comments } = parse(encodeEvent(given))
      t.equal(events.length, 1, `exactly one event: ${label}`)
      t.equal(events[0]?.data, received(attack), `original data: ${label}`)
      t.equal(events[0]?.event, given.event, `event name unchanged: ${label}`)
      t.equal(events[0]?.id, given.id, `id unchanged: ${label}`)
      t.same(retries, [], `no retry injected: ${label}`)
      t.same(comments, [], `no comment injected: ${label}`)
      t.same(errors, [], `no stray field: ${label}`)
      const spec = interpret(text(encodeEvent(given)))
      t.same(spec.events, [{ type: given.event ?? 'message', data: received(attack), lastEventId: given.id ?? '' }], `spec reader agrees: ${label}`)
    }
  }
  // The two classic cases, spelled out.
  t.equal(parse(encodeEvent({ data: 'x\n\nevent: evil\ndata: pwned' })).events[0]?.data, 'x\n\nevent: evil\ndata: pwned')
  t.same(parse(encodeEvent({ data: 'x\rid: 666' })).events, [{ id: undefined, event: undefined, data: 'x\nid: 666' }])
})

t.test('a leading space in data, event and lines survives the one space a client strips', async (t) => {
  t.equal(text(encodeEvent({ data: ' x' })), 'data:  x\n\n')
  t.same(parse(encodeEvent({ data: ' x' })).events.map((event) => event.data), [' x'])
  t.same(parse(encodeEvent({ data: '  two\n three\n' })).events.map((event) => event.data), ['  two\n three\n'])
  t.same(parse(encodeEvent({ event: ' spaced', data: 'x' })).events.map((event) => event.event), [' spaced'])
  t.same(parse(encodeEvent({ data: ':not a comment' })).events.map((event) => event.data), [':not a comment'])
})

t.test('id 0 and retry 0 are written: defined values, never truthiness', async (t) => {
  const wire = text(encodeEvent({ id: '0', retry: 0, data: 'x' }))
  t.equal(wire, 'retry: 0\nid: 0\ndata: x\n\n')
  const parsed = parse(encodeEvent({ id: '0', retry: 0, data: 'x' }))
  t.same(parsed.retries, [0])
  t.same(parsed.events, [{ id: '0', event: undefined, data: 'x' }])
  t.equal(text(encodeControl({ id: '0', retry: 0 })), 'retry: 0\nid: 0\n\n')
  t.same(parse(encodeControl({ retry: 0 })).retries, [0])
  // Fields that are undefined are left out entirely.
  t.equal(text(encodeEvent({ id: undefined, event: undefined, retry: undefined, data: 'x' })), 'data: x\n\n')
  t.equal(text(encodeControl({})), '\n')
})

t.test('trailing newlines are preserved', async (t) => {
  for (const data of ['a\n', 'a\n\n', '\n', 'a\r\n', 'a\r', '\n\n\n']) {
    const { events } = parse(encodeEvent({ data }))
    t.same(events.map((event) => event.data), [received(data)], show(data))
    t.same(interpret(text(encodeEvent({ data }))).events.map((event) => event.data), [received(data)], `spec reader: ${show(data)}`)
  }
  t.equal(text(encodeEvent({ data: 'a\n' })), 'data: a\ndata: \n\n', 'a final empty data line carries the newline')
})

t.test('empty data gives exactly one event with empty data', async (t) => {
  t.equal(text(encodeEvent({ data: '' })), 'data: \n\n')
  const { events, errors } = parse(encodeEvent({ data: '' }))
  t.same(events, [{ id: undefined, event: undefined, data: '' }])
  t.same(errors, [])
  // Back to back, each frame is its own event.
  const two = Buffer.concat([encodeEvent({ data: '' }), encodeEvent({ data: '', event: 'e' })])
  t.same(parse(two).events.map((event) => [event.event, event.data]), [[undefined, ''], ['e', '']])
  t.same(interpret(text(two)).events.map((event) => [event.type, event.data]), [['message', ''], ['e', '']])
})

t.test('event names: CR, LF, NUL and empty are rejected with FST_PUSH_STREAM_INVALID_EVENT_NAME', async (t) => {
  const bad: unknown[] = ['', 'a\rb', 'a\nb', 'a\r\nb', 'a\0b', '\r', '\n', '\0', 'evil\n\ndata: pwned', 'ok\r', undefined, null, 5, {}, ['a']]
  for (const name of bad) {
    const label = show(name)
    t.equal(isValidEventName(name), false, `isValidEventName(${label})`)
    t.throws(() => assertEventName(name), { code: 'FST_PUSH_STREAM_INVALID_EVENT_NAME' }, `assertEventName(${label})`)
  }
  try {
    assertEventName('a\nb')
    t.fail('did not throw')
  } catch (error) {
    t.ok(error instanceof FST_PUSH_STREAM_INVALID_EVENT_NAME, 'is the named error')
    t.ok(error instanceof TypeError, 'is a TypeError')
    t.match((error as Error).message, /"a\\nb"/, 'the message shows the value')
  }
  const good = ['message', 'a', ' ', 'tick-tock', 'user:login', 'émoji 🎉', '名前', '\u2028', 'x'.repeat(1000)]
  for (const name of good) {
    t.equal(isValidEventName(name), true, `isValidEventName(${show(name)})`)
    t.doesNotThrow(() => assertEventName(name), `assertEventName(${show(name)})`)
  }
})

t.test('encodeEvent itself (a public export) refuses an event or id that would break the frame', async (t) => {
  for (const event of ['', 'a\nb', 'a\rdata: pwned', 'a\0b']) {
    t.throws(() => encodeEvent({ event, data: 'x' }), { code: 'FST_PUSH_STREAM_INVALID_EVENT_NAME' }, `event ${show(event)}`)
  }
  for (const id of ['1\n\ndata: pwned', '1\rretry: 1', '1\0']) {
    t.throws(() => encodeEvent({ id, data: 'x' }), { code: 'FST_PUSH_STREAM_INVALID_FIELD' }, `id ${show(id)}`)
  }
})

t.test('encodeEvent refuses a retry a client would ignore', async (t) => {
  for (const retry of [-1, 1.5, NaN, Infinity, 1e21]) {
    t.throws(() => encodeEvent({ retry, data: 'x' }), { code: 'FST_PUSH_STREAM_INVALID_FIELD' }, `retry ${retry}`)
    t.throws(() => encodeControl({ retry }), { code: 'FST_PUSH_STREAM_INVALID_FIELD' }, `control retry ${retry}`)
  }
})

t.test('encodeControl: id and retry are recorded, no event is dispatched', async (t) => {
  const control = encodeControl({ id: '42-3', retry: 2500 })
  t.equal(text(control), 'retry: 2500\nid: 42-3\n\n')
  const parsed = parse(control)
  t.same(parsed.retries, [2500], 'the parser reports the retry')
  t.same(parsed.events, [], 'no event is emitted')
  t.same(parsed.errors, [])
  const spec = interpret(text(control))
  t.same(spec.events, [], 'the spec reader dispatches nothing')
  t.equal(spec.lastEventId, '42-3', 'the spec reader records the id')
  t.equal(spec.retry, 2500)
  // The id carries over to the next event, which has none of its own.
  const stream = text(Buffer.concat([control, encodeEvent({ data: 'next' })]))
  t.same(interpret(stream).events, [{ type: 'message', data: 'next', lastEventId: '42-3' }])
  // Control then event: the parser still sees exactly the one event.
  t.same(parse(Buffer.concat([control, encodeEvent({ id: '42-4', data: 'next' })])).events, [{ id: '42-4', event: undefined, data: 'next' }])
  t.same(parse(encodeControl({ id: '1-0' })).events, [])
  t.same(parse(encodeControl({ id: '1-0' })).retries, [])
})

t.test('encodeComment: a comment line, with CR, LF and NUL taken out of the text', async (t) => {
  t.equal(text(encodeComment()), ':\n\n')
  t.equal(text(encodeComment('')), ':\n\n')
  t.equal(text(encodeComment('ping')), ': ping\n\n')
  const plain = parse(encodeComment())
  t.same(plain.comments, [''])
  t.same(plain.events, [])
  t.same(parse(encodeComment('keep-alive')).comments, ['keep-alive'])
  t.same(parse(encodeComment(' spaced')).comments, [' spaced'])
  for (const hostile of ['a\nb', 'a\rb', 'a\r\nb', 'a\0b', 'x\n\ndata: pwned\n\n', 'x\rid: 666', '\r\n\0', 'end\n']) {
    const wire = text(encodeComment(hostile))
    const label = show(hostile)
    t.notOk(/[\r\0]/.test(wire), `no CR or NUL on the wire: ${label}`)
    t.equal(wire.indexOf('\n'), wire.length - 2, `one line, then the blank line: ${label}`)
    t.ok(wire.startsWith(':'), `a comment: ${label}`)
    const parsed = parse(encodeComment(hostile))
    t.equal(parsed.comments.length, 1, `exactly one comment: ${label}`)
    t.notOk(/[\r\n\0]/.test(parsed.comments[0] ?? '\n'), `comment text is clean: ${label}`)
    t.same(parsed.events, [], `no event: ${label}`)
    t.same(parsed.errors, [], `no stray field: ${label}`)
    t.same(parsed.retries, [], `no retry: ${label}`)
  }
  t.same(parse(encodeComment('a\nb')).comments, ['a b'])
})

t.test('UTF-8 survives being read one byte at a time', async (t) => {
  const data = 'emoji 🎉👩‍👩‍👧 CJK 漢字かな한글 accents éàü math 𝔸 and\nlines 🚀\r\nend'
  const event = { id: '1-0', event: 'ünïcødé 🎈', data }
  const bytes = encodeEvent(event)
  const everyByte = Array.from({ length: bytes.length - 1 }, (_, i) => i + 1)
  const { events, errors } = parse(bytes, everyByte)
  t.same(events, [{ id: '1-0', event: 'ünïcødé 🎈', data: received(data) }])
  t.same(errors, [])
  // The harness can tell: decoding each byte on its own mangles the text.
  const naive: string[] = []
  const parser = createParser({ onEvent: (e) => { naive.push(e.data) } })
  for (let i = 0; i < bytes.length; i++) parser.feed(bytes.subarray(i, i + 1).toString('utf8'))
  t.equal(naive.length, 1)
  t.not(naive[0], received(data), 'per-chunk toString breaks characters')
})

// The property: for any data, event name, id and retry, encodeEvent's bytes cut
// anywhere and read back give exactly one event with what was given.

const tricky = fc.constantFrom(
  '\r', '\n', '\r\n', '\n\r', '\0', '\uD800', '\uDC00', '\uDBFF', '\uDFFF', '\u2028', '\u2029',
  '\uFEFF', ' ', ':', 'data: ', 'event: evil', 'id: 666', 'retry: 1', '🎉', '漢', 'é'
)
const mixed = fc.array(fc.oneof(tricky, fc.string({ unit: 'binary', maxLength: 4 }), fc.string({ maxLength: 4 })), { maxLength: 24 })
  .map((parts) => parts.join(''))
const dataArbitrary = fc.oneof(fc.string({ unit: 'binary' }), fc.string({ unit: 'grapheme' }), mixed)
const eventNameArbitrary = fc.option(
  fc.oneof(fc.string({ unit: 'binary', minLength: 1 }), fc.string({ unit: 'grapheme', minLength: 1 }), mixed)
    .filter((name) => name.length > 0 && !/[\r\n\0]/.test(name)),
  { nil: undefined }
)
const idArbitrary = fc.option(
  fc.record({ ms: fc.integer({ min: 0, max: 999_999_999_999_999 }), seq: fc.integer({ min: 0, max: 999_999_999 }) }).map(formatEventId),
  { nil: undefined }
)
const retryArbitrary = fc.option(fc.nat(), { nil: undefined })
const cutsArbitrary = fc.array(fc.nat(), { maxLength: 12 })

t.test('property: any data round-trips through bytes cut at random boundaries', async (t) => {
  let runs = 0
  fc.assert(fc.property(dataArbitrary, eventNameArbitrary, idArbitrary, retryArbitrary, cutsArbitrary, (data, event, id, retry, rawCuts) => {
    runs++
    const bytes = encodeEvent({ data, event, id, retry })
    const cuts = [...new Set(rawCuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b)
    const parsed = parse(bytes, cuts)
    const expected = { id, event: event === undefined ? undefined : toWellFormed(event), data: received(data) }
    if (parsed.events.length !== 1) return false
    const [got] = parsed.events
    if (got?.data !== expected.data || got.event !== expected.event || got.id !== expected.id) return false
    if (parsed.errors.length !== 0 || parsed.comments.length !== 0) return false
    if (parsed.retries.length !== (retry === undefined ? 0 : 1) || (retry !== undefined && parsed.retries[0] !== retry)) return false
    const spec = interpret(text(bytes))
    return spec.events.length === 1 &&
      spec.events[0]?.data === expected.data &&
      spec.events[0].type === (expected.event ?? 'message') &&
      spec.events[0].lastEventId === (id ?? '')
  }), { numRuns: 3000 })
  t.equal(runs >= 3000, true, 'the property ran')
})

t.test('property: a stream of many events reads back event for event', async (t) => {
  t.doesNotThrow(() => fc.assert(fc.property(fc.array(fc.record({ data: dataArbitrary, event: eventNameArbitrary, id: idArbitrary }), { maxLength: 8 }), cutsArbitrary, (given, rawCuts) => {
    const bytes = Buffer.concat(given.map((event) => encodeEvent(event)))
    const cuts = [...new Set(rawCuts.map((cut) => cut % (bytes.length + 1)))].sort((a, b) => a - b)
    const parsed = parse(bytes, cuts)
    const expected = given.map(({ data, event, id }) => ({ id, event: event === undefined ? undefined : toWellFormed(event), data: received(data) }))
    return isDeepStrictEqual(parsed.events, expected) && parsed.errors.length === 0
  }), { numRuns: 500 }))
})

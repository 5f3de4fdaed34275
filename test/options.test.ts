import t from 'tap'
import { resolveOptions, resolveRegisterOptions, defaults, resumableDefaults, type PushStreamOptions } from '../lib/options.js'
import { editDistance, nearestName } from '../lib/nearest-name.js'
import { randomMessages } from '../lib/random-source.js'
import { FST_PUSH_STREAM_INVALID_OPTION } from '../lib/errors.js'
import type { PushStreamAdapter } from '../lib/adapter.js'

const MAX_DELAY = 2 ** 31 - 1

/**
 * Resolves `options` and checks it throws FST_PUSH_STREAM_INVALID_OPTION with a
 * message that names the option, shows what was given and says what is allowed.
 */
function rejects (assert: Pick<typeof t, 'ok' | 'equal' | 'match' | 'fail'>, options: unknown, name: string, given: string, allowed: string, label: string): void {
  try {
    resolveOptions(options as PushStreamOptions)
  } catch (error) {
    const err = error as Error & { code?: string }
    assert.equal(err.code, 'FST_PUSH_STREAM_INVALID_OPTION', `${label}: code`)
    assert.ok(err instanceof FST_PUSH_STREAM_INVALID_OPTION && err instanceof TypeError, `${label}: a TypeError of the named kind`)
    assert.match(err.message, `"${name}"`, `${label}: names the option`)
    assert.match(err.message, `got ${given}`, `${label}: shows what was given`)
    assert.match(err.message, allowed, `${label}: says what is allowed`)
    return
  }
  assert.fail(`${label}: did not throw`)
}

t.test('the defaults', async (t) => {
  for (const resolved of [resolveOptions(), resolveOptions({})]) {
    t.equal(resolved.path, '/events')
    t.equal(resolved.interval, 3000)
    t.equal(resolved.heartbeat, 15000)
    t.equal(resolved.retry, 3000)
    t.equal(resolved.history, 1000)
    t.equal(resolved.maxBufferedBytes, 1048576)
    t.equal(resolved.maxConnections, 10000)
    t.equal(resolved.maxConnectionsPerIp, 0)
    t.equal(resolved.maxChannels, 32)
    t.equal(resolved.client, false)
    t.equal(resolved.serialize, JSON.stringify)
    t.equal(resolved.authorize, undefined)
    t.equal(resolved.adapter, undefined)
    t.equal(typeof resolved.source, 'function', 'a default source function')
    t.equal(resolved.source, randomMessages, 'the random message source')
  }
  t.same(defaults, {
    path: '/events',
    interval: 3000,
    heartbeat: 15000,
    retry: 3000,
    history: 1000,
    maxBufferedBytes: 1048576,
    maxConnections: 10000,
    maxConnectionsPerIp: 0,
    maxChannels: 32,
    stallTimeout: 30000,
    flushDelay: 0,
    client: false
  })
  t.ok(Object.isFrozen(defaults), 'the exported defaults cannot be changed')
  t.same(resolveOptions().resumable, { maxDuration: 600000, ttl: 300000, maxEvents: 10000, maxBytes: 1048576, maxStreams: 1000 })
  t.same(resolveOptions().resumable, resumableDefaults)
  t.ok(Object.isFrozen(resumableDefaults))
})

t.test('undefined values fall back to the defaults', async (t) => {
  const resolved = resolveOptions({
    path: undefined,
    interval: undefined,
    source: undefined,
    heartbeat: undefined,
    retry: undefined,
    history: undefined,
    maxBufferedBytes: undefined,
    maxConnections: undefined,
    maxConnectionsPerIp: undefined,
    maxChannels: undefined,
    stallTimeout: undefined,
    flushDelay: undefined,
    client: undefined,
    serialize: undefined,
    authorize: undefined,
    adapter: undefined
  })
  t.same(resolved, resolveOptions())
  t.equal(resolved.source, randomMessages)
  t.equal(resolved.serialize, JSON.stringify)
})

t.test('given values are kept, including 0 where 0 is allowed', async (t) => {
  const source = (): string => 'x'
  const serialize = (data: unknown): string => String(data)
  const authorize = (): boolean => true
  const adapter: PushStreamAdapter = {
    start: async () => '0-0',
    publish: async () => '1-0',
    replay: async () => null,
    lease: async () => false,
    close: async () => {}
  }
  const given = {
    path: '/stream/v1',
    interval: 0,
    source,
    heartbeat: 0,
    retry: 0,
    history: 0,
    maxBufferedBytes: 1,
    maxConnections: 1,
    maxConnectionsPerIp: 1,
    maxChannels: 1,
    stallTimeout: 0,
    flushDelay: 1000,
    client: true,
    resumable: { maxDuration: 1, ttl: 0, maxEvents: 1, maxBytes: 1, maxStreams: 1 },
    serialize,
    authorize,
    adapter
  }
  // Copied first, so a resolver that changed what it was given could not pass.
  const expected = { ...given }
  const resolved = resolveOptions(given)
  t.same(resolved, expected)
  t.equal(resolved.source, source)
  t.equal(resolved.serialize, serialize)
  t.equal(resolved.authorize, authorize)
  t.equal(resolved.adapter, adapter)
  t.equal(resolveOptions({ path: '/' }).path, '/')
})

const integers: Array<{ name: keyof PushStreamOptions, min: number, max: number }> = [
  { name: 'interval', min: 0, max: MAX_DELAY },
  { name: 'heartbeat', min: 0, max: MAX_DELAY },
  { name: 'retry', min: 0, max: MAX_DELAY },
  { name: 'history', min: 0, max: 10_000_000 },
  { name: 'maxBufferedBytes', min: 1, max: Number.MAX_SAFE_INTEGER },
  { name: 'maxConnections', min: 1, max: Number.MAX_SAFE_INTEGER },
  { name: 'maxConnectionsPerIp', min: 0, max: Number.MAX_SAFE_INTEGER },
  { name: 'maxChannels', min: 1, max: 1024 },
  { name: 'stallTimeout', min: 0, max: 2 ** 31 - 1 },
  { name: 'flushDelay', min: 0, max: 1000 }
]

t.test('integer options: the bounds are accepted', async (t) => {
  for (const { name, min, max } of integers) {
    t.equal(resolveOptions({ [name]: min })[name], min, `${name} = ${min}`)
    t.equal(resolveOptions({ [name]: max })[name], max, `${name} = ${max}`)
  }
})

t.test('integer options: bad values throw FST_PUSH_STREAM_INVALID_OPTION', async (t) => {
  for (const { name, min, max } of integers) {
    const allowed = `an integer from ${min} to ${max}`
    const bad: Array<[unknown, string]> = [
      [-1, 'number -1'],
      [min - 1, `number ${min - 1}`],
      [max + 1, `number ${max + 1}`],
      [1.5, 'number 1.5'],
      [NaN, 'number NaN'],
      [Infinity, 'number Infinity'],
      [-Infinity, 'number -Infinity'],
      ['3000', '"3000"'],
      ['', '""'],
      [null, 'null'],
      [true, 'boolean true'],
      [{}, 'an object'],
      [[5], 'an array'],
      [5n, 'bigint 5']
    ]
    for (const [value, given] of bad) rejects(t, { [name]: value }, name, given, allowed, `${name} = ${given}`)
  }
})

t.test('path must be a string starting with "/"', async (t) => {
  const allowed = 'a string starting with "/"'
  const bad: Array<[unknown, string]> = [
    ['events', '"events"'],
    ['', '""'],
    [' /events', '" /events"'],
    ['http://example.com/events', '"http://example.com/events"'],
    [5, 'number 5'],
    [null, 'null'],
    [['/events'], 'an array'],
    [{}, 'an object']
  ]
  for (const [value, given] of bad) rejects(t, { path: value }, 'path', given, allowed, `path = ${given}`)
})

t.test('serialize and authorize must be functions', async (t) => {
  for (const name of ['serialize', 'authorize']) {
    const bad: Array<[unknown, string]> = [
      ['JSON.stringify', '"JSON.stringify"'],
      [1, 'number 1'],
      [true, 'boolean true'],
      [{}, 'an object'],
      [[], 'an array']
    ]
    for (const [value, given] of bad) rejects(t, { [name]: value }, name, given, 'a function', `${name} = ${given}`)
  }
  rejects(t, { authorize: null }, 'authorize', 'null', 'a function', 'authorize = null')
})

t.test('adapter must have all five methods', async (t) => {
  const allowed = 'an object with the methods start, publish, replay, lease, close'
  const partial = { start: async () => '0-0', publish: async () => '1-0', replay: async () => null, lease: async () => true }
  const bad: Array<[unknown, string]> = [
    ['redis://127.0.0.1', '"redis://127.0.0.1"'],
    [null, 'null'],
    [() => {}, 'a function'],
    [partial, 'an object'],
    [{ ...partial, close: 'now' }, 'an object']
  ]
  for (const [value, given] of bad) rejects(t, { adapter: value as PushStreamAdapter }, 'adapter', given, allowed, `adapter = ${given}`)
})

t.test('null is rejected like any other bad value', async (t) => {
  for (const name of ['source', 'serialize']) {
    t.throws(() => resolveOptions({ [name]: null }), { code: 'FST_PUSH_STREAM_INVALID_OPTION' }, `${name} = null`)
  }
  for (const name of ['path', 'interval', 'heartbeat', 'retry', 'history', 'maxBufferedBytes', 'maxConnections', 'maxConnectionsPerIp', 'maxChannels', 'stallTimeout', 'flushDelay', 'client', 'authorize', 'adapter']) {
    t.throws(() => resolveOptions({ [name]: null }), { code: 'FST_PUSH_STREAM_INVALID_OPTION' }, `${name} = null`)
  }
})

t.test('source must be a function or an (async) iterable', async (t) => {
  const allowed = 'a function or an (async) iterable'
  const bad: Array<[unknown, string]> = [
    ['hello', '"hello"'],
    ['', '""'],
    [42, 'number 42'],
    [0, 'number 0'],
    [true, 'boolean true'],
    [{}, 'an object'],
    [{ next: () => ({ done: true }) }, 'an object']
  ]
  for (const [value, given] of bad) rejects(t, { source: value }, 'source', given, allowed, `source = ${given}`)
})

t.test('functions and iterables are accepted as source', async (t) => {
  function * generator (): Generator<number> { yield 1 }
  async function * asyncGenerator (): AsyncGenerator<number> { yield 1 }
  const accepted: Array<[string, unknown]> = [
    ['a function', () => 1],
    ['an async function', async () => 1],
    ['an array', [1, 2, 3]],
    ['an empty array', []],
    ['a generator', generator()],
    ['an async generator', asyncGenerator()],
    ['a Set', new Set([1])],
    ['a Map', new Map([[1, 2]])],
    ['an object with Symbol.iterator', { [Symbol.iterator]: () => [1][Symbol.iterator]() }],
    ['an object with Symbol.asyncIterator', { [Symbol.asyncIterator]: asyncGenerator }]
  ]
  for (const [what, source] of accepted) {
    t.equal(resolveOptions({ source: source as PushStreamOptions['source'] }).source, source, `${what} is accepted and kept as it is`)
  }
})

t.test('an unknown option is refused, naming the option most likely meant', async (t) => {
  const meant: Array<[string, string]> = [
    ['intervall', 'interval'],
    ['intreval', 'interval'],
    ['Interval', 'interval'],
    ['maxconnections', 'maxConnections'],
    ['maxConection', 'maxConnections'],
    ['hearbeat', 'heartbeat'],
    ['paht', 'path'],
    ['routes', 'route'],
    ['prefx', 'prefix'],
    ['loglevel', 'logLevel']
  ]
  for (const [key, name] of meant) {
    rejects(t, { [key]: 1 }, key, 'an unknown option', `expected a known option (did you mean "${name}"?)`, key)
  }
  rejects(t, { interval: 0, somethingElse: true }, 'somethingElse', 'an unknown option',
    'expected one of path, interval, heartbeat, retry, history, maxBufferedBytes, maxConnections, maxConnectionsPerIp, maxChannels, stallTimeout, flushDelay, client, source, serialize, authorize, adapter, route, resumable, prefix, logLevel, logSerializers',
    'nothing near: every option is listed')
  rejects(t, { typo: undefined }, 'typo', 'an unknown option', 'expected one of', 'an unknown key is refused even when undefined')
})

t.test('the options Fastify reads from register\'s options are accepted', async (t) => {
  const resolved = resolveOptions({ prefix: '/api', logLevel: 'warn', logSerializers: {} } as PushStreamOptions)
  t.equal(resolved.path, '/events')
  t.same(resolveRegisterOptions({ prefix: '/api', logLevel: 'warn' }), { prefix: '/api', logLevel: 'warn' })
  t.same(resolveRegisterOptions(), {}, 'none given, none passed on')
})

t.test('route must be a plain object, checked at resolve time', async (t) => {
  const allowed = 'a plain object of Fastify route options'
  const bad: Array<[unknown, string]> = [
    ['GET', '"GET"'],
    [null, 'null'],
    [[], 'an array'],
    [() => ({}), 'a function'],
    [new Map(), 'an object'],
    [new (class Options {})(), 'an object']
  ]
  for (const [value, given] of bad) rejects(t, { route: value }, 'route', given, allowed, `route = ${given}`)
  const bare = Object.assign(Object.create(null) as object, { bodyLimit: 10 })
  t.equal(resolveOptions({ route: bare }).route, bare, 'an object without a prototype is a plain object')
  t.equal(resolveOptions().route, undefined, 'no route options by default')
})

t.test('route.schema and the parts merged with the default schema must be plain objects', async (t) => {
  rejects(t, { route: { schema: 'tags' } }, 'route.schema', '"tags"', 'a plain object', 'schema')
  for (const part of ['querystring', 'headers', 'response']) {
    rejects(t, { route: { schema: { [part]: [] } } }, `route.schema.${part}`, 'an array', 'a plain object', part)
  }
  const schema = { tags: ['x'], querystring: { type: 'object' }, response: {} }
  t.equal(resolveOptions({ route: { schema } }).route?.schema, schema)
})

t.test('editDistance counts insertions, deletions, substitutions and swaps of neighbours', async (t) => {
  t.equal(editDistance('interval', 'interval'), 0)
  t.equal(editDistance('intervall', 'interval'), 1)
  t.equal(editDistance('intreval', 'interval'), 1, 'a swap is one edit')
  t.equal(editDistance('', 'abc'), 3)
  t.equal(editDistance('abc', ''), 3)
  t.equal(editDistance('kitten', 'sitting'), 3)
  t.equal(nearestName('x', ['path', 'route']), undefined, 'nothing within two edits')
  t.equal(nearestName('rout', ['routes', 'route']), 'route', 'the closest wins')
  t.equal(nearestName('pat', ['path', 'pato']), 'path', 'on a tie, the first listed')
  t.equal(nearestName('MAXCHANNELS', ['maxChannels']), 'maxChannels', 'a difference of case only, however many letters')
})

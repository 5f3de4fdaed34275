import t from 'tap'
import { readFile } from 'node:fs/promises'
import { DEFAULT_CHANNEL, END_DONE_DATA, END_EVENT, ERROR_EVENT, OPEN_EVENT, RESET_DATA, RESET_EVENT, RESET_REASON, RETRY_EVENT, assertChannel, isValidChannel } from '../lib/wire/protocol.js'

// The browser client ships alone, so it keeps its own copies of the protocol's
// names: they are pinned here to the server's, in lib/wire/protocol.ts.

t.test('the browser client names the protocol\'s events as the server does', async (t) => {
  const source = await readFile(new URL('../lib/client/index.ts', import.meta.url), 'utf8')
  const constant = (name: string): string => {
    const match = new RegExp(`^const ${name} = (.+)$`, 'm').exec(source)
    if (match === null) throw new Error(`the client declares no ${name}`)
    return match[1] as string
  }
  const prefix = JSON.parse(constant('PREFIX').replaceAll("'", '"')) as string
  const named = (name: string): string => {
    const value = constant(name)
    return value.startsWith('PREFIX + ') ? prefix + (JSON.parse(value.slice(9).replaceAll("'", '"')) as string) : JSON.parse(value.replaceAll("'", '"')) as string
  }
  t.equal(named('OPEN_EVENT'), OPEN_EVENT)
  t.equal(named('RETRY_EVENT'), RETRY_EVENT)
  t.equal(named('RESET_EVENT'), RESET_EVENT)
  t.equal(named('END_EVENT'), END_EVENT)
  t.equal(named('ERROR_EVENT'), ERROR_EVENT)
  t.equal(END_DONE_DATA, '{"reason":"done"}')
  t.ok(source.includes(`reason: '${RESET_REASON}'`), 'the reset a leader tab passes on carries the server\'s reason')
  t.equal(RESET_DATA, JSON.stringify({ reason: RESET_REASON }))
})

t.test('channel names: 1 to 64 of A-Z a-z 0-9 _ - . :, the default among them', async (t) => {
  t.ok(isValidChannel(DEFAULT_CHANNEL))
  for (const good of ['a', 'room-1', 'user:42', 'a.b_c', 'x'.repeat(64)]) t.ok(isValidChannel(good), good)
  for (const bad of ['', 'a b', 'x'.repeat(65), 'é', 'a,b', 'a\n', 42, null]) {
    t.notOk(isValidChannel(bad), String(bad))
    t.throws(() => assertChannel(bad), { code: 'FST_PUSH_STREAM_INVALID_CHANNEL' })
  }
})

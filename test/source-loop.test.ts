import t from 'tap'
import { SourceLoop } from '../lib/source-loop.js'

// The generator's timers are unref'd, as a library's should be: hold the process open while tests wait on them.
const alive = setInterval(() => {}, 60_000)
t.teardown(() => clearInterval(alive))

/** A generator whose published values and errors are collected; `published` resolves waiters. */
function harness (source: ConstructorParameters<typeof SourceLoop>[0]['source'], interval: number) {
  const published: unknown[] = []
  const errors: unknown[] = []
  let wake = (): void => {}
  const generator = new SourceLoop<string>({
    source,
    interval,
    publish: (value) => {
      published.push(value)
      wake()
      return `#${published.length}`
    },
    onError: (error) => { errors.push(error); wake() }
  })
  const until = async (test: () => boolean): Promise<void> => {
    while (!test()) await new Promise<void>((resolve) => { wake = resolve })
  }
  return { generator, published, errors, until }
}

t.test('start() twice runs one loop, not two', async (t) => {
  let calls = 0
  const { generator, published, until } = harness(() => ++calls, 5)
  generator.start()
  generator.start()
  await until(() => published.length >= 4)
  await generator.stop()
  t.same(published, [1, 2, 3, 4].slice(0, published.length), 'each call published once, in order')
  t.equal(calls, published.length, 'the source was called once per tick')
})

t.test('a function source with interval 0 does not loop; pull() still works', async (t) => {
  const { generator, published } = harness(() => 'by hand', 0)
  generator.start()
  t.same(await generator.pull(), { done: false, published: '#1' })
  t.same(published, ['by hand'])
  await generator.stop()
})

t.test('pulls never overlap: a slow async source is called again only after it answered', async (t) => {
  let active = 0
  let most = 0
  let n = 0
  const { generator } = harness(async () => {
    active++
    most = Math.max(most, active)
    await new Promise((resolve) => setImmediate(resolve))
    active--
    return ++n
  }, 0)
  const results = await Promise.all([generator.pull(), generator.pull(), generator.pull()])
  t.same(results, [{ done: false, published: '#1' }, { done: false, published: '#2' }, { done: false, published: '#3' }])
  t.equal(most, 1)
})

t.test('a failed pull rejects with the named error and does not block the next', async (t) => {
  let n = 0
  const { generator } = harness(() => {
    n++
    if (n === 1) throw new Error('first fails')
    // eslint-disable-next-line no-throw-literal
    if (n === 2) throw 'a string, not an Error'
    return n
  }, 0)
  await t.rejects(generator.pull(), { code: 'FST_PUSH_STREAM_SOURCE_FAILED', message: /first fails/ })
  await t.rejects(generator.pull(), { code: 'FST_PUSH_STREAM_SOURCE_FAILED', message: /a string, not an Error/ })
  t.same(await generator.pull(), { done: false, published: '#1' })
})

t.test('after stop(), pull() reports the end and the source is not called', async (t) => {
  let calls = 0
  const { generator } = harness(() => ++calls, 0)
  await generator.stop()
  t.same(await generator.pull(), { done: true })
  generator.start()
  t.equal(calls, 0)
})

t.test('a pull in flight when stop() comes publishes nothing', async (t) => {
  let answer = (_value: string): void => {}
  const { generator, published } = harness(() => new Promise<string>((resolve) => { answer = resolve }), 0)
  const pending = generator.pull()
  await new Promise((resolve) => setImmediate(resolve))
  await generator.stop()
  answer('too late')
  t.same(await pending, { done: false, published: undefined })
  t.same(published, [])
})

t.test('an iterable without return() stops cleanly; an ended one stops the loop', async (t) => {
  const values = ['a', 'b']
  let i = 0
  const bare: Iterable<string> = { [Symbol.iterator]: () => ({ next: () => i < values.length ? { done: false, value: values[i++] as string } : { done: true, value: undefined } }) }
  const { generator, published, until } = harness(bare, 1)
  generator.start()
  await until(() => published.length === 2)
  t.same(await generator.pull(), { done: true })
  t.same(published, ['a', 'b'])
  await generator.stop()
})

t.test('an error from the loop goes to onError and the loop goes on', async (t) => {
  let n = 0
  const { generator, published, errors, until } = harness(() => {
    n++
    if (n === 2) throw new Error('tick 2')
    return n
  }, 2)
  generator.start()
  await until(() => published.length >= 2)
  await generator.stop()
  t.same(published.slice(0, 2), [1, 3])
  t.match(errors, [{ code: 'FST_PUSH_STREAM_SOURCE_FAILED', message: /tick 2/ }])
})

import t from 'tap'
import { MAX_JOINED_BYTES, joinFrames } from '../lib/hub.js'

const frame = (channel: string, text: string): { channel: string, frame: Buffer } => ({ channel, frame: Buffer.from(text) })

t.test('joinFrames keeps the frames of the given channels, in order, in as few buffers as fit', async (t) => {
  const frames = [frame('a', 'one\n\n'), frame('b', 'two\n\n'), frame('a', 'three\n\n')]
  t.same(joinFrames(frames, new Set(['a'])).map(String), ['one\n\nthree\n\n'])
  t.same(joinFrames(frames, new Set(['a', 'b'])).map(String), ['one\n\ntwo\n\nthree\n\n'])
  t.same(joinFrames(frames, new Set(['c'])), [], 'nothing for a group that subscribes to none of them')
  const only = joinFrames([frames[1] as { channel: string, frame: Buffer }], new Set(['b']))
  t.equal(only[0], frames[1]?.frame, 'a single frame is written as it is, not copied')
})

t.test('joinFrames splits at MAX_JOINED_BYTES and sends a larger frame alone', async (t) => {
  const third = Math.floor(MAX_JOINED_BYTES / 3)
  const frames = [0, 1, 2, 3].map((n) => frame('a', String(n).repeat(third)))
  const big = frame('a', 'B'.repeat(MAX_JOINED_BYTES + 1))
  const joined = joinFrames([...frames, big, frame('a', 'end')], new Set(['a']))
  t.same(joined.map((buffer) => buffer.length), [3 * third, third, MAX_JOINED_BYTES + 1, 3])
  t.ok(joined.every((buffer, i) => i === 2 || buffer.length <= MAX_JOINED_BYTES))
  t.equal(Buffer.concat(joined).toString(), [...frames, big, frame('a', 'end')].map((f) => f.frame.toString()).join(''), 'the same bytes, in order')
})

import t from 'tap'
import { randomMessages } from '../lib/random-source.js'

t.test('random messages: a nanoid id, a non-empty text and an ISO time', async (t) => {
  const before = Date.now()
  const messages = Array.from({ length: 1000 }, () => randomMessages())
  const after = Date.now()
  let wrong = 0
  for (const message of messages) {
    if (Object.keys(message).sort().join() !== 'id,text,time') wrong++
    if (typeof message.id !== 'string' || !/^[A-Za-z0-9_-]{21}$/.test(message.id)) wrong++
    if (typeof message.text !== 'string' || message.text.trim() === '') wrong++
    if (typeof message.time !== 'string' || !/^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/.test(message.time)) wrong++
    else if (new Date(message.time).toISOString() !== message.time) wrong++
    const time = Date.parse(message.time)
    if (!(time >= before && time <= after)) wrong++
  }
  t.equal(wrong, 0, 'every message has the documented shape')
  t.match(messages[0], { id: /^[A-Za-z0-9_-]{21}$/, text: /\S/, time: /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d\.\d{3}Z$/ })
  t.equal(new Set(messages.map((message) => message.id)).size, 1000, 'ids are unique over 1,000 calls')
  t.ok(new Set(messages.map((message) => message.text)).size > 1, 'the text varies')
  t.doesNotThrow(() => JSON.stringify(messages[0]), 'serializable with the default serialize')
})

import t from 'tap'
import { RecentKeys } from '../lib/recent-keys.js'

t.test('a key is found with its value within the window, and forgotten after it', async (t) => {
  const kept = new RecentKeys(60_000)
  t.equal(kept.find('a'), undefined, 'nothing before it is remembered')
  kept.remember('a', '1-0')
  kept.remember('b', '2-0')
  t.equal(kept.find('a'), '1-0')
  t.equal(kept.find('b'), '2-0')
  t.equal(kept.size, 2)

  // A window of 0 ms: every key has expired by the next look, and is let go of then.
  const none = new RecentKeys(0)
  none.remember('a', '1-0')
  none.remember('b', '2-0')
  t.equal(none.find('a'), undefined)
  t.equal(none.size, 0, 'the expired keys are forgotten, not only hidden')
})

// The example page's resumable Ask panel on two instances sharing Redis, run where a Chromium is installed and
// Redis answers (skipped, visibly, where either is missing; BROWSER_REQUIRED=1 or REDIS_REQUIRED=1 fail instead).
import t from 'tap'
import { skipUnlessRedis } from '../helpers/redis.js'
import { browserMissing } from './helpers.js'

const missing = browserMissing() ?? (skipUnlessRedis.skip || undefined)
if (missing === undefined) await import('./ask-redis.suite.js')
else t.plan(0, missing)

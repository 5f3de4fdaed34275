// The example page's Ask panel, run where a Chromium is installed (skipped, visibly, where none is).
import t from 'tap'
import { browserMissing } from './helpers.js'

const missing = browserMissing()
if (missing === undefined) await import('./ask.suite.js')
else t.plan(0, missing)

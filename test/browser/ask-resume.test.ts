// The example page's resumable Ask panel (reload, second tab, Stop for every tab), run where a Chromium is installed (skipped, visibly, where none is).
import t from 'tap'
import { browserMissing } from './helpers.js'

const missing = browserMissing()
if (missing === undefined) await import('./ask-resume.suite.js')
else t.plan(0, missing)

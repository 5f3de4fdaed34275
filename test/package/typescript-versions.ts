// The consumer fixtures type-checked against the packed declarations with TypeScript 5.9 and 7.0.
// Not part of `npm test` (it would double the packaging check's time): `npm run test:typescript`
// installs both into test/package/typescript/, a project of their own so that the root's tsc stays
// the version the project builds with, then runs this file; CI runs it once.
import t from 'tap'
import { existsSync } from 'node:fs'
import { join } from 'node:path'
import { checkAll, makeConsumer, root } from './consumer.js'

const modules = join(root, 'test', 'package', 'typescript', 'node_modules')
const versions = [
  { label: 'TypeScript 5.9', tsc: join(modules, 'typescript-5.9', 'bin', 'tsc') },
  { label: 'TypeScript 7.0', tsc: join(modules, 'typescript-7.0', 'bin', 'tsc') }
]
const missing = versions.filter(({ tsc }) => !existsSync(tsc)).map(({ label }) => label)
if (missing.length > 0) throw new Error(`${missing.join(' and ')} not installed in ${modules}: run \`npm run test:typescript\``)

const consumer = await makeConsumer(t)
for (const { label, tsc } of versions) {
  t.test(`the fixtures type-check with ${label}`, async (t) => {
    await checkAll(t, consumer, tsc, label)
  })
}

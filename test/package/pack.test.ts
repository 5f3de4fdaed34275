// The package as the registry would serve it: what `npm pack` puts in the tarball, its manifest,
// loading it from CommonJS, and what publint and attw find in it.
import t from 'tap'
import { readFileSync } from 'node:fs'
import { join } from 'node:path'
import { makeConsumer, manifest, root, run } from './consumer.js'

const consumer = await makeConsumer(t)
const bin = (name: string): string => join(root, 'node_modules', '.bin', name)

t.test('the tarball holds the build, the README and the licence, and no source maps', async (t) => {
  const { shipped, installed } = consumer
  for (const path of ['package.json', 'README.md', 'LICENSE', 'dist/index.js', 'dist/index.d.ts', 'dist/errors.d.ts', 'dist/redis/index.js', 'dist/redis/index.d.ts', 'dist/client/index.js', 'dist/client/index.d.ts']) {
    t.ok(shipped.includes(path), `ships ${path}`)
  }
  t.same(shipped.filter((path) => !/^dist\/|^(package\.json|README\.md|LICENSE)$/.test(path)), [], 'ships nothing outside dist/ but the manifest, README and licence')
  // Maps would point at lib/*.ts, which is not shipped; without them, stack traces name the shipped JS.
  t.same(shipped.filter((path) => path.endsWith('.map')), [], 'ships no .map file')
  const naming = shipped.filter((path) => /\.[cm]?js$/.test(path) && readFileSync(join(installed, path), 'utf8').includes('//# sourceMappingURL='))
  t.same(naming, [], 'no shipped script names a source map')
})

t.test('the packed manifest links the repository, runs no install script and states the Node versions', async (t) => {
  const json = JSON.parse(readFileSync(join(consumer.installed, 'package.json'), 'utf8')) as {
    repository?: unknown, homepage?: unknown, bugs?: unknown, scripts?: Record<string, string>, engines?: { node?: string }
  }
  const repo = 'https://github.com/fastify-push-stream/fastify-push-stream'
  t.same(json.repository, { type: 'git', url: `git+${repo}.git` })
  t.equal(json.homepage, `${repo}#readme`)
  t.same(json.bugs, { url: `${repo}/issues` })
  for (const hook of ['preinstall', 'install', 'postinstall', 'prepare']) t.equal(json.scripts?.[hook], undefined, `no ${hook} script`)
  // require(esm) works unflagged from Node 20.19 and 22.12; CI runs Node 20 and 24.
  t.equal(json.engines?.node, '^20.19.0 || >=22.12.0')
})

t.test('CommonJS loads the package through require(esm) on this Node', async (t) => {
  const script = [
    `const main = require('${manifest.name}')`,
    `const redis = require('${manifest.name}/redis')`,
    'if (typeof main.default !== "function" || main.default !== main.pushStream) throw new Error("no plugin function")',
    'if (typeof main.FST_PUSH_STREAM_INVALID_CHANNEL !== "function") throw new Error("no error constructor")',
    'if (typeof redis.redisAdapter !== "function") throw new Error("no redisAdapter")',
    'process.stdout.write("loaded")'
  ].join('\n')
  const loaded = await run(process.execPath, ['--no-warnings', '-e', script], consumer.dir)
  t.same(loaded, { code: 0, output: 'loaded' }, `require() of the package on Node ${process.version}`)
})

t.test('publint finds nothing in the tarball, suggestions included', async (t) => {
  const linted = await run(bin('publint'), ['--strict', '--level', 'suggestion', consumer.tarball], consumer.dir)
  t.equal(linted.code, 0, 'publint --strict exits 0', { output: linted.output })
  t.match(linted.output, /All good!/, 'and reports nothing', { output: linted.output })
})

t.test('attw finds nothing but the two findings that stand', async (t) => {
  // The node16 profile leaves out moduleResolution node10, which knows no `exports` (so no subpath
  // resolves) and which TypeScript 6 deprecates. cjs-resolves-to-esm: the package is ESM only, and
  // CommonJS loads it by require(esm), which the test above runs.
  const args = [consumer.tarball, '--profile', 'node16', '--ignore-rules', 'cjs-resolves-to-esm', '--format', 'ascii', '--no-color', '--no-emoji']
  const checked = await run(bin('attw'), args, consumer.dir)
  t.equal(checked.code, 0, 'attw exits 0', { output: checked.output })
  for (const entry of ['"fastify-push-stream"', '"fastify-push-stream/client"', '"fastify-push-stream/redis"']) {
    t.ok(checked.output.includes(entry), `checked the entry point ${entry}`)
  }
})

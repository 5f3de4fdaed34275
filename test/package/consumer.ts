// A consumer project whose only copy of the package is the packed tarball, for the test/package/ checks.
import { execFile } from 'node:child_process'
import { copyFileSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { dirname, join } from 'node:path'
import { fileURLToPath } from 'node:url'
import type { Test } from 'tap'

export const root = fileURLToPath(new URL('../../', import.meta.url))
const fixtures = fileURLToPath(new URL('./fixtures/', import.meta.url))

/** The project's own compiler, the one it builds with. */
export const projectTsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')

export const manifest = JSON.parse(readFileSync(join(root, 'package.json'), 'utf8')) as {
  name: string
  dependencies: Record<string, string>
  peerDependencies: Record<string, string>
}

export interface Run { code: number, output: string }

/**
 * Runs a command to its end; never rejects, so a failure shows its output in the assertion. It runs
 * through `env -u NODE_OPTIONS`: tap adds its process-tracking loader to every child's NODE_OPTIONS,
 * which TypeScript 7's ES module tsc cannot load under and which slows the others.
 */
export function run (file: string, args: string[], cwd: string): Promise<Run> {
  return new Promise((resolve) => {
    execFile('env', ['-u', 'NODE_OPTIONS', file, ...args], { cwd, maxBuffer: 16 * 1024 * 1024 }, (error, stdout, stderr) => {
      const code = error === null ? 0 : typeof error.code === 'number' ? error.code : 1
      resolve({ code, output: `${stdout}${stderr}`.trim() })
    })
  })
}

export interface Consumer {
  /** The packed .tgz. */
  tarball: string
  /** Paths in the tarball, relative to the package root. */
  shipped: string[]
  /** The consumer project's folder. */
  dir: string
  /** The unpacked package, in the consumer's node_modules. */
  installed: string
  /** One tsconfig per module setting and side, relative to `dir`. */
  configs: string[]
}

interface PackResult { filename: string, files: Array<{ path: string }> }

/**
 * The module settings a consumer may have; `commonjs` where `import x = require()` of an ES module
 * type-checks (node16 refuses it: Node 16 had no require(esm)). The server side has Node's types and
 * no DOM; the browser client's types need the DOM.
 */
const modes = [
  { name: 'nodenext', module: 'nodenext', moduleResolution: 'nodenext', commonjs: true },
  { name: 'node16', module: 'node16', moduleResolution: 'node16', commonjs: false },
  { name: 'bundler-esnext', module: 'esnext', moduleResolution: 'bundler', commonjs: false },
  { name: 'bundler-preserve', module: 'preserve', moduleResolution: 'bundler', commonjs: true }
]

/**
 * Packs the project as it was last built (`npm test` builds first; packing with prepack would
 * rebuild dist/ while other test files read it), unpacks it into a fresh consumer and links the
 * packages its code and declarations import: dependencies, peers and Node's types. Removed in teardown.
 */
export async function makeConsumer (t: Test): Promise<Consumer> {
  if (!existsSync(join(root, 'dist', 'index.js'))) throw new Error('dist/ is not built: run `npm run build` before the package tests')
  const work = mkdtempSync(join(tmpdir(), 'push-stream-pack-'))
  t.teardown(() => rmSync(work, { recursive: true, force: true }))

  const packed = await run('npm', ['pack', '--ignore-scripts', '--json', '--pack-destination', work], root)
  if (packed.code !== 0) throw new Error(`npm pack failed:\n${packed.output}`)
  const [pack] = JSON.parse(packed.output.slice(packed.output.indexOf('['))) as PackResult[]
  const tarball = join(work, pack.filename)

  const dir = join(work, 'consumer')
  const installed = join(dir, 'node_modules', manifest.name)
  mkdirSync(installed, { recursive: true })
  const unpacked = await run('tar', ['-xzf', tarball, '-C', installed, '--strip-components=1'], work)
  if (unpacked.code !== 0) throw new Error(`could not unpack ${tarball}:\n${unpacked.output}`)
  for (const name of [...Object.keys(manifest.dependencies), ...Object.keys(manifest.peerDependencies), '@types/node']) {
    const link = join(dir, 'node_modules', name)
    mkdirSync(dirname(link), { recursive: true })
    symlinkSync(join(root, 'node_modules', name), link, 'junction')
  }
  writeFileSync(join(dir, 'package.json'), JSON.stringify({ name: 'consumer', private: true, type: 'module' }))
  mkdirSync(join(dir, 'src'))
  for (const file of ['server.ts', 'commonjs.cts', 'client.ts', 'client.cts']) copyFileSync(join(fixtures, file), join(dir, 'src', file))

  const configs: string[] = []
  for (const mode of modes) {
    // skipLibCheck stays off, so the package's declarations are checked; TypeScript's own lib files are not.
    const base = { module: mode.module, moduleResolution: mode.moduleResolution, target: 'es2022', strict: true, noEmit: true, skipLibCheck: false, skipDefaultLibCheck: true }
    const sides = [
      { side: 'server', files: mode.commonjs ? ['src/server.ts', 'src/commonjs.cts'] : ['src/server.ts'], lib: ['es2023'], types: ['node'] },
      { side: 'client', files: mode.commonjs ? ['src/client.ts', 'src/client.cts'] : ['src/client.ts'], lib: ['es2023', 'dom'], types: [] }
    ]
    for (const { side, files, lib, types } of sides) {
      const config = `tsconfig.${mode.name}.${side}.json`
      writeFileSync(join(dir, config), JSON.stringify({ compilerOptions: { ...base, lib, types }, files }, null, 2))
      configs.push(config)
    }
  }
  return { tarball, shipped: pack.files.map((file) => file.path), dir, installed, configs }
}

/** Type-checks every project of the consumer with one compiler, two at a time (the checks are CPU-bound). */
export async function checkAll (t: Test, consumer: Consumer, tsc: string, label: string): Promise<void> {
  const queue = [...consumer.configs]
  const results = new Map<string, Run>()
  const worker = async (): Promise<void> => {
    for (let config = queue.shift(); config !== undefined; config = queue.shift()) {
      results.set(config, await run(process.execPath, [tsc, '-p', config, '--pretty', 'false'], consumer.dir))
    }
  }
  await Promise.all([worker(), worker()])
  for (const config of consumer.configs) {
    t.same(results.get(config), { code: 0, output: '' }, `${label}: ${config} type-checks without skipLibCheck`)
  }
}

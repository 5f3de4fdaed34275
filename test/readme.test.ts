import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

// Every TypeScript example of the README compiles against the built package,
// imported by its published name, as a user would write it.

const root = fileURLToPath(new URL('..', import.meta.url))

/** The README's ```ts blocks, each a complete module. */
export function typeScriptBlocks (markdown: string): string[] {
  return [...markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((match) => match[1] as string)
}

t.test('every TypeScript block of the README type-checks as a module of its own', async (t) => {
  const blocks = typeScriptBlocks(await readFile(join(root, 'README.md'), 'utf8'))
  t.ok(blocks.length >= 3, `the README has TypeScript examples (${blocks.length})`)
  // Inside the package's folder, so `fastify-push-stream` resolves to the package itself through its exports.
  const dir = await mkdtemp(join(root, '.readme-check-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const files = blocks.map((_, i) => `example-${i + 1}.ts`)
  await Promise.all(blocks.map((block, i) => writeFile(join(dir, files[i] as string), `${block}\nexport {}\n`)))
  await writeFile(join(dir, 'tsconfig.json'), JSON.stringify({
    compilerOptions: {
      target: 'ES2022',
      module: 'NodeNext',
      moduleResolution: 'NodeNext',
      lib: ['ES2023', 'DOM'],
      types: ['node'],
      strict: true,
      noEmit: true,
      skipLibCheck: true
    },
    files
  }))
  const tsc = join(root, 'node_modules', 'typescript', 'bin', 'tsc')
  const result = await promisify(execFile)(process.execPath, [tsc, '-p', dir], { cwd: root }).then(
    () => ({ ok: true, output: '' }),
    (error: { stdout?: string }) => ({ ok: false, output: error.stdout ?? String(error) })
  )
  t.ok(result.ok, 'tsc found no error')
  // Block numbers in the output, for finding the example that broke.
  if (!result.ok) t.comment(result.output)
})

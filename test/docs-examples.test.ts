import t from 'tap'
import { execFile } from 'node:child_process'
import { mkdtemp, readFile, readdir, rm, writeFile } from 'node:fs/promises'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { promisify } from 'node:util'

// Every TypeScript example of the README and of the docs pages compiles
// against the built package, imported by its published name, as a user would write it.

const root = fileURLToPath(new URL('..', import.meta.url))

/** The ```ts blocks of a markdown page, each a complete module. */
export function typeScriptBlocks (markdown: string): string[] {
  return [...markdown.matchAll(/^```ts\n([\s\S]*?)^```$/gm)].map((match) => match[1] as string)
}

t.test('every TypeScript block of the README and the docs type-checks as a module of its own', async (t) => {
  const pages = ['README.md', ...(await readdir(join(root, 'docs'))).filter((name) => name.endsWith('.md')).map((name) => `docs/${name}`)]
  const blocks: string[] = []
  const origins: string[] = []
  for (const page of pages) {
    const found = typeScriptBlocks(await readFile(join(root, page), 'utf8'))
    found.forEach((block, i) => { blocks.push(block); origins.push(`${page} block ${i + 1}`) })
  }
  t.ok(typeScriptBlocks(await readFile(join(root, 'README.md'), 'utf8')).length >= 3, 'the README has TypeScript examples')
  // Inside the package's folder, so `fastify-push-stream` resolves to the package itself through its exports.
  const dir = await mkdtemp(join(root, '.readme-check-'))
  t.teardown(() => rm(dir, { recursive: true, force: true }))
  const files = blocks.map((_, i) => `example-${i + 1}.ts`)
  t.comment(files.map((file, i) => `${file}: ${origins[i] as string}`).join('\n'))
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
  // File names in the output lead to the page and block listed above.
  if (!result.ok) t.comment(result.output)
})

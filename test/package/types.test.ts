// The consumer fixtures (test/package/fixtures/) type-checked against the packed declarations with
// the project's TypeScript, under each module setting, without skipLibCheck.
import t from 'tap'
import { writeFileSync } from 'node:fs'
import { join } from 'node:path'
import { checkAll, makeConsumer, manifest, projectTsc, run } from './consumer.js'

const consumer = await makeConsumer(t)

t.test('the fixtures type-check with the project\'s TypeScript', async (t) => {
  await checkAll(t, consumer, projectTsc, 'TypeScript 6.0')
})

t.test('a consumer that misuses the types fails the check', async (t) => {
  // Guards the check above against passing vacuously: a narrowed error's code is not another code,
  // even with skipLibCheck on, where error constructors typed through @fastify/error became `any`.
  writeFileSync(join(consumer.dir, 'src', 'broken.ts'), [
    `import { FST_PUSH_STREAM_INVALID_CHANNEL } from '${manifest.name}'`,
    'export function code (err: unknown): string {',
    '  if (err instanceof FST_PUSH_STREAM_INVALID_CHANNEL) { const c: \'FST_PUSH_STREAM_CLOSED\' = err.code; return c }',
    '  return \'\'',
    '}'
  ].join('\n'))
  writeFileSync(join(consumer.dir, 'tsconfig.broken.json'), JSON.stringify({
    compilerOptions: { module: 'nodenext', moduleResolution: 'nodenext', strict: true, noEmit: true, skipLibCheck: true, types: ['node'] },
    files: ['src/broken.ts']
  }))
  const checked = await run(process.execPath, [projectTsc, '-p', 'tsconfig.broken.json', '--pretty', 'false'], consumer.dir)
  t.not(checked.code, 0, 'tsc fails')
  t.match(checked.output, /error TS2322: Type '"FST_PUSH_STREAM_INVALID_CHANNEL"' is not assignable to type '"FST_PUSH_STREAM_CLOSED"'/)
})

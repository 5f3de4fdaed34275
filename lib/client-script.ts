import { createHash } from 'node:crypto'
import { existsSync, readFileSync } from 'node:fs'
import { fileURLToPath } from 'node:url'
import type { FastifyReply, FastifyRequest } from 'fastify'
import { FST_PUSH_STREAM_CLIENT_MISSING } from './errors.js'

/** The built browser client, read once, with the headers it is served with. */
export interface ClientScript {
  body: Buffer
  etag: string
}

/**
 * Where the built client may be: beside this module once built (`dist/`), or
 * in `dist/` when this module runs from its TypeScript source.
 */
export const CLIENT_CANDIDATES: readonly URL[] = [
  new URL('./client/index.js', import.meta.url),
  new URL('../dist/client/index.js', import.meta.url)
]

/** Reads the first candidate that exists; throws `FST_PUSH_STREAM_CLIENT_MISSING` when none does. */
export function loadClientScript (candidates: readonly URL[] = CLIENT_CANDIDATES): ClientScript {
  const found = candidates.find((url) => existsSync(url))
  if (found === undefined) {
    throw new FST_PUSH_STREAM_CLIENT_MISSING(candidates.map((url) => fileURLToPath(url)).join(', '))
  }
  const body = readFileSync(found)
  const etag = `"${createHash('sha256').update(body).digest('base64url').slice(0, 27)}"`
  return { body, etag }
}

/** The GET handler for `<path>/client.js`: cached for a day, revalidated by ETag. */
export function clientScriptHandler (script: ClientScript) {
  return async function clientScript (request: FastifyRequest, reply: FastifyReply): Promise<Buffer | undefined> {
    reply.header('cache-control', 'public, max-age=86400')
    reply.header('etag', script.etag)
    if (request.headers['if-none-match'] === script.etag) {
      reply.code(304)
      return undefined
    }
    reply.type('text/javascript; charset=utf-8')
    return script.body
  }
}

import { Writable } from 'node:stream'

/** One line a Fastify (pino) logger wrote. */
export interface LogLine {
  level: number
  msg: string
  err?: { code?: string, message?: string, [key: string]: unknown }
  [key: string]: unknown
}

/**
 * A writable that keeps every JSON line a Fastify logger writes to it, and
 * the text as written. `logger` is the Fastify `logger` option that writes
 * here at `level`.
 */
export class LogCapture extends Writable {
  readonly lines: LogLine[] = []
  /** Everything written, as text. */
  text = ''
  readonly #level: string

  constructor (level = 'info') {
    super()
    this.#level = level
  }

  get logger (): { level: string, stream: LogCapture } {
    return { level: this.#level, stream: this }
  }

  override _write (chunk: Buffer, _encoding: string, callback: () => void): void {
    this.text += String(chunk)
    for (const line of String(chunk).split('\n')) {
      if (line !== '') this.lines.push(JSON.parse(line) as LogLine)
    }
    callback()
  }

  /** The logged error objects whose `code` is `code`. */
  errorsWithCode (code: string): Array<Record<string, unknown>> {
    return this.lines
      .map((line) => line.err as Record<string, unknown> | undefined)
      .filter((err): err is Record<string, unknown> => err !== undefined && err.code === code)
  }
}

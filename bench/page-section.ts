// A section of docs/benchmarks.md between two markers: written by the run that measures it, and kept
// as it is when another run rewrites the page, so each scenario can be rerun alone.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'

/** Where a page without the markers gets the section: before this heading, or at the end. */
const BEFORE_HEADING = '## CPU profile of the burst'

export class PageSection {
  readonly #start: string
  readonly #end: string
  readonly #placeholder: string

  /** `name` makes the markers (`<!-- name:start -->`); `placeholder` stands in until a run writes the section. */
  constructor (name: string, placeholder: string) {
    this.#start = `<!-- ${name}:start -->`
    this.#end = `<!-- ${name}:end -->`
    this.#placeholder = placeholder
  }

  /** The section between the markers of `text`, or undefined when it has none. */
  read (text: string): string | undefined {
    const start = text.indexOf(this.#start)
    const end = text.indexOf(this.#end)
    return start !== -1 && end > start ? text.slice(start + this.#start.length, end).trim() : undefined
  }

  /** The section a full rewrite of the page keeps: the one already in `mdPath`, or the placeholder. */
  kept (mdPath: string): string {
    return (existsSync(mdPath) ? this.read(readFileSync(mdPath, 'utf8')) : undefined) ?? this.#placeholder
  }

  /** The section with its markers, as it stands in the page. */
  marked (section: string): string {
    return `${this.#start}\n${section}\n${this.#end}`
  }

  /** Rewrites only this section of `mdPath` (added before the profile, or at the end, if it has none). */
  write (section: string, mdPath: string): string {
    const marked = this.marked(section)
    const old = existsSync(mdPath) ? readFileSync(mdPath, 'utf8') : '# Benchmarks\n'
    const start = old.indexOf(this.#start)
    const end = old.indexOf(this.#end)
    let text: string
    if (start !== -1 && end > start) {
      text = old.slice(0, start) + marked + old.slice(end + this.#end.length)
    } else {
      const at = old.indexOf(BEFORE_HEADING)
      text = at === -1 ? `${old.trimEnd()}\n\n${marked}\n` : `${old.slice(0, at)}${marked}\n\n${old.slice(at)}`
    }
    writeFileSync(mdPath, text)
    return mdPath
  }
}

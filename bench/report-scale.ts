// The scale section of docs/benchmarks.md: written by `npm run bench -- --scale`, kept by the other runs.
import { existsSync, readFileSync, writeFileSync } from 'node:fs'

const START = '<!-- scale:start -->'
const END = '<!-- scale:end -->'
const BEFORE_HEADING = '## CPU profile of the burst'
const PLACEHOLDER = '## 100,000 streams on one process\n\nNot measured yet: `npm run bench -- --scale` writes this section.'

/** The section a rewrite of the page keeps: the one already in `mdPath`, or a placeholder. */
export function keptScale (mdPath: string): string {
  if (!existsSync(mdPath)) return PLACEHOLDER
  const text = readFileSync(mdPath, 'utf8')
  const start = text.indexOf(START)
  const end = text.indexOf(END)
  return start !== -1 && end > start ? text.slice(start + START.length, end).trim() : PLACEHOLDER
}

/** The section with its markers, as it stands in the page. */
export function markedScale (section: string): string {
  return `${START}\n${section}\n${END}`
}

/** Rewrites only the scale section of `mdPath` (added before the profile, or at the end, if it has none). */
export function writeScaleSection (section: string, mdPath: string): string {
  const marked = markedScale(section)
  const old = existsSync(mdPath) ? readFileSync(mdPath, 'utf8') : '# Benchmarks\n'
  const start = old.indexOf(START)
  const end = old.indexOf(END)
  let text: string
  if (start !== -1 && end > start) {
    text = old.slice(0, start) + marked + old.slice(end + END.length)
  } else {
    const at = old.indexOf(BEFORE_HEADING)
    text = at === -1 ? `${old.trimEnd()}\n\n${marked}\n` : `${old.slice(0, at)}${marked}\n\n${old.slice(at)}`
  }
  writeFileSync(mdPath, text)
  return mdPath
}

// The scale section of docs/benchmarks.md: written by `npm run bench -- --scale`, kept by the other runs.
import { PageSection } from './page-section.js'

const SECTION = new PageSection('scale', '## 100,000 streams on one process\n\nNot measured yet: `npm run bench -- --scale` writes this section.')

/** The section a rewrite of the page keeps: the one already in `mdPath`, or a placeholder. */
export function keptScale (mdPath: string): string {
  return SECTION.kept(mdPath)
}

/** The section with its markers, as it stands in the page. */
export function markedScale (section: string): string {
  return SECTION.marked(section)
}

/** Rewrites only the scale section of `mdPath`. */
export function writeScaleSection (section: string, mdPath: string): string {
  return SECTION.write(section, mdPath)
}

// The README is also the package's page on the npm registry, where a relative link or image leads
// nowhere: every link must be absolute (https://) or an anchor of the README itself.
import t from 'tap'
import { readFileSync } from 'node:fs'

const readme = readFileSync(new URL('../../README.md', import.meta.url), 'utf8')

/** The README without fenced code blocks and code spans, whose brackets are not links. */
const prose = readme
  .replace(/^( {0,3})(```|~~~)[^\n]*\n[\s\S]*?^\1\2[^\n]*$/gm, '')
  .replace(/(`+)[\s\S]*?\1/g, '')

/** Every link target: inline links and images, reference definitions, autolinks, HTML href and src. */
function targets (text: string): string[] {
  const found: string[] = []
  for (const m of text.matchAll(/!?\[(?:[^\]\\]|\\.)*\]\(\s*<?([^)\s>]*)>?(?:\s+["'(][^)]*)?\)/g)) found.push(m[1])
  for (const m of text.matchAll(/^ {0,3}\[[^\]]+\]:\s*<?(\S+?)>?(?:\s|$)/gm)) found.push(m[1])
  for (const m of text.matchAll(/<((?:https?|ftp|mailto):[^>\s]+)>/g)) found.push(m[1])
  for (const m of text.matchAll(/\b(?:href|src)\s*=\s*["']([^"']*)["']/g)) found.push(m[1])
  return found
}

/** The anchors GitHub gives the README's headings: lower case, punctuation dropped, spaces to hyphens, repeats numbered. */
function anchors (text: string): Set<string> {
  const seen = new Map<string, number>()
  const result = new Set<string>()
  for (const m of text.matchAll(/^ {0,3}#{1,6}[ \t]+(.+?)[ \t#]*$/gm)) {
    const plain = m[1].replace(/!?\[([^\]]*)\]\([^)]*\)/g, '$1').replace(/<[^>]+>/g, '')
    const slug = plain.toLowerCase().replace(/[^\p{L}\p{N}\p{M}\s_-]/gu, '').replace(/\s/g, '-')
    const count = seen.get(slug) ?? 0
    seen.set(slug, count + 1)
    result.add(count === 0 ? slug : `${slug}-${count}`)
  }
  return result
}

// The README is also the package's page on the registry, where relative links lead nowhere.
t.test('every README link is absolute or an in-page anchor', async (t) => {
  const links = targets(prose)
  t.ok(links.length > 0, 'the README has links')
  t.same(links.filter((link) => !/^https:\/\/[^/\s]+/.test(link) && !link.startsWith('#')), [], 'no relative or non-https link')
  const known = anchors(prose)
  t.same(links.filter((link) => link.startsWith('#') && !known.has(decodeURIComponent(link.slice(1)))), [], 'every anchor names a heading')
})

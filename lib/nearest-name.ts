/** How many edits a misspelt name may be from the name meant and still be suggested. */
export const MAX_SUGGESTION_DISTANCE = 2

/**
 * The number of single-character insertions, deletions, substitutions and
 * swaps of two neighbours that turn `a` into `b` (optimal string alignment).
 */
export function editDistance (a: string, b: string): number {
  // d[i][j] is the distance between the first i characters of a and the first j of b.
  const d: number[][] = []
  for (let i = 0; i <= a.length; i++) {
    d.push([i])
    for (let j = 1; j <= b.length; j++) {
      if (i === 0) {
        d[i][j] = j
        continue
      }
      const cost = a[i - 1] === b[j - 1] ? 0 : 1
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost)
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1)
      }
    }
  }
  return d[a.length][b.length]
}

/**
 * The name in `names` that `given` was most likely meant to be: one that
 * differs only in case, else the closest within `MAX_SUGGESTION_DISTANCE`
 * edits (the first listed on a tie); undefined when none is that close.
 */
export function nearestName (given: string, names: readonly string[]): string | undefined {
  const lower = given.toLowerCase()
  const sameLetters = names.find((name) => name.toLowerCase() === lower)
  if (sameLetters !== undefined) return sameLetters
  let nearest: string | undefined
  let distance = MAX_SUGGESTION_DISTANCE + 1
  for (const name of names) {
    const d = editDistance(lower, name.toLowerCase())
    if (d < distance) {
      nearest = name
      distance = d
    }
  }
  return nearest
}

/** Three significant figures at most, without exponent notation; a dash when there is no figure. */
export function num (value: number): string {
  if (!Number.isFinite(value)) return '–'
  const abs = Math.abs(value)
  if (abs >= 100) return Math.round(value).toLocaleString('en-US')
  if (abs >= 10) return value.toFixed(1)
  return value.toFixed(2)
}

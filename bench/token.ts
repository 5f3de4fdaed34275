/** Digits of a token's index: enough for the largest source the benchmark makes (a stalled client's). */
const DIGITS = 8
/** What follows the index, so a token is 20 bytes, about what a language model streams per chunk. */
const TEXT = ' lorem ipsum'

/** Bytes of one token. */
export const TOKEN_BYTES = DIGITS + TEXT.length

/** Bytes of one token framed as an event of its own (`data: <token>\n\n`), as every server in the benchmark sends it. */
export const TOKEN_FRAME_BYTES = 'data: \n\n'.length + TOKEN_BYTES

/** The `index`-th token of a stream: its index, zero-padded, then text. */
export function tokenText (index: number): string {
  return String(index).padStart(DIGITS, '0') + TEXT
}

/** The index a token carries, or -1 when `data` is not a token. */
export function tokenIndex (data: string): number {
  if (data.length !== TOKEN_BYTES || !data.endsWith(TEXT)) return -1
  const index = Number(data.slice(0, DIGITS))
  return Number.isInteger(index) ? index : -1
}

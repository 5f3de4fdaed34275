/**
 * A small incremental parser for `text/event-stream` text: lines end with
 * CRLF, LF or a lone CR; a blank line dispatches the event if it had data,
 * with its `event` name ('' when it has none); comments and other fields are
 * read and ignored. Only what the load clients need, but by the spec's rules,
 * so no server is judged on a lenient reading of its bytes.
 */
export class SseParser {
  readonly #onData: (data: string, event: string) => void
  #rest = ''
  #data: string | undefined
  #event = ''
  #pendingCr = false

  constructor (onData: (data: string, event: string) => void) {
    this.#onData = onData
  }

  /** Feeds decoded text; complete events are dispatched at once. */
  push (chunk: string): void {
    let text = chunk
    // A CR that ended the previous chunk and an LF starting this one are one line end.
    if (this.#pendingCr && text.charCodeAt(0) === 10) text = text.slice(1)
    this.#pendingCr = false
    if (this.#rest !== '') text = this.#rest + text
    this.#rest = ''
    let pos = 0
    const fast = text.indexOf('\r') === -1
    while (pos < text.length) {
      let end: number
      let next: number
      if (fast) {
        end = text.indexOf('\n', pos)
        next = end + 1
      } else {
        end = pos
        while (end < text.length && text.charCodeAt(end) !== 10 && text.charCodeAt(end) !== 13) end++
        if (end === text.length) end = -1
        next = end + 1
        if (end !== -1 && text.charCodeAt(end) === 13) {
          if (end + 1 === text.length) this.#pendingCr = true
          else if (text.charCodeAt(end + 1) === 10) next++
        }
      }
      if (end === -1) {
        this.#rest = text.slice(pos)
        return
      }
      this.#line(text, pos, end)
      pos = next
    }
  }

  #line (text: string, start: number, end: number): void {
    if (start === end) {
      if (this.#data !== undefined) this.#onData(this.#data, this.#event)
      this.#data = undefined
      this.#event = ''
      return
    }
    if (text.charCodeAt(start) === 58) return // ':' starts a comment
    const colon = text.indexOf(':', start)
    const hasValue = colon !== -1 && colon < end
    const name = text.slice(start, hasValue ? colon : end)
    if (name !== 'data' && name !== 'event') return
    let valueStart = hasValue ? colon + 1 : end
    if (text.charCodeAt(valueStart) === 32 && valueStart < end) valueStart++
    const value = text.slice(valueStart, end)
    if (name === 'event') this.#event = value
    else this.#data = this.#data === undefined ? value : this.#data + '\n' + value
  }
}

/**
 * Waits for `test`: a condition, checked at once and then after each turn of
 * the event loop until it holds, or a promise, awaited (and its value
 * returned). Fails after `ms` with `what` (or, for a text known only by then,
 * what the function `what` returns).
 */
export function waitFor<T> (test: Promise<T>, what: string | (() => string), ms?: number): Promise<T>
export function waitFor (test: () => boolean, what: string | (() => string), ms?: number): Promise<void>
export async function waitFor<T> (test: Promise<T> | (() => boolean), what: string | (() => string), ms = 10_000): Promise<T | void> {
  const timedOut = (): Error => new Error(`timed out after ${ms} ms waiting for ${typeof what === 'string' ? what : what()}`)
  if (typeof test !== 'function') {
    let timer: NodeJS.Timeout | undefined
    const timeout = new Promise<never>((_resolve, reject) => {
      timer = setTimeout(() => reject(timedOut()), ms)
    })
    try {
      return await Promise.race([test, timeout])
    } finally {
      clearTimeout(timer)
    }
  }
  const deadline = performance.now() + ms
  while (!test()) {
    if (performance.now() > deadline) throw timedOut()
    await new Promise((resolve) => setImmediate(resolve))
  }
}

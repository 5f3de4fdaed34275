import type { Test } from 'tap'
import type { SourceContext } from '../../lib/index.js'
import { waitFor } from './wait.js'

/** When a source's `finally` ran, and the reason its signal carried then. */
export interface Release { at: number, reason: unknown }

/**
 * A `reply.sse` source that yields one item, then awaits a promise only its
 * signal can settle: `started` once it waits, `released` once its `finally` ran.
 */
export function hangingSource (): { source: (context: SourceContext) => AsyncGenerator<string>, started: Promise<void>, released: Promise<Release> } {
  let started = (): void => {}
  let release = (_value: Release): void => {}
  return {
    started: new Promise<void>((resolve) => { started = resolve }),
    released: new Promise<Release>((resolve) => { release = resolve }),
    source: async function * ({ signal }: SourceContext): AsyncGenerator<string> {
      try {
        yield 'first'
        started()
        await new Promise((_resolve, reject) => {
          signal.addEventListener('abort', () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted')), { once: true })
        })
        yield 'never'
      } finally {
        release({ at: performance.now(), reason: signal.reason })
      }
    }
  }
}

/**
 * Asserts that the source was released with a signal reason of `code`; with
 * `withinMs`, also that its `finally` ran within that long of `endedAt`
 * (only fair where no other suite shares the cores: the timed suites).
 */
export async function assertReleased (
  t: Test,
  released: Promise<Release>,
  code: string,
  timing?: { endedAt: number, withinMs: number }
): Promise<void> {
  const { at, reason } = await waitFor(released, 'the source\'s finally')
  t.equal((reason as { code?: string }).code, code, 'the signal\'s reason names the way it ended')
  t.ok(reason instanceof Error, 'the reason is an error')
  if (timing !== undefined) t.ok(at - timing.endedAt < timing.withinMs, `finally ran ${(at - timing.endedAt).toFixed(1)} ms after the end`)
}

/**
 * A source of `count` tokens (`'token 1'`…) that yields each only once the
 * test lets it (`state.step(n)`), awaiting a promise its signal rejects; it
 * counts its starts and the runs of its `finally`, with the signal's reason.
 */
export function steppedSource (count: number) {
  let allowed = 0
  let wake = (): void => {}
  const state = {
    starts: 0,
    released: 0,
    reason: undefined as unknown,
    /** Lets the source yield `n` more tokens. */
    step: (n = 1): void => { allowed += n; wake() }
  }
  const source = async function * ({ signal }: SourceContext): AsyncGenerator<string> {
    state.starts++
    try {
      for (let i = 1; i <= count; i++) {
        for (;;) {
          if (allowed >= i) break
          await new Promise<void>((resolve, reject) => {
            wake = resolve
            signal.addEventListener('abort', () => reject(signal.reason instanceof Error ? signal.reason : new Error('aborted')), { once: true })
          })
        }
        yield `token ${i}`
      }
    } finally {
      state.released++
      state.reason = signal.reason
    }
  }
  return { state, source }
}

/** The part of a tap test that the helpers need: a way to clean up after it. */
export interface Teardown {
  teardown: (fn: () => unknown) => void
}

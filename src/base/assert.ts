/** Thrown when an internal invariant does not hold: a bug in stratadb, never a user error. */
export class AssertionError extends Error {
  constructor(message: string) {
    super(`stratadb invariant violated: ${message}`)
    this.name = 'AssertionError'
  }
}

/** Fails loudly when an invariant does not hold. */
export function assert(condition: unknown, message: string): asserts condition {
  if (!condition) throw new AssertionError(message)
}

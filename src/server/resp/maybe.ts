/** Helpers for values that are sometimes ready now and sometimes later. */

/** A value now, or a promise of it. */
export type MaybePromise<T> = T | Promise<T>

/** True for native promises and other thenables. */
export function isPromise<T>(value: MaybePromise<T>): value is Promise<T> {
  return typeof (value as { then?: unknown } | null)?.then === 'function'
}

/** Applies `fn` now when `value` is ready, else after it resolves: avoids a microtask per call on hot paths. */
export function andThen<T, U>(value: MaybePromise<T>, fn: (v: T) => MaybePromise<U>): MaybePromise<U> {
  return isPromise(value) ? value.then(fn) : fn(value)
}

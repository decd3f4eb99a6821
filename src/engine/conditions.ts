import { ConflictError } from '../base/errors.js'
import type { KeyRange } from '../base/entry.js'
import type { Condition } from './write-group.js'

/** What checking conditions needs to read: the applied state. */
export interface ConditionReader {
  /** Sequence of the newest applied write (durable or not yet). */
  readonly lastSequence: number
  /** Sequence of the write that produced the key's value; 0 when absent or deleted. */
  versionOf(key: Buffer, sequence: number): number
  /** The first key in `range` with any entry newer than `sinceSequence`, if one exists. */
  firstChangeSince(range: KeyRange, sinceSequence: number): Buffer | undefined
}

/**
 * Checks one write's conditions against the applied state, which holds every
 * write issued before it: writes are applied in queue order, each right after
 * the conditions of the ones before it. Returns a STRATA_CONFLICT naming the
 * keys whose condition does not hold, or undefined when all hold. Throws a
 * read error (corruption) as is.
 */
export function checkConditions(conditions: readonly Condition[], reader: ConditionReader): ConflictError | undefined {
  const failed: Buffer[] = []
  for (const c of conditions) {
    if (c.type === 'key') {
      if (reader.versionOf(c.key, reader.lastSequence) !== c.version) failed.push(c.key)
    } else {
      const changed = reader.firstChangeSince(c.range, c.sinceSequence)
      if (changed !== undefined) failed.push(changed)
    }
  }
  return failed.length > 0 ? new ConflictError(failed) : undefined
}

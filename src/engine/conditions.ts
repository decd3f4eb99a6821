import { ConflictError } from '../base/errors.js'
import { inRange, type KeyRange } from '../iterators/db-iterator.js'
import type { Condition, PendingWrite } from './write-group.js'

/** What checking conditions needs to read: the applied state. */
export interface ConditionReader {
  readonly lastSequence: number
  /** Sequence of the write that produced the key's value; 0 when absent or deleted. */
  versionOf(key: Buffer, sequence: number): number
  /** The first key in `range` with any entry newer than `sinceSequence`, if one exists. */
  firstChangeSince(range: KeyRange, sinceSequence: number): Buffer | undefined
}

type Overlay = Map<string, { key: Buffer; version: number }>

/**
 * Checks the conditions of a group's writes in queue order, each against the
 * applied state plus the writes admitted before it in this group (whose
 * sequences are known: they follow lastSequence in order). Marks the writes
 * whose conditions fail with their error (STRATA_CONFLICT, or the read error);
 * returns the admitted ones.
 */
export function admitWrites(group: PendingWrite[], reader: ConditionReader): PendingWrite[] {
  let lastConditional = 0
  group.forEach((w, i) => w.conditions !== undefined && (lastConditional = i))
  const overlay: Overlay = new Map()
  let seq = reader.lastSequence + 1
  const admitted: PendingWrite[] = []
  for (let i = 0; i < group.length; i++) {
    const w = group[i]
    if (w.conditions !== undefined) {
      let failed: Buffer[]
      try {
        failed = failedConditions(w.conditions, overlay, reader)
      } catch (err) {
        w.error = err
        continue
      }
      if (failed.length > 0) {
        w.error = new ConflictError(failed)
        continue
      }
    }
    admitted.push(w)
    for (const op of w.ops) {
      if (i < lastConditional) overlay.set(op.key.toString('latin1'), { key: op.key, version: op.value === null ? 0 : seq })
      seq++
    }
  }
  return admitted
}

/** Keys whose condition does not hold (reads tables: may throw corruption). */
function failedConditions(conditions: readonly Condition[], overlay: Overlay, reader: ConditionReader): Buffer[] {
  const failed: Buffer[] = []
  for (const c of conditions) {
    if (c.type === 'key') {
      const pending = overlay.get(c.key.toString('latin1'))
      const version = pending !== undefined ? pending.version : reader.versionOf(c.key, reader.lastSequence)
      if (version !== c.version) failed.push(c.key)
    } else {
      let changed: Buffer | undefined
      for (const p of overlay.values()) if (inRange(p.key, c.range)) changed ??= p.key
      changed ??= reader.firstChangeSince(c.range, c.sinceSequence)
      if (changed !== undefined) failed.push(changed)
    }
  }
  return failed
}

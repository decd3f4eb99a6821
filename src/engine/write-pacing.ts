import { pendingCompactionBytes } from '../compaction/picker.js'
import type { Version } from '../manifest/version.js'
import type { ResolvedOptions } from '../options.js'

/** Longest delay a paced write group waits, just below the hard threshold. */
export const MAX_SLOWDOWN_MS = 20

/** Pending compaction bytes of a version (immutable) under given options, computed once. */
const pendingByVersion = new WeakMap<Version, { options: ResolvedOptions; bytes: number }>()

/**
 * Compaction debt of a version: 0 when writes may go at full speed; in (0, 1)
 * when they should be slowed in proportion; >= 1 when they must wait for
 * compaction. The larger of the L0-file and pending-bytes measures.
 */
export function compactionDebt(version: Version, o: ResolvedOptions): number {
  const l0 = version.levels[0].length
  let cached = pendingByVersion.get(version)
  if (cached === undefined || cached.options !== o) {
    cached = { options: o, bytes: pendingCompactionBytes(version, o) }
    pendingByVersion.set(version, cached)
  }
  const pending = cached.bytes
  const byFiles = l0 < o.l0SlowdownTrigger ? 0 : (l0 - o.l0SlowdownTrigger + 1) / (o.l0StopTrigger - o.l0SlowdownTrigger + 1)
  const byBytes =
    pending < o.softPendingCompactionBytes
      ? 0
      : (pending - o.softPendingCompactionBytes + 1) / (o.hardPendingCompactionBytes - o.softPendingCompactionBytes + 1)
  return Math.max(byFiles, byBytes)
}

/**
 * Decides which versions of a key a flush or compaction must keep. A version
 * is needed by the newest reader and by every live snapshot whose sequence is
 * at or above it; among the versions of one key that fall between the same two
 * snapshots (one "stripe"), only the newest can ever be read.
 *
 * Entries must be fed in internal-key order (key ascending, sequence descending).
 */
export class ShadowFilter {
  private lastKey: Buffer | undefined
  private lastStripe = -1

  /** @param snapshots live snapshot sequences, ascending. */
  constructor(private readonly snapshots: readonly number[]) {}

  /** True when the entry must be written; false when a newer version hides it from everyone. */
  keep(key: Buffer, sequence: number): boolean {
    const stripe = this.stripeOf(sequence)
    if (this.lastKey !== undefined && this.lastKey.equals(key)) {
      if (stripe === this.lastStripe) return false
    } else {
      this.lastKey = Buffer.from(key)
    }
    this.lastStripe = stripe
    return true
  }

  /** True when every reader (each snapshot and the present) sees `sequence` or something newer. */
  visibleToAll(sequence: number): boolean {
    return this.snapshots.length === 0 || sequence <= this.snapshots[0]
  }

  /** Index of the oldest snapshot that can see `sequence` (snapshots.length = only the present). */
  private stripeOf(sequence: number): number {
    const s = this.snapshots
    let lo = 0
    let hi = s.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (s[mid] < sequence) lo = mid + 1
      else hi = mid
    }
    return lo
  }
}

import { compareBytes } from '../base/coding.js'

/**
 * Decides which versions of a key a flush or compaction must keep. A version
 * is needed by the newest reader and by every live snapshot whose sequence is
 * at or above it; among the versions of one key that fall between the same two
 * snapshots (one "stripe"), only the newest can ever be read.
 *
 * Entries must be fed in internal-key order (key ascending, sequence descending).
 */
export class ShadowFilter {
  /** The previous key, copied into a reused buffer (no allocation per entry). */
  private lastKey = Buffer.allocUnsafe(64)
  private lastKeyLength = -1
  private lastStripe = -1

  /** @param snapshots live snapshot sequences, ascending. */
  constructor(private readonly snapshots: readonly number[]) {}

  /** True when the entry must be written; false when a newer version hides it from everyone. */
  keep(key: Buffer, sequence: number): boolean {
    const stripe = this.snapshots.length === 0 ? 0 : this.stripeOf(sequence)
    if (this.lastKeyLength >= 0 && compareBytes(this.lastKey, 0, this.lastKeyLength, key, 0, key.length) === 0) {
      if (stripe === this.lastStripe) return false
    } else {
      if (key.length > this.lastKey.length) this.lastKey = Buffer.allocUnsafe(key.length * 2)
      for (let i = 0; i < key.length; i++) this.lastKey[i] = key[i]
      this.lastKeyLength = key.length
    }
    this.lastStripe = stripe
    return true
  }

  /** True when every reader (each snapshot and the present) sees `sequence` or something newer. */
  visibleToAll(sequence: number): boolean {
    return this.snapshots.length === 0 || sequence <= this.snapshots[0]
  }

  /** True when no snapshot sees `older` without seeing `newer` (no snapshot in [older, newer)). */
  sameStripe(older: number, newer: number): boolean {
    return this.snapshots.length === 0 || this.stripeOf(older) === this.stripeOf(newer)
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

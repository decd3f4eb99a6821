import { compareBytes } from './coding.js'

/**
 * A range delete (`deleteRange`, a batch's `delRange`): every version of
 * every key in [start, end) with a sequence below `seq` reads as deleted.
 * `end` undefined: no upper bound. Range tombstones live in memtables until
 * their flush, then in the manifest (docs/design.md, "Range deletes").
 */
export interface RangeTombstone {
  readonly start: Uint8Array
  readonly end: Uint8Array | undefined
  readonly seq: number
}

/** True when `key` lies in [start, end) of `t`. */
export function tombstoneCovers(t: RangeTombstone, key: Uint8Array): boolean {
  if (compareBytes(key, 0, key.length, t.start, 0, t.start.length) < 0) return false
  return t.end === undefined || compareBytes(key, 0, key.length, t.end, 0, t.end.length) < 0
}

/** True when [start, end) of `t` meets the key range [low, high] (either bound may be absent, both inclusive). */
export function tombstoneOverlaps(t: RangeTombstone, low: Uint8Array | undefined, high: Uint8Array | undefined): boolean {
  if (high !== undefined && compareBytes(high, 0, high.length, t.start, 0, t.start.length) < 0) return false
  return low === undefined || t.end === undefined || compareBytes(low, 0, low.length, t.end, 0, t.end.length) < 0
}

const NO_SEQUENCES = new Float64Array(0)

/**
 * Range tombstones cut into fragments that do not overlap, as Pebble
 * fragments its range deletions: fragment i is [bounds[i], bounds[i + 1])
 * (the last one unbounded when a tombstone is) and holds the sequences of
 * every tombstone covering it, ascending. A lookup is a binary search over
 * the bounds and one over the fragment's sequences. Immutable once built.
 */
export class RangeTombstoneIndex {
  private readonly bounds: Uint8Array[] = []
  private readonly sequences: Float64Array[] = []

  /** @param tombstones any order, may overlap. */
  constructor(tombstones: readonly RangeTombstone[]) {
    const cmp = (a: Uint8Array, b: Uint8Array): number => compareBytes(a, 0, a.length, b, 0, b.length)
    tombstones = tombstones.filter((t) => t.end === undefined || cmp(t.start, t.end) < 0)
    if (tombstones.length === 0) return
    const points: Uint8Array[] = []
    for (const t of tombstones) {
      points.push(t.start)
      if (t.end !== undefined) points.push(t.end)
    }
    points.sort(cmp)
    for (const p of points) if (this.bounds.length === 0 || cmp(this.bounds[this.bounds.length - 1], p) !== 0) this.bounds.push(p)
    // Sweep: tombstones sorted by start enter at their start and leave at their end.
    const byStart = [...tombstones].sort((a, b) => cmp(a.start, b.start))
    let next = 0
    let active: RangeTombstone[] = []
    for (const bound of this.bounds) {
      active = active.filter((t) => t.end === undefined || cmp(t.end, bound) > 0)
      while (next < byStart.length && cmp(byStart[next].start, bound) <= 0) active.push(byStart[next++])
      this.sequences.push(active.length === 0 ? NO_SEQUENCES : Float64Array.from(active.map((t) => t.seq)).sort())
    }
  }

  get isEmpty(): boolean {
    return this.bounds.length === 0
  }

  /**
   * The largest sequence <= `readSequence` of a tombstone covering `key`, 0
   * when none does: a version of `key` older than it is deleted for a read
   * at `readSequence`.
   */
  coveringSequence(key: Uint8Array, readSequence: number): number {
    const seqs = this.fragmentAt(key)
    let lo = 0
    let hi = seqs.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      if (seqs[mid] <= readSequence) lo = mid + 1
      else hi = mid
    }
    return lo === 0 ? 0 : seqs[lo - 1]
  }

  /** The smallest sequence above `sequence` of a tombstone covering `key`, or Infinity. */
  nextCoveringSequence(key: Uint8Array, sequence: number): number {
    const seqs = this.fragmentAt(key)
    for (let i = 0; i < seqs.length; i++) if (seqs[i] > sequence) return seqs[i]
    return Infinity
  }

  /** The sequences of the tombstones covering `key`, ascending. */
  private fragmentAt(key: Uint8Array): Float64Array {
    // The last bound <= key starts the fragment holding it.
    const bounds = this.bounds
    let lo = 0
    let hi = bounds.length
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const b = bounds[mid]
      if (compareBytes(b, 0, b.length, key, 0, key.length) <= 0) lo = mid + 1
      else hi = mid
    }
    return lo === 0 ? NO_SEQUENCES : this.sequences[lo - 1]
  }
}

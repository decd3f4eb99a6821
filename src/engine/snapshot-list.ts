import { assert } from '../base/assert.js'

/**
 * The sequence numbers of live snapshots, with multiplicity. Flush and
 * compaction keep every version some snapshot can still read.
 */
export class SnapshotList {
  private readonly counts = new Map<number, number>()

  add(sequence: number): void {
    this.counts.set(sequence, (this.counts.get(sequence) ?? 0) + 1)
  }

  remove(sequence: number): void {
    const n = this.counts.get(sequence)
    assert(n !== undefined, `snapshot ${sequence} is not live`)
    if (n === 1) this.counts.delete(sequence)
    else this.counts.set(sequence, n - 1)
  }

  /** Live snapshot sequences, ascending, without duplicates. */
  sequences(): number[] {
    return [...this.counts.keys()].sort((a, b) => a - b)
  }

  get size(): number {
    return this.counts.size
  }
}

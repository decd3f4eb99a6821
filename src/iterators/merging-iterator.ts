import { compareKeys } from '../base/coding.js'
import type { InternalIterator } from './internal-iterator.js'

/**
 * Merges child iterators into one stream, in one direction fixed at
 * construction. Forward yields internal-key order (user key ascending, sequence
 * descending); reverse yields the exact opposite. Ties cannot happen because
 * sequence numbers are unique, so "newest source wins" needs no rule of its
 * own: the newest version of a key simply comes first (forward) or last
 * (reverse). A binary heap of the valid children picks the next entry.
 */
export class MergingIterator {
  private heap: InternalIterator[] = []

  constructor(
    private readonly children: InternalIterator[],
    readonly reverse: boolean,
  ) {}

  valid(): boolean {
    return this.heap.length > 0
  }
  /** The child positioned on the current entry. REQUIRES: valid(). */
  top(): InternalIterator {
    return this.heap[0]
  }

  /** Forward: seekGE/seekGT/seekToFirst; reverse: seekLE/seekLT/seekToLast. */
  seek(position: (child: InternalIterator) => void): void {
    for (const c of this.children) position(c)
    this.heap = this.children.filter((c) => c.valid())
    for (let i = (this.heap.length >> 1) - 1; i >= 0; i--) this.siftDown(i)
  }

  /** Moves past the current entry in the iterator's direction. REQUIRES: valid(). */
  advance(): void {
    const top = this.heap[0]
    if (this.reverse) top.prev()
    else top.next()
    if (!top.valid()) {
      const last = this.heap.pop()!
      if (this.heap.length === 0) return
      this.heap[0] = last
    }
    this.siftDown(0)
  }

  close(): void {
    for (const c of this.children) c.close()
    this.heap = []
  }

  /** True when a must come before b in this iterator's direction. */
  private before(a: InternalIterator, b: InternalIterator): boolean {
    const c = compareKeys(a.key(), b.key())
    if (c !== 0) return this.reverse ? c > 0 : c < 0
    return this.reverse ? a.sequence() < b.sequence() : a.sequence() > b.sequence()
  }

  private siftDown(i: number): void {
    const h = this.heap
    const n = h.length
    for (;;) {
      const l = 2 * i + 1
      if (l >= n) return
      const r = l + 1
      const m = r < n && this.before(h[r], h[l]) ? r : l
      if (!this.before(h[m], h[i])) return
      const t = h[i]
      h[i] = h[m]
      h[m] = t
      i = m
    }
  }
}

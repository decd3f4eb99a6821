import type { InternalIterator } from './internal-iterator.js'

/** The sorted, non-overlapping parts a two-level iterator walks. */
export interface PartList {
  /** Number of parts. */
  readonly count: number
  /** Compares the largest user key of part i with `key`; parts are in key order and do not overlap. */
  compareLastKey(i: number, key: Buffer): number
  /** Opens an iterator over part i (it is closed when the walk leaves the part). */
  open(i: number): InternalIterator
}

/**
 * Walks a sequence of sorted, non-overlapping parts as one iterator: the blocks
 * of a table (parts = index entries) or the tables of a level (parts = files).
 * Holds one part open at a time. A part may hold several versions of one user
 * key only if no other part holds that key (true for blocks written in order:
 * a key's versions may span blocks, handled by the forward/backward skips).
 */
export class TwoLevelIterator implements InternalIterator {
  private index = -1
  private part: InternalIterator | undefined
  private closed = false

  constructor(private readonly parts: PartList, private readonly onClose?: () => void) {}

  valid(): boolean {
    return this.part !== undefined && this.part.valid()
  }
  key(): Buffer {
    return this.part!.key()
  }
  sequence(): number {
    return this.part!.sequence()
  }
  kind(): number {
    return this.part!.kind()
  }
  value(): Buffer {
    return this.part!.value()
  }

  seekToFirst(): void {
    if (!this.load(0)) return
    this.part!.seekToFirst()
    this.skipForward()
  }

  seekToLast(): void {
    if (!this.load(this.parts.count - 1)) return
    this.part!.seekToLast()
    this.skipBackward()
  }

  seekGE(key: Buffer): void {
    if (!this.load(this.firstPartEndingAtOrAfter(key, false))) return
    this.part!.seekGE(key)
    this.skipForward()
  }

  seekGT(key: Buffer): void {
    if (!this.load(this.firstPartEndingAtOrAfter(key, true))) return
    this.part!.seekGT(key)
    this.skipForward()
  }

  seekLE(key: Buffer): void {
    const i = this.firstPartEndingAtOrAfter(key, true)
    if (i >= this.parts.count) return this.seekToLast()
    this.load(i)
    this.part!.seekLE(key)
    this.skipBackward()
  }

  seekLT(key: Buffer): void {
    const i = this.firstPartEndingAtOrAfter(key, false)
    if (i >= this.parts.count) return this.seekToLast()
    this.load(i)
    this.part!.seekLT(key)
    this.skipBackward()
  }

  next(): void {
    this.part!.next()
    this.skipForward()
  }

  prev(): void {
    this.part!.prev()
    this.skipBackward()
  }

  close(): void {
    if (this.closed) return
    this.closed = true
    this.part?.close()
    this.part = undefined
    this.onClose?.()
  }

  /** Index of the first part whose last user key is > key (strict) or >= key. */
  private firstPartEndingAtOrAfter(key: Buffer, strict: boolean): number {
    let lo = 0
    let hi = this.parts.count
    while (lo < hi) {
      const mid = (lo + hi) >>> 1
      const c = this.parts.compareLastKey(mid, key)
      if (strict ? c <= 0 : c < 0) lo = mid + 1
      else hi = mid
    }
    return lo
  }

  /** Opens part i; false (and not valid) when i is out of range. */
  private load(i: number): boolean {
    if (i < 0 || i >= this.parts.count) {
      this.part?.close()
      this.part = undefined
      this.index = -1
      return false
    }
    if (i !== this.index || this.part === undefined) {
      this.part?.close()
      this.part = undefined
      this.part = this.parts.open(i)
      this.index = i
    }
    return true
  }

  private skipForward(): void {
    while (this.part !== undefined && !this.part.valid()) {
      if (!this.load(this.index + 1)) return
      this.part!.seekToFirst()
    }
  }

  private skipBackward(): void {
    while (this.part !== undefined && !this.part.valid()) {
      if (!this.load(this.index - 1)) return
      this.part!.seekToLast()
    }
  }
}

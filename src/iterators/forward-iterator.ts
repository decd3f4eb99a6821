import { assert } from '../base/assert.js'
import type { InternalIterator } from './internal-iterator.js'

/**
 * Base of iterators that only walk forward from their first entry (a flush's
 * sorted run, a compaction input's scan): every other move fails loudly.
 */
export abstract class ForwardOnlyIterator implements InternalIterator {
  abstract valid(): boolean
  abstract seekToFirst(): void
  abstract next(): void
  abstract key(): Buffer
  abstract sequence(): number
  abstract kind(): number
  abstract value(): Buffer
  abstract close(): void

  seekToLast(): void {
    this.unsupported()
  }
  seekGE(): void {
    this.unsupported()
  }
  seekGT(): void {
    this.unsupported()
  }
  seekLE(): void {
    this.unsupported()
  }
  seekLT(): void {
    this.unsupported()
  }
  prev(): void {
    this.unsupported()
  }

  private unsupported(): never {
    assert(false, `${this.constructor.name} only walks forward from its first entry`)
  }
}

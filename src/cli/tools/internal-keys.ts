/**
 * Internal-key order for the inspection tools: (key, sequence) pairs sorted
 * by key ascending, then sequence descending, as tables and merges hold them;
 * and a reusable copy of the last key seen, against which the next entry's
 * order is checked (reading a table, writing new ones).
 */

/** Internal order of (key, sequence) pairs: key ascending, then sequence descending. */
export function compareInternalKeys(aKey: Uint8Array, aSeq: number, bKey: Uint8Array, bSeq: number): number {
  const c = Buffer.compare(aKey, bKey)
  return c !== 0 ? c : bSeq - aSeq
}

/** A growable copy of one key. */
export class KeyCopy {
  private buf = Buffer.allocUnsafe(64)
  length = -1

  set(key: Uint8Array): void {
    if (key.length > this.buf.length) this.buf = Buffer.allocUnsafe(key.length * 2)
    this.buf.set(key, 0)
    this.length = key.length
  }

  get isSet(): boolean {
    return this.length >= 0
  }

  view(): Buffer {
    return this.buf.subarray(0, this.length)
  }
}

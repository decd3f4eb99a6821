import { assert } from '../base/assert.js'
import { compareBytes, varintLength, writeU32, writeVarint } from '../base/coding.js'

/**
 * Builds one block: entries with prefix-compressed user keys, a restart point
 * (a fully stored key) every `restartInterval` entries, and the restart array
 * (docs/format.md, "Block"). Entries must arrive in internal-key order.
 *
 *   entry: varint shared | varint unshared | varint valueLength | u8 kind | varint sequence
 *          | unshared key bytes | value bytes
 *   trailer: u32 restartOffset × n | u32 n
 */
export class BlockBuilder {
  private buf = Buffer.allocUnsafe(8192)
  private used = 0
  private restarts: number[] = [0]
  private sinceRestart = 0
  private lastKey = Buffer.allocUnsafe(256)
  private lastKeyLength = 0
  private entries = 0

  constructor(private readonly restartInterval: number) {
    assert(restartInterval >= 1, 'restart interval must be >= 1')
  }

  get isEmpty(): boolean {
    return this.entries === 0
  }

  /** Size of the finished block if it were finished now. */
  get estimatedBytes(): number {
    return this.used + this.restarts.length * 4 + 4
  }

  add(key: Uint8Array, sequence: number, kind: number, value: Uint8Array): void {
    let shared = 0
    if (this.sinceRestart >= this.restartInterval) {
      this.restarts.push(this.used)
      this.sinceRestart = 0
    } else if (this.entries > 0) {
      const n = Math.min(this.lastKeyLength, key.length)
      while (shared < n && this.lastKey[shared] === key[shared]) shared++
    }
    const unshared = key.length - shared
    const need =
      varintLength(shared) + varintLength(unshared) + varintLength(value.length) + 1 + varintLength(sequence) +
      unshared + value.length
    this.reserve(need)
    let o = writeVarint(this.buf, this.used, shared)
    o = writeVarint(this.buf, o, unshared)
    o = writeVarint(this.buf, o, value.length)
    this.buf[o++] = kind
    o = writeVarint(this.buf, o, sequence)
    this.buf.set(key.subarray(shared), o)
    o += unshared
    this.buf.set(value, o)
    o += value.length
    this.used = o
    this.rememberKey(key)
    this.sinceRestart++
    this.entries++
  }

  /** Returns the block contents (a copy) and resets the builder. */
  finish(): Buffer {
    const out = Buffer.allocUnsafe(this.estimatedBytes)
    this.buf.copy(out, 0, 0, this.used)
    let o = this.used
    for (const r of this.restarts) {
      writeU32(out, o, r)
      o += 4
    }
    writeU32(out, o, this.restarts.length)
    this.used = 0
    this.restarts = [0]
    this.sinceRestart = 0
    this.lastKeyLength = 0
    this.entries = 0
    return out
  }

  /** Compares `key` with the last key added (for order assertions by the caller). */
  compareWithLast(key: Uint8Array): number {
    return compareBytes(key, 0, key.length, this.lastKey, 0, this.lastKeyLength)
  }

  private rememberKey(key: Uint8Array): void {
    if (key.length > this.lastKey.length) this.lastKey = Buffer.allocUnsafe(key.length * 2)
    this.lastKey.set(key, 0)
    this.lastKeyLength = key.length
  }

  private reserve(extra: number): void {
    if (this.used + extra <= this.buf.length) return
    const next = Buffer.allocUnsafe(Math.max(this.buf.length * 2, this.used + extra))
    this.buf.copy(next, 0, 0, this.used)
    this.buf = next
  }
}

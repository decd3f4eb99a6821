import { assert } from '../base/assert.js'
import { compareBytes, writeU32, writeVarint } from '../base/coding.js'

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
    // Upper bound: 8 bytes per varint; reserving a little more is cheaper than measuring.
    this.reserve(4 * 8 + 1 + unshared + value.length)
    const buf = this.buf
    let o = this.used
    if ((shared | unshared | value.length) < 0x80) {
      buf[o++] = shared
      buf[o++] = unshared
      buf[o++] = value.length
    } else {
      o = writeVarint(buf, o, shared)
      o = writeVarint(buf, o, unshared)
      o = writeVarint(buf, o, value.length)
    }
    buf[o++] = kind
    o = writeVarint(buf, o, sequence)
    for (let i = shared; i < key.length; i++) buf[o++] = key[i]
    if (value.length <= 64) for (let i = 0; i < value.length; i++) buf[o++] = value[i]
    else {
      buf.set(value, o)
      o += value.length
    }
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

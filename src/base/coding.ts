import { corruption } from './errors.js'

/**
 * Little-endian fixed-width integers and LEB128 varints for numbers up to 2^53.
 * Decoders are bounded by the buffer end and throw STRATA_CORRUPTION on overrun,
 * so no loop over untrusted bytes can run past its input.
 */

const TWO_32 = 0x1_0000_0000

/** Writes a non-negative safe integer as 8 bytes little-endian. */
export function writeU64(buf: Uint8Array, offset: number, value: number): void {
  const lo = value >>> 0
  const hi = Math.floor(value / TWO_32)
  buf[offset] = lo & 0xff
  buf[offset + 1] = (lo >>> 8) & 0xff
  buf[offset + 2] = (lo >>> 16) & 0xff
  buf[offset + 3] = lo >>> 24
  buf[offset + 4] = hi & 0xff
  buf[offset + 5] = (hi >>> 8) & 0xff
  buf[offset + 6] = (hi >>> 16) & 0xff
  buf[offset + 7] = hi >>> 24
}

/** Reads 8 bytes little-endian; values above 2^53 are corruption. */
export function readU64(buf: Uint8Array, offset: number): number {
  const lo = readU32(buf, offset)
  const hi = readU32(buf, offset + 4)
  if (hi > 0x1f_ffff) throw corruption('64-bit field out of range')
  return hi * TWO_32 + lo
}

export function writeU32(buf: Uint8Array, offset: number, value: number): void {
  buf[offset] = value & 0xff
  buf[offset + 1] = (value >>> 8) & 0xff
  buf[offset + 2] = (value >>> 16) & 0xff
  buf[offset + 3] = value >>> 24
}

export function readU32(buf: Uint8Array, offset: number): number {
  return (buf[offset] | (buf[offset + 1] << 8) | (buf[offset + 2] << 16)) + buf[offset + 3] * 0x100_0000
}

/** Bytes a varint of `value` takes (1..8 for safe integers). */
export function varintLength(value: number): number {
  let n = 1
  while (value >= 0x80) {
    value = Math.floor(value / 128)
    n++
  }
  return n
}

/** Writes `value` as a varint at `offset`; returns the offset after it. */
export function writeVarint(buf: Uint8Array, offset: number, value: number): number {
  while (value >= 0x80) {
    buf[offset++] = (value & 0x7f) | 0x80
    value = Math.floor(value / 128)
  }
  buf[offset++] = value
  return offset
}

/**
 * Decoded varint results are returned through this cursor to avoid allocating
 * a tuple per call on hot decode paths. Not re-entrant across awaits (none exist).
 */
export const cursor = { value: 0, offset: 0 }

/** Reads a varint at `offset`, not past `end`; sets `cursor.value` and `cursor.offset`. */
export function readVarint(buf: Uint8Array, offset: number, end: number): void {
  let b = offset < end ? buf[offset++] : -1
  if (b < 0) throw corruption('varint runs past its buffer')
  if (b < 0x80) {
    cursor.value = b
    cursor.offset = offset
    return
  }
  let value = b & 0x7f
  let scale = 128
  for (let i = 1; i < 8; i++) {
    if (offset >= end) throw corruption('varint runs past its buffer')
    b = buf[offset++]
    value += (b & 0x7f) * scale
    if (b < 0x80) {
      cursor.value = value
      cursor.offset = offset
      return
    }
    scale *= 128
  }
  throw corruption('varint longer than 8 bytes')
}

/** Up to this many bytes a byte loop copies faster than a native call (16 bytes: 62 vs 92 ns; 100: 156-218 vs 78-89 ns). */
const LOOP_COPY_MAX_BYTES = 24

/**
 * Copies src[start, end) into dst at `at`; returns the offset after it. Short
 * runs (keys) by a byte loop, longer ones natively, through a plain Uint8Array
 * view (cheaper to make than a Buffer's subarray) unless src is copied whole.
 */
export function copyRange(dst: Uint8Array, at: number, src: Uint8Array, start: number, end: number): number {
  const n = end - start
  if (n <= LOOP_COPY_MAX_BYTES) for (let i = 0; i < n; i++) dst[at + i] = src[start + i]
  else if (start === 0 && end === src.length) dst.set(src, at)
  else dst.set(new Uint8Array(src.buffer, src.byteOffset + start, n), at)
  return at + n
}

/**
 * A new Buffer (from the pool when small) holding src[start, end): for reads
 * that hand out values, without making a view of the source first.
 */
export function copyBytes(src: Uint8Array, start: number, end: number): Buffer {
  const out = Buffer.allocUnsafe(end - start)
  copyRange(out, 0, src, start, end)
  return out
}

/** Keys at most this long are compared by compareKeys' byte loop; longer ones natively. */
const LOOP_COMPARE_MAX_BYTES = 64

/**
 * Bytewise order of two whole keys (negative, 0, positive, as Buffer.compare):
 * a byte loop for short keys, where Buffer.compare's native call costs more
 * than the comparison (16-byte keys: ~18 ns against ~42 ns,
 * docs/performance.md), Buffer.compare's memcmp for longer ones.
 */
export function compareKeys(a: Uint8Array, b: Uint8Array): number {
  const aLen = a.length
  const bLen = b.length
  const n = aLen < bLen ? aLen : bLen
  if (n > LOOP_COMPARE_MAX_BYTES) return Buffer.compare(a, b)
  for (let i = 0; i < n; i++) {
    const d = a[i] - b[i]
    if (d !== 0) return d
  }
  return aLen - bLen
}

/** True when two whole keys hold the same bytes (compareKeys(a, b) === 0, checking the lengths first). */
export function keysEqual(a: Uint8Array, b: Uint8Array): boolean {
  return a.length === b.length && compareKeys(a, b) === 0
}

/** Bytewise comparison of a[aStart,aEnd) with b[bStart,bEnd), like memcmp then length. */
export function compareBytes(
  a: Uint8Array, aStart: number, aEnd: number,
  b: Uint8Array, bStart: number, bEnd: number,
): number {
  const aLen = aEnd - aStart
  const bLen = bEnd - bStart
  const n = aLen < bLen ? aLen : bLen
  for (let i = 0; i < n; i++) {
    const d = a[aStart + i] - b[bStart + i]
    if (d !== 0) return d
  }
  return aLen - bLen
}

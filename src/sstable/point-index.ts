import { assert } from '../base/assert.js'
import { readU32, writeU32 } from '../base/coding.js'
import { corruption } from '../base/errors.js'

/**
 * A table's point index (docs/format.md, "Point index"): a hash table from a
 * distinct user key's filter hash to the data block holding the key's first
 * (newest) entry. Open addressing with linear probing; each slot is a u32,
 * `(fingerprint << blockBits) | (block + 1)`, 0 when empty.
 *
 *   u32 slotCount | u8 blockBits | u8[3] zero | u32 slots[slotCount]
 */
const HEADER_BYTES = 8
/** Slots per key: load factor 0.8. */
const SLOTS_PER_KEY = 5 / 4
/** Block numbers take at most this many bits, so fingerprints keep at least 8. */
const MAX_BLOCK_BITS = 24
/** Multiplier deriving the fingerprint from the hash (2^32 / golden ratio). */
const FINGERPRINT_MULTIPLIER = 0x9e37_79b1

/** Bits a slot needs for `blockCount` block numbers stored as block + 1. */
function blockBitsFor(blockCount: number): number {
  let bits = 1
  while (2 ** bits <= blockCount) bits++
  return bits
}

function homeSlot(hash: number, slotCount: number): number {
  return Math.floor(((hash >>> 0) * slotCount) / 0x1_0000_0000)
}

function fingerprintOf(hash: number, blockBits: number): number {
  return Math.imul(hash, FINGERPRINT_MULTIPLIER) >>> blockBits
}

/**
 * The point index block's contents for a table whose distinct user keys have
 * filter hashes `hashes` (in table order), or undefined when the table has too
 * many blocks for one. `blockEnds[b]` is the number of keys whose first entry
 * lies in data blocks 0..b (so the table has blockEnds.length blocks).
 */
export function buildPointIndex(hashes: ArrayLike<number>, blockEnds: ArrayLike<number>): Buffer | undefined {
  const blockCount = blockEnds.length
  assert(blockCount > 0 && blockEnds[blockCount - 1] === hashes.length, 'point index: block ends do not cover the keys')
  const blockBits = blockBitsFor(blockCount)
  if (blockBits > MAX_BLOCK_BITS) return undefined
  const slotCount = Math.ceil(hashes.length * SLOTS_PER_KEY) + 1
  const out = Buffer.alloc(HEADER_BYTES + slotCount * 4)
  writeU32(out, 0, slotCount)
  out[4] = blockBits
  // Built in place when the platform's u32 layout is the format's (little-endian) and aligned.
  const inPlace = LITTLE_ENDIAN && (out.byteOffset + HEADER_BYTES) % 4 === 0
  const slots = inPlace ? new Uint32Array(out.buffer, out.byteOffset + HEADER_BYTES, slotCount) : new Uint32Array(slotCount)
  let block = 0
  for (let k = 0; k < hashes.length; k++) {
    while (blockEnds[block] <= k) block++
    let s = homeSlot(hashes[k], slotCount)
    while (slots[s] !== 0) s = s + 1 === slotCount ? 0 : s + 1
    slots[s] = ((fingerprintOf(hashes[k], blockBits) << blockBits) | (block + 1)) >>> 0
  }
  if (!inPlace) for (let s = 0; s < slotCount; s++) writeU32(out, HEADER_BYTES + s * 4, slots[s])
  return out
}

/**
 * A point index read back. Validated whole at open (every slot names a data
 * block of the table, at least one slot is empty), so probing needs no checks
 * and always ends.
 *
 * Probing, as the table reader does it:
 *   for (let s = pi.probe(pi.home(hash), fp); s >= 0; s = pi.probe(pi.next(s), fp)) use pi.blockAt(s)
 */
export class PointIndex {
  private readonly slots: Uint32Array
  private readonly slotCount: number
  private readonly blockBits: number
  private readonly blockMask: number

  constructor(contents: Buffer, blockCount: number, fileName: string) {
    if (contents.length < HEADER_BYTES) throw corruption('point index too short', fileName)
    const slotCount = readU32(contents, 0)
    const blockBits = contents[4]
    if (contents.length !== HEADER_BYTES + slotCount * 4 || slotCount === 0) {
      throw corruption('point index size does not match its slot count', fileName)
    }
    if (blockBits < 1 || blockBits > MAX_BLOCK_BITS || 2 ** blockBits <= blockCount) {
      throw corruption(`point index has ${blockBits}-bit block numbers for ${blockCount} blocks`, fileName)
    }
    this.slotCount = slotCount
    this.blockBits = blockBits
    this.blockMask = 2 ** blockBits - 1
    const start = contents.byteOffset + HEADER_BYTES
    if (start % 4 === 0 && LITTLE_ENDIAN) {
      this.slots = new Uint32Array(contents.buffer, start, slotCount)
    } else {
      this.slots = new Uint32Array(slotCount)
      for (let s = 0; s < slotCount; s++) this.slots[s] = readU32(contents, HEADER_BYTES + s * 4)
    }
    let empty = 0
    for (let s = 0; s < slotCount; s++) {
      const v = this.slots[s]
      const block = v & this.blockMask
      if (v === 0) empty++
      else if (block === 0 || block > blockCount) throw corruption('point index names a block outside the table', fileName)
    }
    if (empty === 0) throw corruption('point index has no empty slot', fileName)
  }

  /** Bytes held (the slots: a view of the block read from the file, or a copy of it). */
  get sizeBytes(): number {
    return HEADER_BYTES + this.slotCount * 4
  }

  home(hash: number): number {
    return homeSlot(hash, this.slotCount)
  }

  fingerprint(hash: number): number {
    return fingerprintOf(hash, this.blockBits)
  }

  next(slot: number): number {
    return slot + 1 === this.slotCount ? 0 : slot + 1
  }

  /** The first slot from `slot` on (in probe order) with `fingerprint`; -1 at an empty slot first. */
  probe(slot: number, fingerprint: number): number {
    const slots = this.slots
    const bits = this.blockBits
    for (;;) {
      const v = slots[slot]
      if (v === 0) return -1
      if (v >>> bits === fingerprint) return slot
      slot = slot + 1 === this.slotCount ? 0 : slot + 1
    }
  }

  /** The data block named by a non-empty slot. */
  blockAt(slot: number): number {
    return (this.slots[slot] & this.blockMask) - 1
  }
}

const LITTLE_ENDIAN = new Uint8Array(new Uint32Array([1]).buffer)[0] === 1

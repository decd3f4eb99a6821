import bloomFilters from 'bloom-filters'
import { xxh32Small } from '../base/checksum.js'
import { readU32, writeU32 } from '../base/coding.js'
import { corruption } from '../base/errors.js'

/**
 * Bloom filter over the user keys of one table (docs/format.md, "Filter block").
 * The bit set is bloom-filters' BitSet (the one importer of bloom-filters); the
 * hashing is ours, one xxh32 per key (in JavaScript for keys up to 128 bytes),
 * because the package's own hashing costs ~9-12 µs per key (docs/performance.md).
 *
 * Tables of format version 2 write the blocked layout: each key's probes all
 * fall in one 512-bit (64-byte) block chosen by its hash, so a lookup touches
 * one or two cache lines instead of one per probe. Version 1 filters (probes
 * spread over the whole bit set by double hashing) are still read.
 *
 *   u32 bitCount | u8 hashCount | u8 layout (0 = spread, 1 = blocked) | u8[2] zero | bits, LSB-first per byte
 */
const { BitSet } = bloomFilters
type BitSetT = InstanceType<typeof BitSet>

const FILTER_SEED = 0x9747_b28c
const FILTER_HEADER_BYTES = 8
const LAYOUT_SPREAD = 0
const LAYOUT_BLOCKED = 1
/** Bits per block of the blocked layout: one 64-byte cache line. */
const BLOCK_BITS = 512
/** Multiplier of the in-block probe sequence (2^32 / golden ratio). */
const PROBE_MULTIPLIER = 0x9e37_79b9

/** The 32-bit hash the filter is built from (XXH32, seed FILTER_SEED); computed once per key. */
export function filterHash(key: Uint8Array): number {
  return xxh32Small(key, FILTER_SEED)
}

/** Bit offset of the block a hash falls in: the hash's high bits scaled onto the block count. */
function blockStart(hash: number, blockCount: number): number {
  return Math.floor((hash * blockCount) / 0x1_0000_0000) * BLOCK_BITS
}

/** Builds the filter block contents (blocked layout) from the hashes of a table's distinct user keys. */
export function buildFilter(hashes: ArrayLike<number>, bitsPerKey: number): Buffer {
  const hashCount = Math.max(1, Math.min(30, Math.round(bitsPerKey * 0.69)))
  const blockCount = Math.max(1, Math.ceil((hashes.length * bitsPerKey) / BLOCK_BITS))
  const bitCount = blockCount * BLOCK_BITS
  const bits: BitSetT = new BitSet(bitCount)
  for (let k = 0; k < hashes.length; k++) {
    const h = hashes[k]
    const start = blockStart(h, blockCount)
    let g = h
    for (let i = 0; i < hashCount; i++) {
      g = Math.imul(g, PROBE_MULTIPLIER)
      bits.add(start + (g >>> 23))
    }
  }
  const out = Buffer.alloc(FILTER_HEADER_BYTES + bits.array.length)
  writeU32(out, 0, bitCount)
  out[4] = hashCount
  out[5] = LAYOUT_BLOCKED
  out.set(bits.array, FILTER_HEADER_BYTES)
  return out
}

/** A filter read back from a table. */
export class Filter {
  private readonly bits: BitSetT
  private readonly bitCount: number
  private readonly hashCount: number
  private readonly blocked: boolean
  private readonly blockCount: number

  constructor(contents: Buffer, fileName: string) {
    if (contents.length < FILTER_HEADER_BYTES) throw corruption('filter block too short', fileName)
    this.bitCount = readU32(contents, 0)
    this.hashCount = contents[4]
    const layout = contents[5]
    if (layout !== LAYOUT_SPREAD && layout !== LAYOUT_BLOCKED) throw corruption(`unknown filter layout ${layout}`, fileName)
    this.blocked = layout === LAYOUT_BLOCKED
    const unit = this.blocked ? BLOCK_BITS : 8
    if (this.bitCount % unit !== 0 || this.bitCount / 8 !== contents.length - FILTER_HEADER_BYTES || this.hashCount === 0) {
      throw corruption('filter block header does not match its size', fileName)
    }
    this.blockCount = this.bitCount / BLOCK_BITS
    // BitSet allocates its own array; point it at the bytes read from disk instead.
    this.bits = new BitSet(8)
    this.bits.array = contents.subarray(FILTER_HEADER_BYTES)
  }

  /**
   * False means the key is certainly absent from the table. Tests the bits of
   * the BitSet's array directly (same layout as BitSet.has): this runs for every
   * table a point read considers.
   */
  mayContain(hash: number): boolean {
    const bits = this.bits.array
    if (this.blocked) {
      const start = blockStart(hash, this.blockCount)
      let g = hash
      for (let i = 0; i < this.hashCount; i++) {
        g = Math.imul(g, PROBE_MULTIPLIER)
        const bit = start + (g >>> 23)
        if ((bits[bit >>> 3] & (1 << (bit & 7))) === 0) return false
      }
      return true
    }
    const bitCount = this.bitCount
    let h = hash
    const delta = ((h >>> 17) | (h << 15)) >>> 0
    for (let i = 0; i < this.hashCount; i++) {
      const bit = h % bitCount
      if ((bits[bit >>> 3] & (1 << (bit & 7))) === 0) return false
      h = (h + delta) >>> 0
    }
    return true
  }

  get sizeBytes(): number {
    return this.bits.array.length + FILTER_HEADER_BYTES
  }
}

import bloomFilters from 'bloom-filters'
import { checksum32 } from '../base/checksum.js'
import { readU32, writeU32 } from '../base/coding.js'
import { corruption } from '../base/errors.js'

/**
 * Bloom filter over the user keys of one table (docs/format.md, "Filter block").
 * The bit set is bloom-filters' BitSet (the one importer of bloom-filters); the
 * hashing is ours: one xxh32 per key and double hashing (h + i·delta), because
 * the package's own hashing costs ~9-12 µs per key (docs/performance.md).
 *
 *   u32 bitCount (multiple of 8) | u8 hashCount | u8[3] zero | bits, LSB-first per byte
 */
const { BitSet } = bloomFilters
type BitSetT = InstanceType<typeof BitSet>

const FILTER_SEED = 0x9747_b28c
const FILTER_HEADER_BYTES = 8
/** Filters smaller than this are not worth their false positives. */
const MIN_BITS = 64

/** The 32-bit hash the filter is built from; computed once per key. */
export function filterHash(key: Uint8Array): number {
  return checksum32(key, FILTER_SEED)
}

/** Builds the filter block contents from the hashes of a table's distinct user keys. */
export function buildFilter(hashes: readonly number[], bitsPerKey: number): Buffer {
  const hashCount = Math.max(1, Math.min(30, Math.round(bitsPerKey * 0.69)))
  let bitCount = Math.max(MIN_BITS, hashes.length * bitsPerKey)
  bitCount = Math.ceil(bitCount / 8) * 8
  const bits: BitSetT = new BitSet(bitCount)
  for (const h0 of hashes) {
    let h = h0
    const delta = ((h >>> 17) | (h << 15)) >>> 0
    for (let i = 0; i < hashCount; i++) {
      bits.add(h % bitCount)
      h = (h + delta) >>> 0
    }
  }
  const out = Buffer.alloc(FILTER_HEADER_BYTES + bits.array.length)
  writeU32(out, 0, bitCount)
  out[4] = hashCount
  out.set(bits.array, FILTER_HEADER_BYTES)
  return out
}

/** A filter read back from a table. */
export class Filter {
  private readonly bits: BitSetT
  private readonly bitCount: number
  private readonly hashCount: number

  constructor(contents: Buffer, fileName: string) {
    if (contents.length < FILTER_HEADER_BYTES) throw corruption('filter block too short', fileName)
    this.bitCount = readU32(contents, 0)
    this.hashCount = contents[4]
    if (this.bitCount % 8 !== 0 || this.bitCount / 8 !== contents.length - FILTER_HEADER_BYTES || this.hashCount === 0) {
      throw corruption('filter block header does not match its size', fileName)
    }
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

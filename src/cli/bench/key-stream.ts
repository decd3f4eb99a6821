/**
 * Deterministic keys and values. Every engine gets exactly the same streams:
 * a stream depends only on the seed and the workload's name.
 */

/** sfc32, seeded through splitmix32: fast, small, and good enough for picking keys. */
export class SeededRandom {
  private a: number
  private b: number
  private c: number
  private d: number

  constructor(seed: number) {
    let s = seed >>> 0
    const splitmix32 = (): number => {
      s = (s + 0x9e3779b9) | 0
      let z = s
      z = Math.imul(z ^ (z >>> 16), 0x85ebca6b)
      z = Math.imul(z ^ (z >>> 13), 0xc2b2ae35)
      return (z ^ (z >>> 16)) >>> 0
    }
    this.a = splitmix32()
    this.b = splitmix32()
    this.c = splitmix32()
    this.d = splitmix32()
    for (let i = 0; i < 12; i++) this.nextUint32()
  }

  /** A uniform integer in [0, 2^32). */
  nextUint32(): number {
    const t = (((this.a + this.b) | 0) + this.d) | 0
    this.d = (this.d + 1) | 0
    this.a = this.b ^ (this.b >>> 9)
    this.b = (this.c + (this.c << 3)) | 0
    this.c = (this.c << 21) | (this.c >>> 11)
    this.c = (this.c + t) | 0
    return t >>> 0
  }

  /** A uniform integer in [0, bound), for bound <= 2^32 (53 random bits, so no visible bias). */
  below(bound: number): number {
    const high = this.nextUint32() >>> 5
    const low = this.nextUint32() >>> 6
    return Math.floor(((high * 2 ** 26 + low) / 2 ** 53) * bound)
  }
}

/** The seed of the stream named `label` (FNV-1a of the label, mixed with `seed`). */
export function streamSeed(seed: number, label: string): number {
  let h = 0x811c9dc5 ^ (seed >>> 0)
  for (let i = 0; i < label.length; i++) h = Math.imul(h ^ label.charCodeAt(i), 0x01000193)
  // Mix the high part of seeds above 2^32 too.
  return (h ^ Math.floor(seed / 2 ** 32)) >>> 0
}

/** `count` key indices drawn uniformly, with repetition, from [0, bound). Generated before timing starts. */
export function randomIndices(count: number, bound: number, seed: number): Uint32Array {
  const random = new SeededRandom(seed)
  const out = new Uint32Array(count)
  for (let i = 0; i < count; i++) out[i] = random.below(bound)
  return out
}

/**
 * Keys are key indices written as zero-padded decimal numbers of exactly
 * `keyBytes` digits (as db_bench does), so bytewise key order is numeric order.
 */
export class KeyFormat {
  constructor(readonly keyBytes: number) {}

  /** A new Buffer holding the key of `index` (new, so an engine may keep it). */
  encode(index: number): Buffer {
    const out = Buffer.allocUnsafe(this.keyBytes)
    this.write(out, index)
    return out
  }

  /**
   * A key that no workload writes: the key of `index` followed by "." (as
   * db_bench's readmissing), so it sorts right after an existing key.
   */
  encodeMissing(index: number): Buffer {
    const out = Buffer.allocUnsafe(this.keyBytes + 1)
    this.write(out, index)
    out[this.keyBytes] = 0x2e
    return out
  }

  private write(out: Buffer, index: number): void {
    let n = index
    for (let p = this.keyBytes - 1; p >= 0; p--) {
      const q = Math.floor(n / 10)
      out[p] = 48 + (n - q * 10)
      n = q
    }
  }
}

/**
 * A pseudo-random permutation of [0, n), n <= 2^32, computed on the fly (no
 * table, so bigdata's 20M keys cost no memory): a 4-round Feistel network on
 * the smallest even number of bits that covers n, cycle-walking back into range.
 */
export class Permutation {
  private readonly half: number
  private readonly mask: number
  private readonly roundKeys: number[]

  constructor(
    readonly n: number,
    seed: number,
  ) {
    let bits = 2
    while (2 ** bits < n) bits += 2
    this.half = 2 ** (bits / 2)
    this.mask = this.half - 1
    const random = new SeededRandom(seed)
    this.roundKeys = [random.nextUint32(), random.nextUint32(), random.nextUint32(), random.nextUint32()]
  }

  /** The element at position `i` of the permutation, for i in [0, n). */
  at(i: number): number {
    let x = i
    do x = this.encrypt(x)
    while (x >= this.n)
    return x
  }

  private encrypt(x: number): number {
    let l = Math.floor(x / this.half)
    let r = x - l * this.half
    for (const k of this.roundKeys) {
      let z = Math.imul(r ^ k, 0x9e3779b1)
      z = Math.imul(z ^ (z >>> 15), 0x85ebca6b)
      z ^= z >>> 13
      const t = l ^ (z & this.mask)
      l = r
      r = t
    }
    return l * this.half + r
  }
}

/** Bytes of random data that values are cut from (at least; db_bench's RandomGenerator holds 1 MiB). */
const VALUE_POOL_MIN_BYTES = 1 << 20

/** Bytes of one piece of a compressible pool: db_bench's RandomGenerator builds its data 100 bytes at a time. */
export const VALUE_PIECE_BYTES = 100

/**
 * Random bytes of each compressible piece at `compressionRatio`, as LevelDB's
 * test::CompressibleString: `static_cast<int>(len * ratio)`, at least 1.
 */
export function pieceRandomBytes(compressionRatio: number): number {
  return Math.max(1, Math.floor(VALUE_PIECE_BYTES * compressionRatio))
}

/**
 * Values are `valueBytes`-long windows of one pool of bytes, at a position
 * that depends only on the operation number, so every engine gets the same
 * values. The windows are views of the pool (no allocation per operation); no
 * engine keeps them.
 *
 * compressionRatio 1: the pool is incompressible random bytes and the window
 * of operation `op` starts at a scrambled offset (the bench's values before
 * --compression-ratio existed, kept byte for byte).
 *
 * compressionRatio < 1 (db_bench's --compression_ratio, 0.5 by default): the
 * pool is built as db_bench's RandomGenerator builds it, from 100-byte pieces,
 * each ⌊100 × ratio⌋ random printable characters (' '..'~') repeated to fill
 * 100 (LevelDB's test::CompressibleString), and consecutive operations get
 * consecutive windows (db_bench's Generate(len)). When valueBytes is a
 * multiple of 100, windows are whole pieces: the window of `op` is piece
 * `(op × k) mod (pieces − k + 1)` onward, k = valueBytes / 100, so 100-byte
 * values are single pieces handed out in pool order and wrapping to the first
 * one after the last (exactly db_bench's sequence). Other sizes start at byte
 * `(op × valueBytes) mod (poolBytes − valueBytes + 1)`; they span pieces, so
 * only the small ones compress less (a 100-byte window across two pieces
 * repeats ~25 of its bytes, not 50).
 */
export class ValuePool {
  private readonly pool: Buffer
  private readonly positions: number
  /** Window starts are multiples of VALUE_PIECE_BYTES (compressible pools with valueBytes a multiple of 100). */
  private readonly aligned: boolean

  constructor(
    readonly valueBytes: number,
    seed: number,
    readonly compressionRatio: number,
  ) {
    if (!(compressionRatio > 0 && compressionRatio <= 1)) throw new RangeError(`compression ratio ${compressionRatio} is not in (0, 1]`)
    const random = new SeededRandom(streamSeed(seed, 'values'))
    const minBytes = Math.max(VALUE_POOL_MIN_BYTES, valueBytes * 16)
    if (compressionRatio === 1) {
      const poolBytes = minBytes
      this.pool = Buffer.allocUnsafe(poolBytes)
      for (let i = 0; i + 4 <= poolBytes; i += 4) this.pool.writeUInt32LE(random.nextUint32(), i)
      this.positions = poolBytes - valueBytes + 1
      this.aligned = false
      return
    }
    // Whole pieces, as db_bench appends 100-byte pieces until it has 1 MiB.
    const pieces = Math.ceil(minBytes / VALUE_PIECE_BYTES)
    const poolBytes = pieces * VALUE_PIECE_BYTES
    const raw = pieceRandomBytes(compressionRatio)
    this.pool = Buffer.allocUnsafe(poolBytes)
    for (let p = 0; p < poolBytes; p += VALUE_PIECE_BYTES) {
      for (let i = 0; i < raw; i++) this.pool[p + i] = 0x20 + random.below(95)
      for (let i = raw; i < VALUE_PIECE_BYTES; i++) this.pool[p + i] = this.pool[p + i - raw]
    }
    this.aligned = valueBytes % VALUE_PIECE_BYTES === 0
    this.positions = this.aligned ? pieces - valueBytes / VALUE_PIECE_BYTES + 1 : poolBytes - valueBytes + 1
  }

  /** The value written by operation `op` (a non-negative safe integer). */
  valueFor(op: number): Buffer {
    let offset: number
    if (this.compressionRatio === 1) {
      const start = Math.imul(op, 0x9e3779b1) >>> 0
      offset = start % this.positions
    } else if (this.aligned) {
      // (op mod positions) × k stays below 2^53: positions × k < pool bytes² / 100² ≤ (256 MiB / 100)².
      offset = (((op % this.positions) * (this.valueBytes / VALUE_PIECE_BYTES)) % this.positions) * VALUE_PIECE_BYTES
    } else {
      // (op mod positions) × valueBytes < 256 MiB × 16 MiB < 2^53.
      offset = ((op % this.positions) * this.valueBytes) % this.positions
    }
    return this.pool.subarray(offset, offset + this.valueBytes)
  }
}

/**
 * LZ4 block format codec for table data blocks (docs/format.md, "Block
 * trailer"): chosen by measurement over zlib, brotli and the npm LZ4/Snappy
 * packages (bench/codec-probe.mjs; docs/performance.md, "Block compression").
 * Decompression is the hot path (every block a read loads from disk), so it
 * is ours: it decodes straight into the block cache's buffer.
 *
 * Block format (https://github.com/lz4/lz4/blob/dev/doc/lz4_Block_format.md),
 * a sequence of
 *   token (u8: literal length << 4 | match length - 4)
 *   [literal length - 15 as bytes of 255 ... < 255]   when the nibble is 15
 *   literals
 *   u16 LE offset (1 .. 65535)                          not in the last sequence
 *   [match length - 19 as bytes of 255 ... < 255]       when the nibble is 15
 * The last sequence holds literals only; the last 5 bytes of the input are
 * always literals and no match starts within the last 12 bytes, so any LZ4
 * block decoder reads the output. Neither function stores the raw size: the
 * caller keeps it.
 */

const MIN_MATCH = 4
/** The last 5 bytes are always literals. */
const LAST_LITERALS = 5
/** A match may not start within the last 12 bytes. */
const MF_LIMIT = 12
const MAX_OFFSET = 65535
/** 4096 entries of i32 positions (16 KiB): plenty for 4 KiB blocks. */
const HASH_LOG = 12
/**
 * After 2^SKIP_TRIGGER misses in a row the search starts skipping bytes, one
 * more every 2^SKIP_TRIGGER misses (LZ4's acceleration 1 uses 6). 4: on bench
 * blocks 224 -> 328 MB/s at the same ratio (the backward extension finds the
 * start of a match the skipping passed), JSON records +4% at +0.001 ratio,
 * English text +8% at 0.804 -> 0.817, incompressible blocks given up 3.4x
 * sooner (bench/lz4-skip-probe.mjs; docs/performance.md, "Block compression").
 */
const SKIP_TRIGGER = 4
/** Copies at least this long use TypedArray.set / copyWithin; shorter ones a byte loop. */
const COPY_LOOP_MAX = 32

const scratchTable = new Int32Array(1 << HASH_LOG)

/** Worst-case compressed size of `n` input bytes (LZ4_compressBound). */
export function lz4CompressBound(n: number): number {
  return n + Math.floor(n / 255) + 16
}

function read32(b: Uint8Array, i: number): number {
  return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)
}

function hash32(v: number): number {
  return Math.imul(v, 2654435761) >>> (32 - HASH_LOG)
}

/**
 * A plain Uint8Array over the same memory: Buffer.prototype.subarray goes
 * through Buffer's species constructor and costs several times what a
 * Uint8Array's does, and the long copies below take subarrays.
 */
function plain(b: Uint8Array): Uint8Array {
  return b.constructor === Uint8Array ? b : new Uint8Array(b.buffer, b.byteOffset, b.length)
}

/**
 * Compresses `input` into `output` and returns the compressed length, or 0
 * when it would exceed `limit` bytes (the caller then stores the block raw).
 * It stops at the first sequence past the limit; on input with no matches
 * that is the end, so giving up costs one scan (skipping after 2^SKIP_TRIGGER
 * misses). `output` must hold min(limit, lz4CompressBound(input.length))
 * bytes. The hash table is scratch, cleared on every call, so the output
 * depends on `input` alone.
 */
export function lz4CompressBlock(input: Uint8Array, output: Uint8Array, limit = output.length): number {
  const src = plain(input)
  const dst = plain(output)
  const table = scratchTable
  const n = src.length
  let ip = 0
  let anchor = 0
  let op = 0
  if (n >= MF_LIMIT + 1) {
    table.fill(-1)
    const mfLimit = n - MF_LIMIT
    const matchLimit = n - LAST_LITERALS
    table[hash32(read32(src, 0))] = 0
    ip = 1
    outer: for (;;) {
      // Find a match: greedy, one candidate per hash bucket.
      let ref: number
      let searches = 1 << SKIP_TRIGGER
      if (ip > mfLimit) break
      let seq = read32(src, ip)
      for (;;) {
        const h = hash32(seq)
        ref = table[h]
        table[h] = ip
        if (ref >= 0 && ip - ref <= MAX_OFFSET && read32(src, ref) === seq) break
        const step = searches++ >> SKIP_TRIGGER
        ip += step
        if (ip > mfLimit) break outer
        // One step on: shift the next byte in rather than reading four (~10% faster on bench blocks).
        seq = step === 1 ? (seq >>> 8) | (src[ip + 3] << 24) : read32(src, ip)
      }
      // Extend backwards over literals that match too.
      while (ip > anchor && ref > 0 && src[ip - 1] === src[ref - 1]) {
        ip--
        ref--
      }
      // Extend forwards, stopping LAST_LITERALS before the end.
      let end = ip + MIN_MATCH
      let r = ref + MIN_MATCH
      while (end < matchLimit && src[end] === src[r]) {
        end++
        r++
      }
      const litLen = ip - anchor
      const matchLen = end - ip - MIN_MATCH
      // token + literal length bytes + literals + offset + match length bytes
      if (op + 1 + litLen + (((litLen + 240) / 255) | 0) + 2 + (((matchLen + 240) / 255) | 0) > limit) return 0
      const tokenAt = op++
      let token: number
      if (litLen >= 15) {
        token = 15 << 4
        let l = litLen - 15
        for (; l >= 255; l -= 255) dst[op++] = 255
        dst[op++] = l
      } else token = litLen << 4
      if (litLen < COPY_LOOP_MAX) for (let i = anchor; i < ip; i++) dst[op++] = src[i]
      else {
        dst.set(src.subarray(anchor, ip), op)
        op += litLen
      }
      const offset = ip - ref
      dst[op++] = offset & 0xff
      dst[op++] = offset >>> 8
      if (matchLen >= 15) {
        token |= 15
        let l = matchLen - 15
        for (; l >= 255; l -= 255) dst[op++] = 255
        dst[op++] = l
      } else token |= matchLen
      dst[tokenAt] = token
      ip = end
      anchor = ip
      if (ip > mfLimit) break
      // Index a position inside the match, as LZ4 does, to find the next one sooner.
      table[hash32(read32(src, ip - 2))] = ip - 2
    }
  }
  // Last literals.
  const litLen = n - anchor
  if (op + 1 + litLen + (((litLen + 240) / 255) | 0) > limit) return 0
  if (litLen >= 15) {
    dst[op++] = 15 << 4
    let l = litLen - 15
    for (; l >= 255; l -= 255) dst[op++] = 255
    dst[op++] = l
  } else dst[op++] = litLen << 4
  if (litLen < COPY_LOOP_MAX) for (let i = anchor; i < n; i++) dst[op++] = src[i]
  else {
    dst.set(src.subarray(anchor, n), op)
    op += litLen
  }
  return op
}

/**
 * Decompresses the LZ4 block `input[start, end)` into `output`, which must be
 * exactly the raw size. Throws an Error on malformed input (an offset before
 * the start of the output, a copy past the end of either buffer, a raw size
 * other than output.length): a damaged block fails loudly rather than
 * reading stale bytes (callers turn it into STRATA_CORRUPTION).
 */
export function lz4DecompressBlock(input: Uint8Array, output: Uint8Array, start = 0, end = input.length): void {
  const src = plain(input)
  const dst = plain(output)
  const dstEnd = dst.length
  let ip = start
  let op = 0
  for (;;) {
    if (ip >= end) throw new Error('lz4: truncated block')
    const token = src[ip++]
    // Literals.
    let litLen = token >>> 4
    if (litLen === 15) {
      let b: number
      do {
        if (ip >= end) throw new Error('lz4: truncated literal length')
        b = src[ip++]
        litLen += b
      } while (b === 255)
    }
    if (litLen > 0) {
      const litEnd = ip + litLen
      if (!(litEnd <= end && op + litLen <= dstEnd)) throw new Error('lz4: literals run past the end')
      if (litLen < COPY_LOOP_MAX) while (ip < litEnd) dst[op++] = src[ip++]
      else {
        dst.set(src.subarray(ip, litEnd), op)
        ip = litEnd
        op += litLen
      }
    }
    if (ip === end) break // the last sequence has no match
    // Match.
    if (ip + 2 > end) throw new Error('lz4: truncated match offset')
    const offset = src[ip] | (src[ip + 1] << 8)
    ip += 2
    let matchLen = token & 15
    if (matchLen === 15) {
      let b: number
      do {
        if (ip >= end) throw new Error('lz4: truncated match length')
        b = src[ip++]
        matchLen += b
      } while (b === 255)
    }
    matchLen += MIN_MATCH
    let ref = op - offset
    if (offset === 0 || ref < 0) throw new Error('lz4: bad match offset')
    const matchEnd = op + matchLen
    if (!(matchEnd <= dstEnd)) throw new Error('lz4: match runs past the end')
    if (matchLen >= COPY_LOOP_MAX && offset >= matchLen) {
      dst.copyWithin(op, ref, ref + matchLen) // no overlap: memmove is the LZ copy
      op = matchEnd
    } else while (op < matchEnd) dst[op++] = dst[ref++] // an overlap repeats the pattern byte by byte
  }
  if (op !== dstEnd) throw new Error(`lz4: decoded ${op} bytes, expected ${dstEnd}`)
}

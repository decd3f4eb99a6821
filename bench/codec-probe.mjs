// Block-compression codecs for SSTable data blocks, side by side: what each
// one saves and what it costs per ~4 KiB block, compressing (table writers,
// off the read path) and above all decompressing (every block-cache miss of
// a point read).
//
// It synthesizes data blocks in the engine's format (docs/format.md,
// "Block"): entries of varint shared | varint unshared | varint valueLength |
// u8 kind | varint sequence | key suffix | value, with sorted random 16-byte
// keys prefix-compressed against the restart key of their run (a restart
// every 16 entries), random sequences and 100-byte values; then the tail of
// u32 restart offsets, the hash index (3-byte buckets, u16 bucket count) and
// the u32 restart count with the hash-index flag. Blocks are closed once they
// reach 4096 bytes, as the table builder does.
//
// Three value sets, each of 100-byte values:
//   half-compressible  db_bench's RandomGenerator with compression_ratio 0.5:
//                      a 1 MiB pool of 100-byte pieces, each 50 random
//                      printable characters (' '..'~') repeated to fill 100;
//                      values are 100-byte windows at pseudo-random offsets.
//                      Such a window straddles two pieces, so only ~25 of its
//                      100 bytes repeat within it: LZ codecs get ~0.84, not 0.5.
//   aligned            the same pool, but values are whole pieces (offsets at
//                      multiples of 100), as db_bench's sequential generator
//                      hands out 100-byte values: ~50 bytes repeat.
//   incompressible     windows of a pool of random bytes (what `strata bench`
//                      writes today): how cheaply a codec gives up.
//
// For every codec it reports: the ratio (compressed bytes / raw bytes over
// all blocks; a codec that gives up counts the raw size), the fraction of
// blocks that would be stored raw because they did not shrink by at least
// 1/8, compress throughput and (half-compressible sets) decompress throughput
// in MB/s of raw bytes (one call per block, one thread), and the
// decompression time per block. Throughput is the median of --passes timed
// passes of at least --min-ms each, after a warm-up of --warmup-ms. Each codec is
// measured in a process of its own (fresh heap and JIT state: one codec's
// garbage and allocations would otherwise slow the next); with --runs N every
// codec is measured N times, the order rotating from run to run so drifts in
// the shared machine's load do not always hit the same codecs, and the tables
// show the median of the N runs. Every codec's output is decompressed and
// compared with the input for every block, in every run, before it is timed
// (a mismatch aborts the probe); the engine's LZ4 codec
// (src/sstable/lz4.ts, built into dist/) is also cross-checked against lz4js and lz4-wasm
// in both directions, on odd inputs too, and must reject malformed blocks.
//
// Decompressors whose API takes an output buffer decode into one allocated
// before timing (one per block), so their figures are the decoding alone: the
// engine would decode into a chunk of the block cache's slabs. Those marked *
// allocate their output on every call (the engine would then also copy it
// into the chunk); our codec's "+ alloc" row does the same, for a
// like-for-like comparison. A fresh ~4 KiB Buffer is not free (blocks are just
// over Node's 4 KiB pool limit, so each is an ArrayBuffer of its own): the
// probe prints what Buffer.allocUnsafe costs alone. "none (copy)" is a plain
// copy into the output: the floor.
//
//   node bench/codec-probe.mjs [--runs N] [--blocks 2048] [--passes 7] [--min-ms 50]
//                              [--warmup-ms 1000] [--only name,name] [--json FILE]
//
// One run takes about two minutes; --runs 3 about six.
//
// Codecs from npm are development dependencies (fflate, lz4js, lz4-wasm,
// snappyjs). lz4-wasm is built for bundlers (it imports its .wasm as an ES
// module), so the probe re-runs itself with --experimental-wasm-modules; and
// with --no-liftoff, so wasm runs optimized code from the first call (else it
// starts on V8's baseline compiler and tiers up in a background thread,
// which on a busy 2-core machine can take longer than the warm-up).
import { spawnSync } from 'node:child_process'
import * as fs from 'node:fs'
import { createRequire } from 'node:module'
import * as os from 'node:os'
import { fileURLToPath } from 'node:url'
import * as zlib from 'node:zlib'

if (!process.execArgv.includes('--experimental-wasm-modules')) {
  const flags = ['--experimental-wasm-modules', '--no-liftoff', '--disable-warning=ExperimentalWarning', ...process.execArgv]
  const child = spawnSync(process.execPath, [...flags, fileURLToPath(import.meta.url), ...process.argv.slice(2)], { stdio: 'inherit' })
  process.exit(child.status ?? 1)
}

// The engine's own codec (npm run build first); its decoder returns nothing, the probe's callers want the output back.
const lz4 = await import('../dist/sstable/lz4.js')
const { lz4CompressBlock, lz4CompressBound } = lz4
const lz4DecompressBlock = (c, out, ...range) => (lz4.lz4DecompressBlock(c, out, ...range), out)
const require = createRequire(import.meta.url)
const fflate = require('fflate')
const lz4js = require('lz4js')
const snappyjs = require('snappyjs')
const lz4wasm = await import('lz4-wasm/lz4_wasm.js')

// ---------------------------------------------------------------- options

function parseArgs(argv) {
  const o = { runs: 1, blocks: 2048, passes: 7, minMs: 50, warmupMs: 1000, only: null, json: null, child: null }
  for (let i = 0; i < argv.length; i++) {
    const a = argv[i]
    const next = () => {
      if (i + 1 >= argv.length) throw new Error(`${a} needs a value`)
      return argv[++i]
    }
    if (a === '--runs') o.runs = Number(next())
    else if (a === '--blocks') o.blocks = Number(next())
    else if (a === '--passes') o.passes = Number(next())
    else if (a === '--min-ms') o.minMs = Number(next())
    else if (a === '--warmup-ms') o.warmupMs = Number(next())
    else if (a === '--only') o.only = next().split(',')
    else if (a === '--json') o.json = next()
    else if (a === '--child') o.child = next() // internal: measure one codec, print JSON
    else throw new Error(`unknown option ${a}`)
  }
  for (const k of ['runs', 'blocks', 'passes', 'minMs', 'warmupMs']) if (!(Number.isInteger(o[k]) && o[k] >= 1)) throw new Error(`--${k} must be a positive integer`)
  return o
}
const opts = parseArgs(process.argv.slice(2))

// ---------------------------------------------------------------- data

const BLOCK_BYTES = 4096
const RESTART_INTERVAL = 16
const KEY_BYTES = 16
const VALUE_BYTES = 100
const POOL_BYTES = 1 << 20
const KIND_VALUE = 1

/** mulberry32: small, seeded, good enough for test data. */
function random(seed) {
  let s = seed >>> 0
  return () => {
    s = (s + 0x6d2b79f5) | 0
    let t = Math.imul(s ^ (s >>> 15), 1 | s)
    t = (t + Math.imul(t ^ (t >>> 7), 61 | t)) ^ t
    return (t ^ (t >>> 14)) >>> 0
  }
}

/** db_bench RandomGenerator(compression_ratio 0.5): pieces of 50 random printable chars, repeated to 100. */
function halfCompressiblePool(next) {
  const pool = Buffer.allocUnsafe(POOL_BYTES)
  for (let p = 0; p < POOL_BYTES; p += 100) {
    const piece = Math.min(100, POOL_BYTES - p)
    for (let i = 0; i < piece; i++) pool[p + i] = i < 50 ? 0x20 + (next() % 95) : pool[p + i - 50]
  }
  return pool
}

function randomPool(next) {
  const pool = Buffer.allocUnsafe(POOL_BYTES)
  for (let i = 0; i < POOL_BYTES; i += 4) pool.writeUInt32LE(next(), i)
  return pool
}

function writeVarint(buf, o, v) {
  while (v >= 0x80) {
    buf[o++] = (v % 0x80) | 0x80
    v = Math.floor(v / 0x80)
  }
  buf[o++] = v
  return o
}

function keyHash(key) {
  let h = 0x811c9dc5
  for (let i = 0; i < key.length; i++) h = Math.imul(h ^ key[i], 0x01000193)
  return h >>> 0
}

/** The tail of a data block: restart offsets, hash index, restart count | hash-index flag. */
function blockTail(restarts, keyOffsets, keyHashes) {
  const n = keyOffsets.length
  const buckets = Math.max(n + 1, Math.ceil((n * 4) / 3))
  const tail = Buffer.alloc(restarts.length * 4 + buckets * 3 + 2 + 4, 0xff)
  let o = 0
  for (const r of restarts) o = tail.writeUInt32LE(r, o)
  for (let k = 0; k < n; k++) {
    let b = (Math.imul(keyHashes[k], 0x9e3779b1) >>> 0) % buckets
    while (tail.readUInt16LE(o + b * 3 + 1) !== 0xffff) b = b + 1 === buckets ? 0 : b + 1
    tail[o + b * 3] = keyHashes[k] >>> 24
    tail.writeUInt16LE(keyOffsets[k], o + b * 3 + 1)
  }
  o = tail.writeUInt16LE(buckets, o + buckets * 3)
  tail.writeUInt32LE((restarts.length | 0x8000_0000) >>> 0, o)
  return tail
}

/**
 * `count` data blocks of sorted random keys whose values are windows of
 * `pool`: at any offset, or (`aligned`) at multiples of 100, so each value is
 * one whole 50+50 piece, as db_bench's sequential generator hands them out.
 */
function buildBlocks(count, pool, seed, aligned = false) {
  const next = random(seed)
  // Enough sorted keys for every block (a 4 KiB block holds ~32 entries).
  const keys = []
  for (let i = 0; i < count * 40; i++) {
    const k = Buffer.allocUnsafe(KEY_BYTES)
    for (let j = 0; j < KEY_BYTES; j += 4) k.writeUInt32BE(next(), j)
    keys.push(k)
  }
  keys.sort(Buffer.compare)
  const blocks = []
  const scratch = Buffer.allocUnsafe(2 * BLOCK_BYTES)
  let k = 0
  for (let b = 0; b < count; b++) {
    let used = 0
    let head = null
    const restarts = []
    const keyOffsets = []
    const keyHashes = []
    for (let n = 0; ; n++) {
      const key = keys[k++]
      let shared = 0
      if (n % RESTART_INTERVAL === 0) {
        restarts.push(used)
        head = key
      } else while (shared < KEY_BYTES && head[shared] === key[shared]) shared++
      keyOffsets.push(used)
      keyHashes.push(keyHash(key))
      used = writeVarint(scratch, used, shared)
      used = writeVarint(scratch, used, KEY_BYTES - shared)
      used = writeVarint(scratch, used, VALUE_BYTES)
      scratch[used++] = KIND_VALUE
      used = writeVarint(scratch, used, next()) // sequence: random, < 2^32
      used += key.copy(scratch, used, shared)
      const at = aligned ? (next() % Math.floor(POOL_BYTES / 100)) * 100 : next() % (POOL_BYTES - VALUE_BYTES + 1)
      used += pool.copy(scratch, used, at, at + VALUE_BYTES)
      const estimated = used + restarts.length * 4 + Math.max(n + 2, Math.ceil(((n + 1) * 4) / 3)) * 3 + 6
      if (estimated >= BLOCK_BYTES) break
    }
    blocks.push(Buffer.concat([scratch.subarray(0, used), blockTail(restarts, keyOffsets, keyHashes)]))
  }
  return blocks
}

// ---------------------------------------------------------------- codecs

/**
 * Each codec: compress(raw) returns the compressed bytes (a Uint8Array, maybe
 * a view of scratch memory that the caller copies if it keeps it) or null when
 * the codec gave up; decompress(compressed, out) returns the raw bytes: in
 * `out` (a buffer of exactly the raw size) where the API takes an output
 * buffer, else in one it allocates itself (`ownAlloc`).
 */
const lz4Scratch = Buffer.allocUnsafe(lz4CompressBound(64 * 1024))
const lz4jsScratch = new Uint8Array(lz4js.compressBound(64 * 1024))
const lz4jsTable = new Uint32Array(1 << 16)
/** Stored compressed only if it shrinks by at least 1/8. */
const keepLimit = (raw) => raw - Math.ceil(raw / 8)

const zlibCodec = (name, options) => ({
  name,
  compress: (raw) => zlib.deflateRawSync(raw, options),
  decompress: (c) => zlib.inflateRawSync(c),
  ownAlloc: true,
})

const CODECS = [
  {
    name: 'none (copy)',
    compress: (raw) => raw,
    decompress: (c, out) => {
      c.copy(out)
      return out
    },
  },
  {
    name: 'lz4, ours (TS)',
    // Gives up as soon as the output would not shrink the block by 1/8.
    compress: (raw) => {
      const n = lz4CompressBlock(raw, lz4Scratch, keepLimit(raw.length))
      return n === 0 ? null : lz4Scratch.subarray(0, n)
    },
    decompress: (c, out) => lz4DecompressBlock(c, out),
  },
  {
    // The same, allocating the output per call like the * decompressors: the like-for-like row.
    name: 'lz4, ours + alloc',
    compress: (raw) => {
      const n = lz4CompressBlock(raw, lz4Scratch, keepLimit(raw.length))
      return n === 0 ? null : lz4Scratch.subarray(0, n)
    },
    decompress: (c, out) => lz4DecompressBlock(c, Buffer.allocUnsafe(out.length)),
    ownAlloc: true,
  },
  {
    name: 'lz4js block',
    compress: (raw) => {
      // Cleared per call as lz4js's own compress() does: a stale entry can point at the current position (offset 0).
      lz4jsTable.fill(0)
      const n = lz4js.compressBlock(raw, lz4jsScratch, 0, raw.length, lz4jsTable)
      return n === 0 ? null : lz4jsScratch.subarray(0, n)
    },
    decompress: (c, out) => {
      lz4js.decompressBlock(c, out, 0, c.length, 0)
      return out
    },
  },
  {
    name: 'lz4-wasm',
    // lz4_flex's size-prepended block format (4-byte raw size + LZ4 block).
    compress: (raw) => lz4wasm.compress(raw),
    decompress: (c) => lz4wasm.decompress(c),
    ownAlloc: true,
  },
  {
    name: 'snappyjs',
    compress: (raw) => snappyjs.compress(raw),
    decompress: (c) => snappyjs.uncompress(c),
    ownAlloc: true,
  },
  {
    name: 'fflate deflate 1',
    compress: (raw) => fflate.deflateSync(raw, { level: 1 }),
    decompress: (c, out) => fflate.inflateSync(c, { out }),
  },
  zlibCodec('zlib deflateRaw 1', { level: 1 }),
  zlibCodec('zlib deflateRaw 6', { level: 6 }),
  zlibCodec('zlib deflateRaw 1 RLE', { level: 1, strategy: zlib.constants.Z_RLE }),
  zlibCodec('zlib deflateRaw 1 huffman', { level: 1, strategy: zlib.constants.Z_HUFFMAN_ONLY }),
  {
    name: 'brotli q1',
    compress: (raw) =>
      zlib.brotliCompressSync(raw, {
        params: { [zlib.constants.BROTLI_PARAM_QUALITY]: 1, [zlib.constants.BROTLI_PARAM_SIZE_HINT]: raw.length },
      }),
    decompress: (c) => zlib.brotliDecompressSync(c),
    ownAlloc: true,
  },
].filter((c) => opts.only === null || opts.only.some((o) => c.name.includes(o)))

// ---------------------------------------------------------------- checks

function fail(message) {
  console.error(`ROUND-TRIP FAILURE: ${message}`)
  process.exit(2)
}

function sameBytes(a, b) {
  return a.length === b.length && Buffer.compare(Buffer.from(a.buffer, a.byteOffset, a.length), Buffer.from(b.buffer, b.byteOffset, b.length)) === 0
}

/** Compresses and decompresses every block; returns the compressed blocks and the size figures. */
function verify(codec, blocks, label) {
  const compressed = []
  let rawBytes = 0
  let outBytes = 0
  let storedRaw = 0
  for (let i = 0; i < blocks.length; i++) {
    const raw = blocks[i]
    const r = codec.compress(raw)
    rawBytes += raw.length
    if (r === null) {
      compressed.push(null)
      outBytes += raw.length
      storedRaw++
      continue
    }
    const c = Buffer.from(r) // own copy: r may be scratch memory
    compressed.push(c)
    outBytes += c.length
    if (c.length > keepLimit(raw.length)) storedRaw++
    let back
    try {
      back = codec.decompress(c, Buffer.alloc(raw.length))
    } catch (e) {
      fail(`${codec.name}, ${label} block ${i}: decompress threw ${e.message}`)
    }
    if (!sameBytes(back, raw)) fail(`${codec.name}, ${label} block ${i}: decompressed bytes differ from the input`)
  }
  return { compressed, ratio: outBytes / rawBytes, storedRawFraction: storedRaw / blocks.length }
}

/** Our codec's output must decode with lz4js and lz4-wasm, and it must decode theirs. */
function crossCheckOurs(inputs) {
  for (let i = 0; i < inputs.length; i++) {
    const raw = inputs[i]
    const scratch = Buffer.allocUnsafe(lz4CompressBound(raw.length))
    const ours = Buffer.from(scratch.subarray(0, lz4CompressBlock(raw, scratch)))
    const viaLz4js = new Uint8Array(raw.length)
    if (lz4js.decompressBlock(ours, viaLz4js, 0, ours.length, 0) !== raw.length || !sameBytes(viaLz4js, raw)) fail(`our output of input ${i} does not decode with lz4js`)
    const sized = Buffer.alloc(4 + ours.length)
    sized.writeUInt32LE(raw.length, 0)
    ours.copy(sized, 4)
    if (!sameBytes(lz4wasm.decompress(sized), raw)) fail(`our output of input ${i} does not decode with lz4-wasm`)
    if (!sameBytes(lz4DecompressBlock(ours, Buffer.allocUnsafe(raw.length)), raw)) fail(`our codec does not round-trip input ${i}`)
    const theirs = lz4wasm.compress(raw)
    if (!sameBytes(lz4DecompressBlock(theirs, Buffer.allocUnsafe(raw.length), 4), raw)) fail(`our codec does not decode lz4-wasm's output of input ${i}`)
    const lz4jsOut = new Uint8Array(lz4js.compressBound(raw.length))
    const n = lz4js.compressBlock(raw, lz4jsOut, 0, raw.length, new Uint32Array(1 << 16))
    if (n > 0 && !sameBytes(lz4DecompressBlock(lz4jsOut, Buffer.allocUnsafe(raw.length), 0, n), raw)) fail(`our codec does not decode lz4js's output of input ${i}`)
  }
  // Malformed input must throw, not return garbage.
  const good = Buffer.from(lz4Scratch.subarray(0, lz4CompressBlock(inputs[0], lz4Scratch)))
  for (const [what, bad, size] of [
    ['truncated', good.subarray(0, good.length - 7), inputs[0].length],
    ['wrong raw size', good, inputs[0].length - 1],
    ['bad offset', Buffer.from([0x10, 0x41, 0xff, 0xff, 0x00]), 8],
  ]) {
    let threw = false
    try {
      lz4DecompressBlock(bad, Buffer.allocUnsafe(size))
    } catch {
      threw = true
    }
    if (!threw) fail(`our codec accepted a ${what} block`)
  }
}

/** Odd inputs for the cross-check: empty, tiny, runs, long-range matches beyond 64 KiB. */
function edgeInputs(next) {
  const rnd = (n) => Buffer.from(Array.from({ length: n }, () => next() & 0xff))
  const far = rnd(70_000)
  rnd(100).copy(far, 0)
  far.copy(far, 69_000, 0, 100) // a repeat 69,000 bytes back: beyond LZ4's window
  return [Buffer.alloc(0), rnd(1), rnd(12), rnd(13), Buffer.alloc(13, 7), Buffer.alloc(5000, 0), Buffer.alloc(70_000, 'abc'), rnd(300), Buffer.concat([rnd(20), Buffer.alloc(1000, 9), rnd(20)]), far]
}

// ---------------------------------------------------------------- timing

let sink = 0

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  const m = s.length >> 1
  return s.length % 2 === 1 ? s[m] : (s[m - 1] + s[m]) / 2
}

/**
 * Median throughput, in MB/s of raw bytes, of `fn(i)` over the blocks, where
 * `sizes[i]` is block i's raw size (0 for a block it skips): a warm-up pass
 * of --warmup-ms, then --passes timed passes of at least --min-ms. A pass goes
 * on from the block where the last one stopped, so slow and fast codecs get
 * passes of about the same length. The warm-up is long because allocation
 * is not steady at first: in a fresh process a 4 KiB Buffer costs 10-20 µs
 * while V8 adapts its GC heuristics to the external memory, ~0.5 µs a second
 * later.
 */
function throughput(fn, sizes) {
  const count = sizes.length
  let i = 0
  const pass = (ms) => {
    let bytes = 0
    let elapsed
    const start = performance.now()
    do {
      for (let k = 0; k < 32; k++) {
        fn(i)
        bytes += sizes[i]
        i = i + 1 === count ? 0 : i + 1
      }
      elapsed = performance.now() - start
    } while (elapsed < ms)
    return bytes / 1e6 / (elapsed / 1e3)
  }
  pass(opts.warmupMs)
  const results = []
  for (let p = 0; p < opts.passes; p++) results.push(pass(opts.minMs))
  return median(results)
}

// ---------------------------------------------------------------- data sets

function buildSets() {
  const halfPool = halfCompressiblePool(random(1))
  const sets = [
    { key: 'half', label: 'half-compressible values, windows at random offsets', blocks: buildBlocks(opts.blocks, halfPool, 2), decompress: true },
    { key: 'aligned', label: 'half-compressible values, whole pieces (db_bench sequential)', blocks: buildBlocks(opts.blocks, halfPool, 6, true), decompress: true },
    { key: 'inc', label: 'incompressible values', blocks: buildBlocks(opts.blocks, randomPool(random(3)), 4), decompress: false },
  ]
  for (const set of sets) {
    set.sizes = set.blocks.map((b) => b.length)
    set.bytes = set.sizes.reduce((a, b) => a + b, 0)
  }
  return sets
}

// ---------------------------------------------------------------- child: one codec

/**
 * Measures one codec (or, for ALLOC, a bare Buffer.allocUnsafe per block) in
 * this process and prints its figures as JSON: each codec gets a fresh heap
 * and JIT state, so one codec's garbage and allocations do not slow another.
 */
function measureOne(name) {
  const sets = buildSets()
  if (name === ALLOC) {
    const half = sets[0]
    return { allocMBs: throughput((i) => (sink ^= Buffer.allocUnsafe(half.sizes[i]).length), half.sizes) }
  }
  const codec = CODECS.find((c) => c.name === name)
  if (codec === undefined) throw new Error(`no codec ${name}`)
  if (codec.name.startsWith('lz4, ours')) crossCheckOurs([...sets[0].blocks.slice(0, 200), ...sets[1].blocks.slice(0, 100), ...sets[2].blocks.slice(0, 50), ...edgeInputs(random(5))])
  const out = {}
  // Decompression first, on a heap that compression has not churned yet.
  for (const set of sets) {
    const { compressed, ratio, storedRawFraction } = verify(codec, set.blocks, set.label)
    const r = (out[set.key] = { ratio, storedRawFraction })
    if (!set.decompress) continue
    // Decompression targets, one per block, allocated beforehand (the engine decodes into block-cache slab chunks).
    const outs = set.blocks.map((b) => Buffer.allocUnsafe(b.length))
    r.decompressMBs = throughput(
      (i) => {
        const c = compressed[i]
        if (c !== null) sink ^= codec.decompress(c, outs[i])[7]
      },
      set.sizes.map((n, i) => (compressed[i] === null ? 0 : n)),
    )
  }
  for (const set of sets) {
    const { blocks } = set
    out[set.key].compressMBs = throughput((i) => {
      const c = codec.compress(blocks[i])
      if (c !== null) sink ^= c.length
    }, set.sizes)
  }
  return out
}

// ---------------------------------------------------------------- main

const ALLOC = 'Buffer.allocUnsafe'

if (opts.child !== null) {
  const result = measureOne(opts.child)
  process.stdout.write(JSON.stringify({ result, sink: sink & 1 }))
  process.exit(0)
}

function runChild(name) {
  const args = [...process.execArgv, fileURLToPath(import.meta.url), '--child', name, '--blocks', String(opts.blocks), '--passes', String(opts.passes), '--min-ms', String(opts.minMs), '--warmup-ms', String(opts.warmupMs)]
  const child = spawnSync(process.execPath, args, { stdio: ['ignore', 'pipe', 'inherit'], maxBuffer: 1 << 20 })
  if (child.status !== 0) {
    console.error(`codec-probe: measuring ${name} failed (exit ${child.status}${child.signal ? `, ${child.signal}` : ''})`)
    process.exit(child.status || 2)
  }
  return JSON.parse(child.stdout.toString()).result
}

const t0 = performance.now()
const SETS = buildSets()
const blockBytes = SETS[0].bytes / SETS[0].blocks.length
console.log(
  `codec-probe: ${opts.blocks} blocks of ${blockBytes.toFixed(0)} bytes on average (${(SETS[0].bytes / 2 ** 20).toFixed(1)} MiB) per value set; ` +
    `each codec in its own process; medians of ${opts.passes} passes of >= ${opts.minMs} ms after ${opts.warmupMs} ms of warm-up; ${opts.runs} run(s)`,
)
console.log(`node ${process.version}, ${os.cpus().length} cores (${os.cpus()[0]?.model ?? '?'}), load ${os.loadavg()[0].toFixed(2)} at the start`)

/** perRun.get(name) = [one child's result per run] */
const subjects = [...CODECS.map((c) => c.name), ALLOC]
const perRun = new Map(subjects.map((n) => [n, []]))
for (let run = 0; run < opts.runs; run++) {
  for (let k = 0; k < subjects.length; k++) {
    const name = subjects[(k + run) % subjects.length] // rotate the order, so slow drifts in machine load do not always hit the same codecs
    perRun.get(name).push(runChild(name))
  }
}

const rows = CODECS.map((codec) => {
  const results = perRun.get(codec.name)
  const row = { codec: codec.name, ownAlloc: codec.ownAlloc === true }
  for (const set of SETS) {
    const first = results[0][set.key]
    const r = { ratio: first.ratio, storedRaw: first.storedRawFraction, compressMBs: median(results.map((x) => x[set.key].compressMBs)) }
    if (set.decompress) {
      r.decompressMBs = median(results.map((x) => x[set.key].decompressMBs))
      r.usPerBlock = set.bytes / set.blocks.length / r.decompressMBs
    }
    row[set.key] = r
  }
  return row
})

function printTable(title, header, cells) {
  const widths = header.map((h, i) => Math.max(h.length, ...cells.map((c) => c[i].length)))
  const line = (c) => c.map((x, i) => (i === 0 ? x.padEnd(widths[i]) : x.padStart(widths[i]))).join('  ')
  console.log(`\n${title}`)
  console.log(line(header))
  for (const c of cells) console.log(line(c))
}
const name = (r) => r.codec + (r.ownAlloc ? ' *' : '')
const pct = (f) => (f * 100).toFixed(0)
printTable(
  `${SETS[0].label}  |  ${SETS[2].label}`,
  ['codec', 'ratio', 'raw%', 'comp MB/s', 'decomp MB/s', 'µs/blk dec', 'incompr ratio', 'raw%', 'incompr comp MB/s'],
  rows.map((r) => [name(r), r.half.ratio.toFixed(3), pct(r.half.storedRaw), r.half.compressMBs.toFixed(0), r.half.decompressMBs.toFixed(0), r.half.usPerBlock.toFixed(2), r.inc.ratio.toFixed(3), pct(r.inc.storedRaw), r.inc.compressMBs.toFixed(0)]),
)
printTable(
  SETS[1].label,
  ['codec', 'ratio', 'raw%', 'comp MB/s', 'decomp MB/s', 'µs/blk dec'],
  rows.map((r) => [name(r), r.aligned.ratio.toFixed(3), pct(r.aligned.storedRaw), r.aligned.compressMBs.toFixed(0), r.aligned.decompressMBs.toFixed(0), r.aligned.usPerBlock.toFixed(2)]),
)
const allocUs = blockBytes / median(perRun.get(ALLOC).map((x) => x.allocMBs))
console.log(`
ratio: compressed/raw bytes over all blocks (a codec that gives up counts raw); raw%: blocks not shrunk by >= 1/8, stored raw.
MB/s are of raw bytes. * = the decompressor allocates its output (its figures include that); the others decode into a
buffer allocated before timing. Buffer.allocUnsafe(${Math.round(blockBytes)}) alone: ${allocUs.toFixed(2)} µs per block.
Every round trip verified; ${((performance.now() - t0) / 1e3).toFixed(0)} s in all, load ${os.loadavg()[0].toFixed(2)} at the end.`)
if (opts.json !== null) fs.writeFileSync(opts.json, JSON.stringify({ options: opts, blockBytes, allocUsPerBlock: allocUs, rows }, null, 2))

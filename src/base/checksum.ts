import xxhash from 'xxhash-wasm'
import type { XXHashAPI } from 'xxhash-wasm'
import { assert } from './assert.js'

/**
 * The one importer of xxhash-wasm. The WebAssembly module is instantiated once
 * per process by `initChecksum()` (awaited by `open()`); afterwards hashing is
 * synchronous, which the synchronous read path (`getSync`) depends on.
 */
let api: XXHashAPI | undefined

/** Instantiates the hash module; idempotent. */
export async function initChecksum(): Promise<void> {
  if (api === undefined) api = await xxhash()
}

/** XXH32 of `data` with `seed`: block, record and footer checksums. */
export function checksum32(data: Uint8Array, seed = 0): number {
  assert(api !== undefined, 'initChecksum() must be awaited before hashing')
  return api.h32Raw(data, seed) >>> 0
}

/**
 * The low 32 bits of XXH64(data, seed 0): checksums of table blocks (format
 * version 2). XXH64 runs about twice as fast as XXH32 over a 4 KiB block in
 * xxhash-wasm (~0.6 vs ~1.0 µs, docs/performance.md); 32 bits detect damage as well.
 */
export function checksum64Low32(data: Uint8Array): number {
  assert(api !== undefined, 'initChecksum() must be awaited before hashing')
  return Number(BigInt.asUintN(32, api.h64Raw(data, 0n)))
}

const P1 = 0x9e37_79b1
const P2 = 0x85eb_ca77
const P3 = 0xc2b2_ae3d
const P4 = 0x27d4_eb2f
const P5 = 0x1656_67b1

function rotl32(x: number, r: number): number {
  return (x << r) | (x >>> (32 - r))
}

function readU32LE(b: Uint8Array, i: number): number {
  return b[i] | (b[i + 1] << 8) | (b[i + 2] << 16) | (b[i + 3] << 24)
}

/** Inputs up to this long are hashed in JavaScript by xxh32Small (no copy into the wasm memory). */
export const SMALL_HASH_MAX_BYTES = 128

/**
 * XXH32 computed in JavaScript, identical to checksum32 (tested against it):
 * for short inputs such as keys, where the wasm call and the copy of the input
 * into its memory cost more than the hash (16-byte key: 16-17 vs 55-64 ns,
 * docs/performance.md). Longer inputs go to xxhash-wasm.
 */
export function xxh32Small(data: Uint8Array, seed: number): number {
  const len = data.length
  if (len > SMALL_HASH_MAX_BYTES) return checksum32(data, seed)
  let i = 0
  let h: number
  if (len >= 16) {
    let v1 = (seed + P1 + P2) | 0
    let v2 = (seed + P2) | 0
    let v3 = seed | 0
    let v4 = (seed - P1) | 0
    for (const limit = len - 16; i <= limit; i += 16) {
      v1 = Math.imul(rotl32((v1 + Math.imul(readU32LE(data, i), P2)) | 0, 13), P1)
      v2 = Math.imul(rotl32((v2 + Math.imul(readU32LE(data, i + 4), P2)) | 0, 13), P1)
      v3 = Math.imul(rotl32((v3 + Math.imul(readU32LE(data, i + 8), P2)) | 0, 13), P1)
      v4 = Math.imul(rotl32((v4 + Math.imul(readU32LE(data, i + 12), P2)) | 0, 13), P1)
    }
    h = (rotl32(v1, 1) + rotl32(v2, 7) + rotl32(v3, 12) + rotl32(v4, 18)) | 0
  } else {
    h = (seed + P5) | 0
  }
  h = (h + len) | 0
  for (; i + 4 <= len; i += 4) h = Math.imul(rotl32((h + Math.imul(readU32LE(data, i), P3)) | 0, 17), P4)
  for (; i < len; i++) h = Math.imul(rotl32((h + Math.imul(data[i], P5)) | 0, 11), P1)
  h ^= h >>> 15
  h = Math.imul(h, P2)
  h ^= h >>> 13
  h = Math.imul(h, P3)
  h ^= h >>> 16
  return h >>> 0
}

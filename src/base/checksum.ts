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

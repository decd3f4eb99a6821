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

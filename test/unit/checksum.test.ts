import { beforeAll, describe, expect, it } from 'vitest'
import { SMALL_HASH_MAX_BYTES, checksum32, xxh32Small } from '../../src/base/checksum.js'
import { ready, rng } from './helpers.js'

describe('xxh32Small', () => {
  beforeAll(ready)

  it('equals xxhash-wasm XXH32 for every length up to past the JavaScript limit, for several seeds', () => {
    const random = rng(11)
    let compared = 0
    for (let len = 0; len <= SMALL_HASH_MAX_BYTES + 20; len++) {
      for (let round = 0; round < 40; round++) {
        const data = Buffer.alloc(len)
        for (let i = 0; i < len; i++) data[i] = Math.floor(random() * 256)
        // The bytes that exercise sign bits: 0x80-0xff in every lane.
        if (round === 0) data.fill(0xff)
        for (const seed of [0, 0x9747_b28c, 0x5354_5241, 1]) {
          expect(xxh32Small(data, seed), `len ${len} seed ${seed}`).toBe(checksum32(data, seed))
          compared++
        }
      }
    }
    expect(compared).toBe((SMALL_HASH_MAX_BYTES + 21) * 40 * 4)
  })

  it('hashes a view at an offset the same as a copy', () => {
    const big = Buffer.from('..........0123456789abcdefghij')
    expect(xxh32Small(big.subarray(10, 30), 7)).toBe(checksum32(Buffer.from(big.subarray(10, 30)), 7))
  })
})

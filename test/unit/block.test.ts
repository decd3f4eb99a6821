import { beforeAll, describe, expect, it } from 'vitest'
import { BlockBuilder } from '../../src/sstable/block-builder.js'
import { BlockIterator } from '../../src/sstable/block-iterator.js'
import { filterHash } from '../../src/sstable/filter-block.js'
import { HASH_BUCKET_BYTES, HASH_INDEX_FLAG } from '../../src/sstable/block-hash-index.js'
import { KIND_DELETE, KIND_PUT } from '../../src/base/entry.js'
import { b, ready, rng } from './helpers.js'

interface E { key: Buffer; seq: number; kind: number; value: Buffer }

function build(entries: E[], restartInterval = 4, hashIndex = false): Buffer {
  const bb = new BlockBuilder(restartInterval, hashIndex)
  let last: Buffer | undefined
  for (const e of entries) {
    const newUserKey = last === undefined || !last.equals(e.key)
    bb.add(e.key, e.seq, e.kind, e.value, filterHash(e.key), newUserKey)
    last = e.key
  }
  return bb.finish()
}

/** Where a point read lands: `key@seq`, or '-' when it is not on a version of `key`. */
function pointRead(it: BlockIterator, key: Buffer, seq: number, viaHash: boolean): string {
  if (viaHash) it.seekPoint(key, seq, filterHash(key))
  else it.seekInternal(key, seq)
  if (!it.valid() || !it.keyEquals(key)) return '-'
  return `${it.key().toString('latin1')}@${it.sequence()}:${it.value().toString('latin1')}`
}

function collect(it: BlockIterator): string[] {
  const out: string[] = []
  for (; it.valid(); it.next()) out.push(`${it.key().toString('latin1')}@${it.sequence()}`)
  return out
}

// Keys with shared prefixes and several versions of one key spanning restart points.
const entries: E[] = [
  ['a', 9], ['ab', 8], ['abc', 7], ['abd', 20], ['abd', 6], ['abd', 3], ['b', 5], ['ba', 4], ['bb', 2], ['c', 1],
].map(([k, s], i) => ({ key: b(k as string), seq: s as number, kind: i === 3 ? KIND_DELETE : KIND_PUT, value: b(`v${i}`) }))

describe('block', () => {
  beforeAll(ready)

  it('round-trips entries in order with prefix compression', () => {
    const block = build(entries)
    const it = new BlockIterator(block, 'test')
    it.seekToFirst()
    expect(collect(it)).toEqual(entries.map((e) => `${e.key.toString('latin1')}@${e.seq}`))
    it.seekToFirst()
    it.next(); it.next(); it.next()
    expect(it.kind()).toBe(KIND_DELETE)
    expect(it.value().length).toBe(2)
  })

  it('walks backwards across restart points', () => {
    const it = new BlockIterator(build(entries, 3), 'test')
    it.seekToLast()
    const out: string[] = []
    for (; it.valid(); it.prev()) out.push(`${it.key().toString('latin1')}@${it.sequence()}`)
    expect(out).toEqual(entries.map((e) => `${e.key.toString('latin1')}@${e.seq}`).reverse())
  })

  it('seeks by user key in both directions', () => {
    for (const interval of [1, 2, 3, 16]) {
      const it = new BlockIterator(build(entries, interval), 'test')
      it.seekGE(b('abd'))
      expect(`${it.key().toString('latin1')}@${it.sequence()}`).toBe('abd@20')
      it.seekGT(b('abd'))
      expect(it.key().toString('latin1')).toBe('b')
      it.seekLE(b('abd'))
      expect(`${it.key().toString('latin1')}@${it.sequence()}`).toBe('abd@3')
      it.seekLT(b('abd'))
      expect(it.key().toString('latin1')).toBe('abc')
      it.seekLT(b('a'))
      expect(it.valid()).toBe(false)
      it.seekGT(b('c'))
      expect(it.valid()).toBe(false)
      it.seekLE(b('zzz'))
      expect(it.key().toString('latin1')).toBe('c')
      it.seekGE(b('aa'))
      expect(it.key().toString('latin1')).toBe('ab')
    }
  })

  it('finds the newest version not newer than a sequence', () => {
    const it = new BlockIterator(build(entries, 2), 'test')
    it.seekInternal(b('abd'), 10)
    expect(it.sequence()).toBe(6)
    it.seekInternal(b('abd'), 2)
    expect(it.key().toString('latin1')).toBe('b')
    it.seekInternal(b('abd'), 100)
    expect(it.sequence()).toBe(20)
  })

  it('keys share their prefix with the restart key heading their run', () => {
    // Restart at 'abc'; 'abd' shares 2 bytes with it ('ab'), though 3 with 'abc'.
    const block = build([{ key: b('abc'), seq: 2, kind: KIND_PUT, value: b('x') }, { key: b('abcd'), seq: 1, kind: KIND_PUT, value: b('y') }], 16)
    expect(block[0]).toBe(0) // the restart entry: nothing shared
    const second = 5 + 3 + 1 // header (3 one-byte varints, kind, seq) + key 'abc' + value 'x'
    expect(block[second]).toBe(3)
    const three = build([['abc', 3], ['abd', 2], ['abe', 1]].map(([k, s]) => ({ key: b(k as string), seq: s as number, kind: KIND_PUT, value: b('') })), 16)
    expect(three[5 + 3]).toBe(2) // 'abd' vs head 'abc'
    expect(three[5 + 3 + 5 + 1]).toBe(2) // 'abe' vs head 'abc' (also 2 vs 'abd')
  })

  it('point reads through the hash index agree with seekInternal', () => {
    const random = rng(7)
    for (const interval of [1, 2, 3, 16]) {
      // Dense keys with long shared prefixes, some with several versions, some deleted.
      const all: E[] = []
      let seq = 10_000
      for (let k = 0; k < 200; k += 1 + Math.floor(random() * 3)) {
        const key = b(`user:${String(k).padStart(6, '0')}`)
        const versions = 1 + Math.floor(random() * 3)
        for (let v = 0; v < versions; v++) {
          all.push({ key, seq: seq - v * 7, kind: random() < 0.1 ? KIND_DELETE : KIND_PUT, value: random() < 0.1 ? b('') : b(`v${k}.${v}`) })
        }
        seq -= 100
      }
      const withHash = build(all, interval, true)
      const plain = build(all, interval, false)
      expect(withHash.readUInt32LE(withHash.length - 4) & HASH_INDEX_FLAG).not.toBe(0)
      expect(plain.readUInt32LE(plain.length - 4) & HASH_INDEX_FLAG).toBe(0)
      const hashed = new BlockIterator(withHash, 'test')
      const reference = new BlockIterator(plain, 'test')
      expect(collect((hashed.seekToFirst(), hashed))).toEqual(collect((reference.seekToFirst(), reference)))
      let checked = 0
      for (let k = -1; k < 202; k++) {
        for (const suffix of ['', '0', '\xff']) {
          const key = b(`user:${String(k).padStart(6, '0')}${suffix}`)
          for (const at of [0, 5000, 10_000 - 7 * 100, 9999, Number.MAX_SAFE_INTEGER]) {
            const expected = pointRead(reference, key, at, false)
            expect(pointRead(hashed, key, at, true), `${key.toString('latin1')} at ${at}`).toBe(expected)
            if (expected !== '-') checked++
          }
        }
      }
      expect(checked).toBeGreaterThan(300)
    }
  })

  it('leaves out the hash index when offsets would not fit, and still finds keys', () => {
    const big: E[] = [0, 1, 2].map((i) => ({ key: b(`k${i}`), seq: 10 - i, kind: KIND_PUT, value: Buffer.alloc(30_000, i) }))
    const block = build(big, 16, true)
    expect(block.readUInt32LE(block.length - 4) & HASH_INDEX_FLAG).toBe(0)
    const it = new BlockIterator(block, 'test')
    it.seekPoint(b('k2'), 100, filterHash(b('k2')))
    expect(it.valid() && it.keyEquals(b('k2')) && it.value()[0]).toBe(2)
  })

  it('reports a hash bucket pointing outside the entries as corruption', () => {
    const block = build(entries, 4, true)
    const bucketCount = block.readUInt16LE(block.length - 6)
    const bucketsStart = block.length - 6 - bucketCount * HASH_BUCKET_BYTES
    // Point every occupied bucket past the entry area.
    for (let i = 0; i < bucketCount; i++) {
      const p = bucketsStart + i * HASH_BUCKET_BYTES
      if (block.readUInt16LE(p + 1) !== 0xffff) block.writeUInt16LE(0xfffe, p + 1)
    }
    const it = new BlockIterator(block, 'test')
    expect(() => {
      for (const e of entries) it.seekPoint(e.key, 100, filterHash(e.key))
    }).toThrow(expect.objectContaining({ code: 'STRATA_CORRUPTION' }))
  })

  it('reports a malformed block as corruption', () => {
    const block = build(entries)
    block.writeUInt32LE(10_000, block.length - 4)
    expect(() => new BlockIterator(block, 'test')).toThrow(expect.objectContaining({ code: 'STRATA_CORRUPTION' }))
    const bad = build(entries)
    bad[0] = 0x7f // shared prefix longer than the (empty) previous key
    const it = new BlockIterator(bad, 'test')
    expect(() => it.seekToFirst()).toThrow(expect.objectContaining({ code: 'STRATA_CORRUPTION' }))
  })
})

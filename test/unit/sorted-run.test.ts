import { describe, expect, it } from 'vitest'
import { SortedRun } from '../../src/compaction/sorted-run.js'
import { KIND_DELETE, KIND_PUT } from '../../src/base/entry.js'
import { rng } from './helpers.js'

interface Entry {
  key: Buffer
  seq: number
  value: Buffer | null
}

/** Packs entries into a few shared buffers, like WAL record payloads, and adds them to a run. */
function runOf(entries: Entry[], perBuffer: number, packedMax?: number, run = new SortedRun(packedMax)): SortedRun {
  for (let i = 0; i < entries.length; i += perBuffer) {
    const group = entries.slice(i, i + perBuffer)
    const parts: Buffer[] = [Buffer.from([0xee])] // offsets must not start at 0
    const spans: Array<[number, number, number, number]> = []
    let o = 1
    for (const e of group) {
      parts.push(e.key)
      const ks = o
      o += e.key.length
      let vs = -1
      let ve = -1
      if (e.value !== null) {
        parts.push(e.value)
        vs = o
        o += e.value.length
        ve = o
      }
      spans.push([ks, ks + e.key.length, vs, ve])
    }
    const id = run.addBuffer(Buffer.concat(parts))
    group.forEach((e, j) => run.add(id, e.seq, ...spans[j]))
  }
  return run
}

function expectSorted(entries: Entry[], perBuffer: number, packedMax?: number, reused?: SortedRun): void {
  const run = runOf(entries, perBuffer, packedMax, reused)
  run.sort()
  const want = [...entries].sort((a, b) => Buffer.compare(a.key, b.key) || b.seq - a.seq)
  const it = run.iterator()
  const got: Entry[] = []
  for (it.seekToFirst(); it.valid(); it.next()) {
    got.push({ key: Buffer.from(it.key()), seq: it.sequence(), value: it.kind() === KIND_DELETE ? null : Buffer.from(it.value()) })
    if (it.kind() === KIND_DELETE) expect(it.value().length).toBe(0)
    else expect(it.kind()).toBe(KIND_PUT)
  }
  expect(got).toEqual(want)
}

describe('SortedRun (a flush sorts a memtable)', () => {
  it('sorts again after clear, into the arrays it kept, runs larger and smaller than before', () => {
    const run = new SortedRun()
    // Sizes: a first run, a larger one (the arrays grow), a smaller one (the kept order array is longer than needed).
    for (const [seed, count] of [[11, 3000], [12, 9000], [13, 500], [14, 0], [15, 2000]]) {
      const r = rng(seed)
      const entries: Entry[] = []
      let seq = 1
      for (let i = 0; i < count; i++) {
        const key = Buffer.from(`k${Math.floor(r() * count * 0.7)}`, 'latin1')
        entries.push({ key, seq: seq++, value: r() < 0.1 ? null : Buffer.from(`v${seed}.${i}`) })
      }
      run.clear()
      expectSorted(entries, 64, undefined, run)
      expect(run.length).toBe(count)
    }
  })

  it('sorts by key bytes, then by sequence descending, across buffers', () => {
    for (const seed of [1, 2, 3, 4, 5]) {
      const r = rng(seed)
      const entries: Entry[] = []
      const prefix = Buffer.from('user:00', 'latin1')
      for (let i = 0; i < 2000; i++) {
        // Keys share a long prefix, differ in length (some are prefixes of others),
        // and repeat, so both the numeric prefix and the byte comparison decide.
        const tail = Buffer.alloc(Math.floor(r() * 12))
        for (let j = 0; j < tail.length; j++) tail[j] = Math.floor(r() * 4) * 85
        const key = r() < 0.1 ? Buffer.from(prefix) : Buffer.concat([prefix, tail])
        const value = r() < 0.2 ? null : Buffer.from(`v${i}`)
        entries.push({ key, seq: 1 + i, value })
      }
      // Shuffle: a memtable's records are in sequence order, but the run must not rely on it.
      for (let i = entries.length - 1; i > 0; i--) {
        const j = Math.floor(r() * (i + 1))
        ;[entries[i], entries[j]] = [entries[j], entries[i]]
      }
      expectSorted(entries, 1 + seed * 7)
      expectSorted(entries, 1 + seed * 7, 1000) // more entries than packed keys hold: comparator sort
    }
  })

  it('sorts random binary keys, some repeated, by packed prefixes and by comparison alike', () => {
    const r = rng(99)
    const entries: Entry[] = []
    for (let i = 0; i < 5000; i++) {
      const key = i > 0 && r() < 0.1 ? entries[Math.floor(r() * i)].key : Buffer.from(Array.from({ length: 16 }, () => Math.floor(r() * 256)))
      entries.push({ key, seq: 5000 - i, value: Buffer.from(`v${i}`) })
    }
    expectSorted(entries, 13)
    expectSorted(entries, 13, 100)
  })

  it('sorts keys that differ in at most 8 bytes after a shared prefix, added in sequence order (the LSD path)', () => {
    for (const seed of [7, 8, 9]) {
      const r = rng(seed)
      const entries: Entry[] = []
      const prefix = Buffer.from('0000000000', 'latin1')
      for (let i = 0; i < 3000; i++) {
        // Up to 6 varying bytes (decimal digits, 0x00 and >= 0x80), keys of several lengths,
        // some a prefix of others or equal but for a trailing 0x00, many repeated.
        let key: Buffer
        if (i > 0 && r() < 0.3) key = entries[Math.floor(r() * i)].key
        else {
          const tail = Buffer.alloc(Math.floor(r() * 7))
          for (let j = 0; j < tail.length; j++) tail[j] = [0x30 + Math.floor(r() * 10), 0x00, 0xff, 0x80][Math.floor(r() * 4)]
          key = Buffer.concat([prefix, tail])
        }
        entries.push({ key, seq: 1 + i, value: r() < 0.2 ? null : Buffer.from(`v${i}`) })
      }
      entries.push({ key: Buffer.from('0000000000ab', 'latin1'), seq: 5000, value: null })
      entries.push({ key: Buffer.from('0000000000ab\0', 'latin1'), seq: 5001, value: Buffer.from('z') })
      expectSorted(entries, 1 + seed * 5)
    }
  })

  it('handles empty, single and binary keys with bytes >= 0x80', () => {
    expectSorted([], 4)
    expectSorted([{ key: Buffer.from([0xff]), seq: 1, value: Buffer.from('x') }], 4)
    expectSorted(
      [
        { key: Buffer.from([0xff, 0x00]), seq: 3, value: null },
        { key: Buffer.from([0x7f]), seq: 1, value: Buffer.alloc(0) },
        { key: Buffer.from([0xff]), seq: 2, value: Buffer.from('a') },
        { key: Buffer.from([0xff]), seq: 9, value: Buffer.from('b') },
        { key: Buffer.from([0x80, 1, 2, 3, 4, 5, 6, 7, 8]), seq: 4, value: Buffer.from('c') },
        { key: Buffer.from([0x80, 1, 2, 3, 4, 5, 6, 7]), seq: 5, value: Buffer.from('d') },
      ],
      2,
    )
  })
})

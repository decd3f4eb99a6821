// Micro benchmarks of the hot paths, with tinybench. Run after `npm run build`:
//   node bench/micro/run.mjs [filter]
// They guide optimisation; the numbers that matter for users come from `strata bench`.
import { Bench } from 'tinybench'
import bloomFilters from 'bloom-filters'
import { OrderedMap } from '@js-sdsl/ordered-map'
import { initChecksum, checksum32 } from '../../dist/base/checksum.js'
import { Memtable } from '../../dist/memtable/memtable.js'
import { BlockBuilder } from '../../dist/sstable/block-builder.js'
import { BlockIterator } from '../../dist/sstable/block-iterator.js'
import { buildFilter, Filter, filterHash } from '../../dist/sstable/filter-block.js'
import { encodeWalRecord, encodedOpBytes } from '../../dist/wal/wal-record.js'

await initChecksum()
const filter = process.argv[2]
const N = 100_000
let seed = 1
const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0), (seed ^ (seed >>> 13)) >>> 0)
const keys = Array.from({ length: N }, () => Buffer.from(String(rnd() % 10_000_000).padStart(16, '0')))
const latin1 = keys.map((k) => k.toString('latin1'))
const value = Buffer.alloc(100, 0x61)
let i = 0
const next = () => (i = (i + 1) % N)

const bench = new Bench({ time: 400, warmupTime: 100 })
const add = (name, fn) => (!filter || name.includes(filter)) && bench.add(name, fn)

// Memtable: the engine's hash-indexed memtable vs inserting straight into the ordered map.
const mem = new Memtable([1])
let seq = 0
add('memtable add (hash index, lazy tree)', () => mem.add(keys[next()], ++seq, value))
const tree = new OrderedMap([], (a, b) => (a.k < b.k ? -1 : a.k > b.k ? 1 : b.s - a.s))
let tseq = 0
add('ordered-map setElement {latin1, seq}', () => tree.setElement({ k: latin1[next()], s: ++tseq }, null))
const treeBuf = new OrderedMap([], (a, b) => Buffer.compare(a.k, b.k) || b.s - a.s)
let bseq = 0
add('ordered-map setElement {Buffer, seq} Buffer.compare', () => treeBuf.setElement({ k: keys[next()], s: ++bseq }, null))
const full = new Memtable([1])
for (let j = 0; j < N; j++) full.add(keys[j], j + 1, value)
add('memtable get (hash index)', () => full.get(latin1[next()], Number.MAX_SAFE_INTEGER))

// Block build and seek.
const sorted = [...keys].sort(Buffer.compare).filter((k, j, a) => j === 0 || !k.equals(a[j - 1]))
add('block build (4 KiB, 16-byte keys, 100-byte values)', () => {
  const b = new BlockBuilder(16)
  for (let j = 0; j < 32; j++) b.add(sorted[j], j + 1, 1, value)
  b.finish()
})
const bb = new BlockBuilder(16)
for (let j = 0; j < 32; j++) bb.add(sorted[j], 100 - j, 1, value)
const block = bb.finish()
const it = new BlockIterator(block, 'bench')
add('block seek (32 entries)', () => it.seekInternal(sorted[next() % 32], Number.MAX_SAFE_INTEGER))

// Bloom filter: ours (xxh32 + double hashing over bloom-filters' BitSet) vs the package's own BloomFilter.
const hashes = keys.map(filterHash)
const ours = new Filter(buildFilter(hashes, 10), 'bench')
add('filter hash (xxh32 via wasm, 16 bytes)', () => filterHash(keys[next()]))
add('filter test (ours, hash given)', () => ours.mayContain(hashes[next()]))
add('filter test (ours, incl. hash)', () => ours.mayContain(filterHash(keys[next()])))
const theirs = bloomFilters.BloomFilter.create(N, 0.01)
for (let j = 0; j < 20_000; j++) theirs.add(latin1[j])
add('bloom-filters BloomFilter.add (as shipped)', () => theirs.add(latin1[next()]))
add('bloom-filters BloomFilter.has (as shipped)', () => theirs.has(latin1[next()]))

// Checksums and WAL encoding.
const block4k = Buffer.alloc(4096, 7)
add('checksum xxh32 4 KiB block', () => checksum32(block4k))
const ops = Array.from({ length: 64 }, (_, j) => ({ key: keys[j], value }))
const opBytes = ops.reduce((n, o) => n + encodedOpBytes(o), 0)
add('WAL record encode (64 puts, 16+100 bytes)', () => encodeWalRecord(1, ops, opBytes))

await bench.run()
const rows = bench.tasks.map((t) => {
  const r = t.result
  const meanNs = (r.latency?.mean ?? r.mean) * 1e6
  return { task: t.name, 'ns/op (mean)': Math.round(meanNs), 'ops/s': Math.round(1e9 / meanNs), samples: r.latency?.samplesCount ?? r.samples?.length }
})
console.table(rows)

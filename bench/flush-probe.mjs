// The flush of one 64 MiB memtable of bench keys, phase by phase, on this
// thread: 386k entries with 16-digit decimal keys (like `strata bench`) and
// 100-byte values. Prints, per run, the time to add the entries to a
// SortedRun, to sort them, to walk them in key order, to walk them through
// the shadow filter, to build the table in memory, and to write it to a file
// (with fdatasync). Needs a build (npm run build).
//
//   node bench/flush-probe.mjs [runs=4]
import * as fs from 'node:fs'
import { mkdtempSync } from 'node:fs'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { SortedRun } from '../dist/compaction/sorted-run.js'
import { ShadowFilter } from '../dist/compaction/shadow-filter.js'
import { writeTable } from '../dist/compaction/table-writer.js'
import { nodeFileSystem } from '../dist/vfs/node-file-system.js'
import { TableBuilder } from '../dist/sstable/table-builder.js'
import { initChecksum } from '../dist/base/checksum.js'
import { KeyFormat, randomIndices } from '../dist/cli/bench/key-stream.js'

await initChecksum()
const runs = Number(process.argv[2] ?? 4)
const N = 386_000
const keys = new KeyFormat(16)
const idx = randomIndices(N, 1_000_000, 3)
const ENTRY = 116
const records = Buffer.allocUnsafe(N * ENTRY)
for (let i = 0; i < N; i++) {
  records.set(keys.encode(idx[i]), i * ENTRY)
  records.fill(i & 255, i * ENTRY + 16, (i + 1) * ENTRY)
}
const options = { blockBytes: 4096, blockRestartInterval: 16, bloomBitsPerKey: 10 }
const dir = mkdtempSync(join(tmpdir(), 'strata-flush-probe-'))

for (let r = 0; r < runs; r++) {
  let t = performance.now()
  const run = new SortedRun()
  const id = run.addBuffer(records)
  for (let i = 0; i < N; i++) run.add(id, i + 1, i * ENTRY, i * ENTRY + 16, i * ENTRY + 16, (i + 1) * ENTRY)
  const addMs = performance.now() - t
  t = performance.now()
  run.sort()
  const sortMs = performance.now() - t
  let x = 0
  let it = run.iterator()
  t = performance.now()
  for (it.seekToFirst(); it.valid(); it.next()) x += it.key()[3] + it.sequence() + it.value()[5]
  const walkMs = performance.now() - t
  it = run.iterator()
  let shadow = new ShadowFilter([])
  t = performance.now()
  for (it.seekToFirst(); it.valid(); it.next()) if (shadow.keep(it.key(), it.sequence())) x += it.value()[5]
  const shadowMs = performance.now() - t
  it = run.iterator()
  shadow = new ShadowFilter([])
  const builder = new TableBuilder(options)
  t = performance.now()
  for (it.seekToFirst(); it.valid(); it.next()) {
    const k = it.key()
    const s = it.sequence()
    if (shadow.keep(k, s)) builder.add(k, s, it.kind(), it.value())
    if ((x++ & 1023) === 0) {
      builder.takeOutput()
      builder.outputWritten()
    }
  }
  builder.finish()
  const buildMs = performance.now() - t
  it = run.iterator()
  it.seekToFirst()
  t = performance.now()
  await writeTable(nodeFileSystem, dir, 100 + r, it, options, [])
  const writeMs = performance.now() - t
  const f = (ms) => ms.toFixed(0).padStart(4)
  console.log(`add ${f(addMs)} ms | sort ${f(sortMs)} | walk ${f(walkMs)} | walk+shadow ${f(shadowMs)} | +build ${f(buildMs)} | writeTable ${f(writeMs)} ms`)
}
fs.rmSync(dir, { recursive: true, force: true })

// Bytes per entry on disk, fully compacted, stratadb against classic-level on
// the same data: N distinct 16-byte keys in bigdata's order (a permutation),
// 100-byte half-compressible values (the bench's, ratio 0.5), 64 puts in
// flight, then compactRange and close. For stratadb the tables are split
// into data blocks (stored and raw), point index, filter and index, read
// from `strata dump --json`. Needs a build (npm run build).
//
//   node bench/entry-bytes-probe.mjs [N=2000000] [stratadb|classic-level ...]
import * as fs from 'node:fs'
import { execFileSync } from 'node:child_process'
import { tmpdir } from 'node:os'
import { join } from 'node:path'
import { fileURLToPath } from 'node:url'
import { open } from '../dist/index.js'
import { KeyFormat, Permutation, ValuePool, streamSeed } from '../dist/cli/bench/key-stream.js'

const N = Number(process.argv[2] ?? 2_000_000)
const engines = process.argv.length > 3 ? process.argv.slice(3) : ['stratadb', 'classic-level']
const strata = fileURLToPath(new URL('../dist/cli/strata.js', import.meta.url))

for (const engine of engines) {
  const dir = fs.mkdtempSync(join(tmpdir(), 'strata-entry-bytes-'))
  const keys = new KeyFormat(16)
  const values = new ValuePool(100, 1, 0.5)
  const order = new Permutation(N, streamSeed(1, 'bigdata'))
  let db
  if (engine === 'stratadb') db = await open(dir)
  else {
    const { ClassicLevel } = await import('classic-level')
    db = new ClassicLevel(dir, { keyEncoding: 'buffer', valueEncoding: 'buffer' })
    await db.open()
  }
  const inFlight = []
  for (let i = 0; i < N; i++) {
    inFlight.push(db.put(keys.encode(order.at(i)), values.valueFor(i)))
    if (inFlight.length >= 64) await Promise.all(inFlight.splice(0))
  }
  await Promise.all(inFlight)
  if (engine === 'stratadb') await db.compactRange()
  else await db.compactRange(Buffer.from('0'), Buffer.from(':'))
  await db.close()
  const names = fs.readdirSync(dir)
  const total = names.reduce((n, f) => n + fs.statSync(join(dir, f)).size, 0)
  const perEntry = (bytes) => (bytes / N).toFixed(2)
  let line = `${engine}: ${perEntry(total)} bytes per entry on disk (${(total / 2 ** 20).toFixed(1)} MiB for ${N.toLocaleString('en-US')} entries)`
  if (engine === 'stratadb') {
    const parts = { stored: 0, raw: 0, pointIndex: 0, filter: 0, index: 0 }
    for (const f of names.filter((n) => n.endsWith('.sst'))) {
      const j = JSON.parse(execFileSync(process.execPath, [strata, 'dump', '--json', '--keys-only', join(dir, f)], { maxBuffer: 1 << 30 }))
      parts.stored += j.storedDataBytes
      parts.raw += j.rawDataBytes
      parts.pointIndex += j.footer.pointIndex?.size ?? 0
      parts.filter += j.footer.filter.size
      parts.index += j.footer.index.size
    }
    line += `: data blocks ${perEntry(parts.stored)} stored (${perEntry(parts.raw)} raw), point index ${perEntry(parts.pointIndex)}, filter ${perEntry(parts.filter)}, index ${perEntry(parts.index)}`
  }
  console.log(line)
  fs.rmSync(dir, { recursive: true, force: true })
}

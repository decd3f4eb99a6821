// How fast LZ4 (src/sstable/lz4.ts) compresses 4 KiB data blocks, and how
// small, for several values of its SKIP_TRIGGER (after 2^T misses in a row
// the match search starts skipping bytes), on four kinds of values: the
// bench's half-compressible ones, JSON records, English text (license and
// docs files), incompressible bytes. Each variant is a copy of the built
// dist/sstable/lz4.js with the constant changed. Prints MB/s (median of 3
// passes of 5 rounds) and the compressed ÷ raw ratio per corpus and value.
// Needs a build (npm run build).
//
//   node bench/lz4-skip-probe.mjs [T...=6 4 3 2]
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { pathToFileURL } from 'node:url'
import { BlockBuilder } from '../dist/sstable/block-builder.js'
import { KeyFormat, randomIndices, ValuePool } from '../dist/cli/bench/key-stream.js'
import { filterHash } from '../dist/sstable/filter-block.js'
import { initChecksum } from '../dist/base/checksum.js'

await initChecksum()
const triggers = process.argv.length > 2 ? process.argv.slice(2).map(Number) : [6, 4, 3, 2]
const keys = new KeyFormat(16)

function blocksOf(valueFor, n = 40_000) {
  const order = Array.from(randomIndices(n, 20_000_000, 3)).sort((a, b) => a - b)
  const blocks = []
  let builder = new BlockBuilder(16, true)
  for (let i = 0; i < order.length; i++) {
    const key = keys.encode(order[i])
    builder.add(key, i + 1, 1, valueFor(i), filterHash(key), true)
    if (builder.estimatedBytes >= 4096) {
      blocks.push(builder.finish())
      builder = new BlockBuilder(16, true)
    }
  }
  return blocks
}

const half = new ValuePool(100, 1, 0.5)
const random = new ValuePool(100, 1, 1)
const names = ['alice', 'bob', 'carol', 'dave', 'erin', 'frank']
const json = (i) =>
  Buffer.from(JSON.stringify({ id: (i * 7919) % 100_000, name: names[i % 6] + (i % 997), email: `${names[(i >> 3) % 6]}.${i % 991}@example.com`, active: i % 3 === 0, score: ((i * 37) % 1000) / 10, tags: ['a', 'b', names[i % 6]] }))
const textFiles = ['/usr/share/common-licenses/GPL-3', '/usr/share/common-licenses/Apache-2.0', 'docs/design.md', 'docs/performance.md']
const text = Buffer.from(textFiles.filter((f) => fs.existsSync(f)).map((f) => fs.readFileSync(f, 'utf8')).join(''))
const textValue = (i) => {
  const at = ((i * 2654435761) >>> 0) % (text.length - 300)
  return text.subarray(at, at + 200)
}
const corpora = { bench: blocksOf((i) => half.valueFor(i * 7)), json: blocksOf(json), text: blocksOf(textValue), random: blocksOf((i) => random.valueFor(i)) }

const source = fs.readFileSync(new URL('../dist/sstable/lz4.js', import.meta.url), 'utf8')
if (!/^const SKIP_TRIGGER = \d+;$/m.test(source)) throw new Error('SKIP_TRIGGER not found in dist/sstable/lz4.js')
const scratch = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-lz4-skip-'))
const variants = {}
for (const t of triggers) {
  const file = path.join(scratch, `lz4-${t}.mjs`)
  fs.writeFileSync(file, source.replace(/^const SKIP_TRIGGER = \d+;$/m, `const SKIP_TRIGGER = ${t};`))
  variants[t] = (await import(pathToFileURL(file).href)).lz4CompressBlock
}
fs.rmSync(scratch, { recursive: true, force: true })

const out = Buffer.alloc(16_384)
for (const [name, blocks] of Object.entries(corpora)) {
  const raw = blocks.reduce((s, b) => s + b.length, 0)
  const speeds = {}
  const ratios = {}
  for (let pass = 0; pass < 4; pass++) {
    for (const t of triggers) {
      const compress = variants[t]
      let stored = 0
      const started = performance.now()
      for (let round = 0; round < 5; round++) {
        for (const b of blocks) {
          const n = compress(b, out, out.length)
          stored += n === 0 ? b.length : n
        }
      }
      const ms = performance.now() - started
      if (pass === 0) continue // warm-up
      ;(speeds[t] ??= []).push((raw * 5) / 1e3 / ms)
      ratios[t] = stored / 5 / raw
    }
  }
  const median = (xs) => [...xs].sort((a, b) => a - b)[xs.length >> 1]
  console.log(`${name} (${blocks.length} blocks): ${triggers.map((t) => `T=${t} ${Math.round(median(speeds[t]))} MB/s ratio ${ratios[t].toFixed(3)}`).join(' | ')}`)
}

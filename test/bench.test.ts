/**
 * `strata bench`: the deterministic streams, the figures, argument parsing,
 * the per-second timeline and the chart, and small runs of every workload
 * through the built command (dist/, built by `pretest`) end to end: these
 * check counts and correctness, not speed.
 */
import { spawnSync } from 'node:child_process'
import { createHash } from 'node:crypto'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { deflateRawSync } from 'node:zlib'
import { Command } from 'commander'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { chartRows, escapeXml, niceMax, niceStep, writeChart } from '../src/cli/bench/chart.js'
import { addBenchCommand, benchConfig, type BenchCliOptions } from '../src/cli/bench/command.js'
import { DEFAULT_WORKLOADS, NAMED_ONLY_WORKLOADS, WORKLOAD_NAMES, applyApi, scaledOps, type BenchConfig } from '../src/cli/bench/config.js'
import { nextCount } from '../src/cli/bench/engines.js'
import { KeyFormat, Permutation, ValuePool, pieceRandomBytes, randomIndices, streamSeed } from '../src/cli/bench/key-stream.js'
import { formatNs, formatValueKind } from '../src/cli/bench/report.js'
import { median } from '../src/cli/bench/summary.js'
import { Timeline, windowStats } from '../src/cli/bench/timeline.js'

const CLI = fileURLToPath(new URL('../dist/cli/strata.js', import.meta.url))
const RENDER = fileURLToPath(new URL('../bench/render-chart.mjs', import.meta.url))
const CHROMIUM = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

describe('bench streams', () => {
  it('gives the same keys for the same seed and label, other keys otherwise', () => {
    const a = randomIndices(1000, 500, streamSeed(7, 'fillrandom'))
    expect(randomIndices(1000, 500, streamSeed(7, 'fillrandom'))).toEqual(a)
    expect(randomIndices(1000, 500, streamSeed(7, 'overwrite'))).not.toEqual(a)
    expect(randomIndices(1000, 500, streamSeed(8, 'fillrandom'))).not.toEqual(a)
    expect(Math.max(...a)).toBeLessThan(500)
    expect(new Set(a).size).toBeGreaterThan(400) // about 1 - 1/e^2 of 500 distinct
  })

  it('writes keys as zero-padded decimal, so byte order is numeric order; missing keys sort right after', () => {
    const keys = new KeyFormat(16)
    expect(keys.encode(0).toString()).toBe('0000000000000000')
    expect(keys.encode(1234567).toString()).toBe('0000000001234567')
    expect(Buffer.compare(keys.encode(99), keys.encode(100))).toBe(-1)
    expect(keys.encodeMissing(99).toString()).toBe('0000000000000099.')
    expect(Buffer.compare(keys.encode(99), keys.encodeMissing(99))).toBe(-1)
    expect(Buffer.compare(keys.encodeMissing(99), keys.encode(100))).toBe(-1)
  })

  it('cuts deterministic values of the requested size', () => {
    for (const ratio of [0.5, 1]) {
      const a = new ValuePool(100, 1, ratio)
      const b = new ValuePool(100, 1, ratio)
      expect(a.valueFor(5)).toHaveLength(100)
      expect(a.valueFor(5).equals(b.valueFor(5))).toBe(true)
      expect(a.valueFor(5).equals(a.valueFor(6))).toBe(false)
      // Views of one pool: no allocation per operation.
      expect(a.valueFor(5).buffer).toBe(a.valueFor(6).buffer)
      for (const bytes of [256 * 1024, 16 * 1024, 1000, 7, 0]) expect(new ValuePool(bytes, 1, ratio).valueFor(3)).toHaveLength(bytes)
    }
    expect(() => new ValuePool(100, 1, 0)).toThrow(RangeError)
    expect(() => new ValuePool(100, 1, 1.5)).toThrow(RangeError)
  })

  /** SHA-256 of the values of `ops`, concatenated. */
  const valuesHash = (pool: ValuePool, ops: number[]): string => {
    const h = createHash('sha256')
    for (const op of ops) h.update(pool.valueFor(op))
    return h.digest('hex')
  }
  /** Compressed ÷ raw bytes of `data` deflated (raw deflate, level 1) in chunks of `chunkBytes`. */
  const deflateRatio = (data: Buffer, chunkBytes: number): number => {
    let compressed = 0
    for (let at = 0; at < data.length; at += chunkBytes) compressed += deflateRawSync(data.subarray(at, at + chunkBytes), { level: 1 }).length
    return compressed / data.length
  }

  it('cuts db_bench half-compressible values at --compression-ratio 0.5, and the old incompressible bytes at 1', () => {
    const ops = [0, 1, 2, 3, 4, 5, 6, 7, 123_456, 19_999_999]
    // Hashes computed with the ValuePool before --compression-ratio existed: ratio 1 keeps those values byte for byte.
    expect(valuesHash(new ValuePool(100, 1, 1), ops)).toBe('2bf06bee8555b5cc367588c6c735079cba9b52095983fe1647fdc22550e06b04')
    expect(valuesHash(new ValuePool(100, 42, 1), ops)).toBe('c667d4833f6d4cf95be7c45fb36d84e6638e8f7a5977772e4ec20ff1e88d3ee2')
    expect(valuesHash(new ValuePool(16384, 1, 1), ops)).toBe('a490e918ffd27e8a6f31788b3d378912c53753533d63b09c940fe9202563b510')
    expect(valuesHash(new ValuePool(1000, 7, 1), ops)).toBe('fe9cf8953eb9778f60bae9505a365de128a93ec8ef6db59187bb9b020488d3d7')

    const pool = new ValuePool(100, 1, 0.5)
    // A function of (seed, op) only.
    const again = new ValuePool(100, 1, 0.5)
    for (const op of [...ops, 10_485, 10_486, 2 ** 32 - 1]) expect(pool.valueFor(op).equals(again.valueFor(op))).toBe(true)
    expect(valuesHash(new ValuePool(100, 2, 0.5), ops)).not.toBe(valuesHash(pool, ops))
    expect(valuesHash(pool, ops)).not.toBe(valuesHash(new ValuePool(100, 1, 1), ops))
    // 100-byte values are whole pieces: 50 random printable characters twice.
    const values: Buffer[] = []
    for (let op = 0; op < 1000; op++) {
      const v = pool.valueFor(op)
      expect(v).toHaveLength(100)
      expect(v.subarray(0, 50).equals(v.subarray(50))).toBe(true)
      expect(v.every((byte) => byte >= 0x20 && byte <= 0x7e)).toBe(true) // ' '..'~'
      values.push(v)
    }
    expect(new Set(values.map((v) => v.toString('latin1'))).size).toBe(1000)
    // Handed out as db_bench's Generate(100): consecutive pieces, back to the first after the last of the 1 MiB pool.
    expect(pool.valueFor(1).byteOffset).toBe(pool.valueFor(0).byteOffset + 100)
    const pieces = Math.ceil(2 ** 20 / 100)
    expect(pool.valueFor(pieces).byteOffset).toBe(pool.valueFor(0).byteOffset)
    expect(pool.valueFor(pieces - 1).byteOffset).toBe(pool.valueFor(0).byteOffset + (pieces - 1) * 100)
    // They compress to about half: 1000 consecutive values in 4 KiB chunks, as a table's data blocks hold them.
    const small = deflateRatio(Buffer.concat(values), 4096)
    expect(small).toBeGreaterThan(0.4)
    expect(small).toBeLessThan(0.7)
    // And so do large values, whether or not their size is a multiple of 100.
    for (const bytes of [16 * 1024, 256 * 1024, 64_000]) {
      const large = new ValuePool(bytes, 1, 0.5)
      for (const op of [0, 1, 37]) {
        const r = deflateRatio(large.valueFor(op), bytes)
        expect(r, `${bytes} B value ${op}`).toBeGreaterThan(0.4)
        expect(r, `${bytes} B value ${op}`).toBeLessThan(0.7)
      }
    }
    // Other ratios: ⌊100 × ratio⌋ random characters per piece (LevelDB's CompressibleString), at least 1.
    expect(pieceRandomBytes(0.5)).toBe(50)
    expect(pieceRandomBytes(0.25)).toBe(25)
    expect(pieceRandomBytes(0.333)).toBe(33)
    expect(pieceRandomBytes(0.001)).toBe(1)
    const quarter = new ValuePool(100, 1, 0.25).valueFor(9)
    expect(quarter.toString('latin1')).toBe(quarter.subarray(0, 25).toString('latin1').repeat(4))
    const incompressible = new ValuePool(100, 1, 1)
    expect(deflateRatio(Buffer.concat(Array.from({ length: 1000 }, (_, op) => incompressible.valueFor(op))), 4096)).toBeGreaterThan(0.99)
  })

  it('permutes [0, n) for bigdata: every key once, in a seeded, shuffled order', () => {
    for (const n of [1, 2, 7, 1000, 12_345]) {
      const p = new Permutation(n, 42)
      const seen = new Set<number>()
      for (let i = 0; i < n; i++) {
        const x = p.at(i)
        expect(x).toBeGreaterThanOrEqual(0)
        expect(x).toBeLessThan(n)
        seen.add(x)
      }
      expect(seen.size).toBe(n)
    }
    const p = new Permutation(1_000_000, 42)
    const first = Array.from({ length: 20 }, (_, i) => p.at(i))
    expect(Array.from({ length: 20 }, (_, i) => new Permutation(1_000_000, 42).at(i))).toEqual(first)
    expect(Array.from({ length: 20 }, (_, i) => new Permutation(1_000_000, 43).at(i))).not.toEqual(first)
    // Not in order: fewer than half of the steps go up by one.
    expect(first.filter((x, i) => i > 0 && x === first[i - 1] + 1).length).toBeLessThan(10)
    expect(new Permutation(2 ** 32, 1).at(2 ** 32 - 1)).toBeLessThan(2 ** 32)
  })

  it('counts in decimal for the increment workloads', () => {
    expect(nextCount(undefined).toString()).toBe('1')
    expect(nextCount(Buffer.from('41')).toString()).toBe('42')
  })
})

describe('bench figures', () => {
  it('takes medians and formats durations', () => {
    expect(median([3, 1, 2])).toBe(2)
    expect(median([4, 1, 2, 3])).toBe(2.5)
    expect(formatNs(850)).toBe('850ns')
    expect(formatNs(1234)).toBe('1.23µs')
    expect(formatNs(45_600_000)).toBe('45.6ms')
    expect(formatNs(2_100_000_000)).toBe('2.10s')
  })

  it('keeps throughput and p99 per second, with zeros for a stall, and windows of n operations', () => {
    const t = new Timeline(4)
    t.start(1000)
    // Second 0: 6 ops of 1 µs; nothing in seconds 1 and 2 (a stall); second 3: 2 ops, one of 2 s.
    for (let i = 0; i < 6; i++) t.record(1000 + i * 100, 1000)
    t.record(4100, 2e9)
    t.record(4200, 1000)
    t.finish(4500)
    expect(t.series.map((p) => p.ops)).toEqual([6, 0, 0, 2])
    expect(t.series.map((p) => p.t)).toEqual([0, 1, 2, 3])
    expect(t.series[0].opsPerSec).toBe(6)
    expect(t.series[1].p99Ns).toBeUndefined()
    expect(t.series[3].seconds).toBeCloseTo(0.5)
    expect(t.series[3].opsPerSec).toBeCloseTo(4)
    expect(t.series[3].maxNs).toBeGreaterThan(1.9e9)
    // Windows of 4: ops 1-4 end at 1300 ms, 5-8 at 4200 ms; nothing left for a partial window.
    expect(t.windows.map((w) => w.endOps)).toEqual([4, 8])
    expect(t.windows[0].seconds).toBeCloseTo(0.3)
    expect(t.windows[1].seconds).toBeCloseTo(2.9)
    const stats = windowStats(t.windows)!
    expect(stats.min).toBeCloseTo(4 / 2.9)
    expect(stats.minOverMedian).toBeLessThan(0.25)
  })

  it('leaves a partial last window out of the window statistics unless it is the only one', () => {
    const w = [
      { endOps: 10, ops: 10, seconds: 1, opsPerSec: 10 },
      { endOps: 20, ops: 10, seconds: 2, opsPerSec: 5 },
      { endOps: 21, ops: 1, seconds: 1, opsPerSec: 1, partial: true },
    ]
    expect(windowStats(w)).toEqual({ min: 5, median: 7.5, minOverMedian: 5 / 7.5 })
    expect(windowStats([w[2]])?.min).toBe(1)
    expect(windowStats([])).toBeUndefined()
  })

  it('picks round axis steps and escapes chart text', () => {
    expect(niceStep(0.3)).toBe(0.5)
    expect(niceStep(3)).toBe(5)
    expect(niceStep(120)).toBe(200)
    expect(niceMax(93_000)).toBe(100_000)
    expect(niceMax(100.5)).toBe(120)
    expect(escapeXml('a<b & "c"')).toBe('a&lt;b &amp; &quot;c&quot;')
  })
})

/** Parses `strata bench ...args` into the config the bench would run. */
function parse(...args: string[]): BenchConfig {
  let config: BenchConfig | undefined
  const program = new Command('strata').exitOverride()
  addBenchCommand(program, (workloads: string[], options: BenchCliOptions) => {
    config = benchConfig(workloads, options)
  }).exitOverride()
  program.parse(['node', 'strata', 'bench', ...args])
  return config!
}

describe('bench arguments', () => {
  it('runs every workload but bigdata on the three engines by default', () => {
    const c = parse()
    expect(c.workloads).toEqual([...DEFAULT_WORKLOADS])
    expect(c.workloads).not.toContain('bigdata')
    expect(c.workloads).not.toContain('largevalues16k')
    expect(c.workloads).not.toContain('largevalues1m')
    expect(c.workloads).toHaveLength(WORKLOAD_NAMES.length - NAMED_ONLY_WORKLOADS.length)
    expect(c.engines).toEqual(['stratadb', 'classic-level', 'lmdb'])
    expect(c).toMatchObject({ num: 200_000, concurrency: 64, progress: true, chartPath: undefined, bigdataNum: 20_000_000 })
    expect(c.bigdataReads).toBe(1_000_000)
    expect(c.bigdataWindow).toBe(1_000_000)
    expect(c.bigdataMemtableBytes).toBe(64 * 2 ** 20)
    expect(c.bigdataCacheBytes).toBe(64 * 2 ** 20)
    expect(c.incrementTasks).toBe(512)
    expect(c.incrementsPerTask).toBe(Math.ceil(200_000 / 512))
    expect(c.cacheBytes).toBeUndefined() // each engine's own default
    expect(c.compressionRatio).toBe(0.5) // db_bench's default
    expect(parse('readrandom', '--cache-mib', '256').cacheBytes).toBe(256 * 2 ** 20)
  })

  it('parses workloads, aliases and the numeric options', () => {
    const c = parse('fillsync', 'readrandomsync', 'bigdata', '--num', '1e4', '--bigdata-num', '2_000_000', '--chart', 'c.svg', '--no-progress', '--tasks', '8')
    expect(c.workloads).toEqual(['fillsync', 'readrandom', 'bigdata'])
    expect(c.num).toBe(10_000)
    expect(c.bigdataNum).toBe(2_000_000)
    expect(c.bigdataWindow).toBe(100_000) // at least 20 windows
    expect(c.bigdataReads).toBe(1_000_000)
    expect(c.chartPath).toBe('c.svg')
    expect(c.progress).toBe(false)
    expect(c.incrementsPerTask).toBe(1250)
    const small = parse('bigdata', '--bigdata-num', '20000', '--bigdata-reads', '5000', '--bigdata-window', '2000', '--increments', '1000')
    expect(small).toMatchObject({ bigdataNum: 20_000, bigdataReads: 5000, bigdataWindow: 2000, incrementsPerTask: 1000 })
    expect(parse('bigdata', '--bigdata-num', '20000').bigdataReads).toBe(20_000)
  })

  it('sizes largevalues by --large-value-bytes, same bytes at every size, and passes --min-blob-bytes only when given', () => {
    const c = parse()
    expect(c.largeValueBytes).toBe(256 * 1024)
    expect(c.minBlobBytes).toBeUndefined()
    // num / 200 values of 256 KiB (250 MiB at the default num), whatever the value size.
    expect(scaledOps.largevalues(200_000)).toBe(1000)
    expect(scaledOps.largevalues(200_000, 256 * 1024)).toBe(1000)
    expect(scaledOps.largevalues(200_000, 16 * 1024)).toBe(16_000)
    expect(scaledOps.largevalues(200_000, 2 ** 20)).toBe(250)
    expect(scaledOps.largevalues(2000, 2 ** 20)).toBe(2)
    expect(scaledOps.largevalues(10, 2 ** 20)).toBe(1)
    const sized = parse('largevalues', 'largevalues16k', 'largevalues1m', '--large-value-bytes', '64_000', '--min-blob-bytes', '4096')
    expect(sized).toMatchObject({ workloads: ['largevalues', 'largevalues16k', 'largevalues1m'], largeValueBytes: 64_000, minBlobBytes: 4096 })
    expect(parse('--min-blob-bytes', '1').minBlobBytes).toBe(1)
    expect(() => parse('--min-blob-bytes', '0')).toThrow(/positive integer/)
    expect(() => parse('largevalues', '--large-value-bytes', '0')).toThrow(/positive integer/)
    expect(() => parse('largevalues', '--large-value-bytes', String(16 * 2 ** 20 + 1))).toThrow(/--large-value-bytes must be/)
  })

  it('takes --stratadb-options as a JSON object, and nothing else', () => {
    expect(parse().stratadbOptions).toBeUndefined()
    expect(parse('--stratadb-options', '{"pointReadIndexes":"always","l0Compression":"always"}').stratadbOptions).toEqual({ pointReadIndexes: 'always', l0Compression: 'always' })
    for (const bad of ['[1]', 'null', '3', '{pointReadIndexes:1}']) expect(() => parse('--stratadb-options', bad), bad).toThrow(/JSON object/)
  })

  it('selects the API: level drives stratadb through StrataLevel and drops lmdb, both adds stratadb-level', () => {
    expect(parse('--api', 'level').engines).toEqual(['stratadb-level', 'classic-level'])
    expect(parse('--api', 'both').engines).toEqual(['stratadb', 'stratadb-level', 'classic-level', 'lmdb'])
    expect(parse('--api', 'both', '--engines', 'stratadb').engines).toEqual(['stratadb', 'stratadb-level'])
    expect(applyApi(['lmdb'], 'level')).toEqual([])
    expect(() => parse('--api', 'level', '--engines', 'lmdb')).toThrow(/no engine/)
    expect(() => parse('--api', 'sideways')).toThrow(/expected one of native, level, both/)
  })

  it('parses --compression-ratio, a number in (0, 1]', () => {
    expect(parse('--compression-ratio', '1').compressionRatio).toBe(1)
    expect(parse('--compression-ratio', '0.25').compressionRatio).toBe(0.25)
    expect(formatValueKind(1)).toBe('compression ratio 1: incompressible random bytes')
    expect(formatValueKind(0.5)).toBe("compression ratio 0.5: db_bench's, 100-byte pieces of 50 random printable bytes repeated")
    for (const bad of ['0', '-0.5', '1.01', 'half', '', 'NaN']) expect(() => parse('--compression-ratio', bad), bad).toThrow(/number in \(0, 1\]/)
  })

  it('rejects unknown workloads and engines, and keys too short for bigdata', () => {
    expect(() => parse('fillsideways')).toThrow(/unknown workload fillsideways/)
    expect(() => parse('--engines', 'rocksdb')).toThrow(/unknown engine rocksdb/)
    expect(() => parse('bigdata', '--key-bytes', '6')).toThrow(/too small/)
    expect(() => parse('fillseq', '--key-bytes', '6')).not.toThrow()
  })
})

type Result = {
  workload: string
  engine: string
  ok: boolean
  error?: string
  skipped?: string
  ops: number
  found?: number
  series?: Array<{ ops: number; opsPerSec: number }>
  details?: Record<string, unknown>
}
type Report = { engines: Array<{ name: string; available: boolean }>; results: Result[] }

function runCli(args: string[], timeoutMs: number): { stdout: string; stderr: string; status: number | null } {
  const run = spawnSync(process.execPath, [CLI, 'bench', ...args], { encoding: 'utf8', timeout: timeoutMs })
  return { stdout: run.stdout, stderr: run.stderr, status: run.status }
}

describe('strata bench command', () => {
  let dir: string
  beforeAll(() => {
    dir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-bench-test-'))
  })
  afterAll(() => {
    fs.rmSync(dir, { recursive: true, force: true })
  })

  it('runs every default workload on every engine, writes the JSON report and the chart', () => {
    const out = path.join(dir, 'results.json')
    const chart = path.join(dir, 'chart.svg')
    const run = runCli(['--num', '2000', '--tasks', '16', '--increments', '20', '--out', out, '--chart', chart], 180_000)
    expect(run.status, run.stderr).toBe(0)
    expect(run.stdout).toContain('machine:')
    const report = JSON.parse(fs.readFileSync(out, 'utf8')) as Report
    const engines = report.engines.filter((e) => e.available).map((e) => e.name)
    expect(engines).toContain('stratadb')
    expect(report.results).toHaveLength(DEFAULT_WORKLOADS.length * engines.length)
    const get = (workload: string, engine: string): Result => report.results.find((r) => r.workload === workload && r.engine === engine)!
    for (const r of report.results) {
      if (r.engine === 'classic-level' && r.workload.startsWith('increment')) {
        expect(r.skipped).toMatch(/no transactions/)
        continue
      }
      expect(r.ok, `${r.workload} ${r.engine}: ${r.error}`).toBe(true)
    }
    for (const engine of engines) {
      expect(get('fillseq', engine).ops).toBe(2000)
      expect(get('fillsync', engine).ops).toBe(20) // num / 100
      for (const seek of ['seekrandom', 'seekrandom-async']) {
        expect(get(seek, engine).ops).toBe(100) // num / 20
        expect(get(seek, engine).details?.entriesPerSeek).toBeGreaterThan(90)
      }
      expect(get('largevalues', engine).ops).toBe(10) // num / 200
      expect(get('largevalues', engine).details?.readFound).toBeGreaterThan(0)
      expect(get('readmissing', engine).found).toBe(0)
      expect(get('readwhilewriting', engine).ops).toBe(2000)
      expect(get('readwhilewriting', engine).details?.writes).toBeGreaterThan(0)
      expect(get('deleterandom', engine).ops).toBe(2000)
      // Scans see the whole database the fills and overwrite left: about 86% of 2,000 keys after fillrandom and overwrite.
      expect(get('readseq', engine).ops).toBe(get('readreverse', engine).ops)
      expect(get('readseq', engine).ops).toBeGreaterThan(1500)
      expect(get('fillrandom', engine).series?.reduce((n, p) => n + p.ops, 0)).toBe(2000)
    }
    for (const engine of ['stratadb', 'lmdb'].filter((e) => engines.includes(e))) {
      for (const workload of ['increment', 'increment-keys']) {
        const d = get(workload, engine).details!
        expect(d).toMatchObject({ commits: 320, finalCount: 320, tasks: 16, incrementsPerTask: 20 })
        expect(d.retries).toBe(d.conflicts)
        expect(get(workload, engine).ops).toBe(320)
      }
    }
    // Every engine reads the same keys from the same database state.
    for (const workload of ['readrandom', 'readrandom-async', 'readmissing']) {
      const found = report.results.filter((r) => r.workload === workload).map((r) => r.found)
      expect(new Set(found).size).toBe(1)
    }
    expect(run.stdout).toContain('classic-level  skipped: classic-level (LevelDB) has no transactions')
    const svg = fs.readFileSync(chart, 'utf8')
    expect(svg.startsWith('<svg')).toBe(true)
    expect(svg.trimEnd().endsWith('</svg>')).toBe(true)
    expect(svg).toContain('>fillrandom<')
    expect(svg).not.toContain('>readseq<') // no per-operation timing, no row
  })

  it('runs bigdata in a child process per engine at a tiny size', () => {
    const out = path.join(dir, 'bigdata.json')
    const chart = path.join(dir, 'bigdata.svg')
    const run = runCli(['bigdata', '--bigdata-num', '20000', '--bigdata-reads', '5000', '--out', out, '--chart', chart], 180_000)
    expect(run.status, run.stderr).toBe(0)
    expect(run.stdout).toContain('bigdata memory (peaks over the whole child process) and disk')
    expect(run.stdout).toMatch(/targets \(stratadb\): peak RSS/)
    const report = JSON.parse(fs.readFileSync(out, 'utf8')) as Report
    const engines = report.engines.filter((e) => e.available).map((e) => e.name)
    expect(report.results).toHaveLength(engines.length)
    for (const r of report.results) {
      expect(r.ok, `${r.engine}: ${r.error}`).toBe(true)
      expect(r.ops).toBe(20_000)
      const b = r.details!.bigdata as {
        num: number
        windows?: unknown
        write: { windows: Array<{ endOps: number }>; windowStats: { minOverMedian: number }; latencyNs: { p999: number }; loop: { longestBlockMs: number; gcPauses: number; gcTotalMs: number } }
        read: { found: number }
        memory: { peakRssSampledBytes: number; vmHwmBytes: number; samples: number }
        diskBytesAfterWrite: number
        diskBytesFinal: number
        io: { userBytes: number; wcharBytes: number }
        engineStatsAfterWrite?: { writeAmplification: number; writes: { stalls: number } }
      }
      expect(b.num).toBe(20_000)
      expect(b.write.windows.filter((w) => w.endOps % 1000 === 0)).toHaveLength(20) // 20 windows of 1,000
      expect(b.write.windowStats.minOverMedian).toBeGreaterThan(0)
      expect(b.write.latencyNs.p999).toBeGreaterThan(0)
      // The main-thread watch ran: the loop's longest delay and the GC pauses are numbers, the pauses' total adds up.
      expect(b.write.loop.longestBlockMs).toBeGreaterThanOrEqual(0)
      expect(Number.isInteger(b.write.loop.gcPauses)).toBe(true)
      expect(b.write.loop.gcTotalMs >= 0 && (b.write.loop.gcPauses > 0 || b.write.loop.gcTotalMs === 0)).toBe(true)
      expect(run.stdout).toContain(`${r.engine} main thread during the puts: event loop blocked >= 50 ms`)
      expect(b.read.found).toBe(5000) // every key exists: each was written once
      expect(b.memory.peakRssSampledBytes).toBeGreaterThan(10 * 2 ** 20)
      expect(b.memory.vmHwmBytes).toBeGreaterThanOrEqual(b.memory.peakRssSampledBytes * 0.9)
      expect(b.memory.samples).toBeGreaterThan(1)
      expect(b.diskBytesAfterWrite).toBeGreaterThan(0)
      expect(b.diskBytesFinal).toBeGreaterThan(0)
      expect(b.io.userBytes).toBe(20_000 * 116)
      expect(b.io.wcharBytes).toBeGreaterThan(0)
      if (r.engine === 'stratadb') {
        expect(b.engineStatsAfterWrite!.writeAmplification).toBeGreaterThanOrEqual(1)
        expect(b.engineStatsAfterWrite!.writes.stalls).toBeGreaterThanOrEqual(0)
      }
    }
    expect(fs.readFileSync(chart, 'utf8')).toContain('resident memory')
  })

  it('drives stratadb through StrataLevel next to its own API with --api both', () => {
    const out = path.join(dir, 'level.json')
    const run = runCli(
      ['fillbatch', 'readrandom', 'readrandom-async', 'readreverse', 'seekrandom', 'increment', '--api', 'both', '--engines', 'stratadb,classic-level', '--num', '2000', '--tasks', '4', '--increments', '5', '--out', out],
      120_000,
    )
    expect(run.status, run.stderr).toBe(0)
    const report = JSON.parse(fs.readFileSync(out, 'utf8')) as Report
    expect(report.engines.map((e) => e.name)).toEqual(['stratadb', 'stratadb-level', 'classic-level'])
    const level = report.results.filter((r) => r.engine === 'stratadb-level')
    expect(level.map((r) => r.workload)).toEqual(['fillbatch', 'readrandom', 'readrandom-async', 'readreverse', 'seekrandom', 'increment'])
    for (const r of level.filter((r) => r.workload !== 'increment')) expect(r.ok, `${r.workload}: ${r.error}`).toBe(true)
    expect(level.find((r) => r.workload === 'increment')?.skipped).toMatch(/abstract-level has no transactions/)
    const found = report.results.filter((r) => r.workload === 'readrandom').map((r) => r.found)
    expect(found).toEqual([2000, 2000, 2000])
    expect(level.find((r) => r.workload === 'readreverse')?.ops).toBe(2000)
  })

  it('runs largevalues at --large-value-bytes and largevalues16k, largevalues1m at their own sizes', () => {
    const out = path.join(dir, 'largevalues.json')
    const run = runCli(['largevalues', 'largevalues16k', 'largevalues1m', '--large-value-bytes', '65536', '--num', '2000', '--out', out], 120_000)
    expect(run.status, run.stderr).toBe(0)
    // The same bytes at every size: num / 200 values of 256 KiB.
    expect(run.stdout).toContain('largevalues: 40 puts of 64 KiB values (2.5 MiB')
    expect(run.stdout).toContain('largevalues16k: 160 puts of 16 KiB values (2.5 MiB')
    expect(run.stdout).toContain('largevalues1m: 2 puts of 1 MiB values (2 MiB')
    const report = JSON.parse(fs.readFileSync(out, 'utf8')) as Report & { config: BenchConfig }
    expect(report.config.largeValueBytes).toBe(65536)
    const engines = report.engines.filter((e) => e.available).map((e) => e.name)
    expect(report.results).toHaveLength(3 * engines.length)
    const expected: Record<string, { ops: number; valueBytes: number }> = {
      largevalues: { ops: 40, valueBytes: 65536 },
      largevalues16k: { ops: 160, valueBytes: 16384 },
      largevalues1m: { ops: 2, valueBytes: 2 ** 20 },
    }
    for (const r of report.results) {
      expect(r.ok, `${r.workload} ${r.engine}: ${r.error}`).toBe(true)
      expect(r.ops).toBe(expected[r.workload].ops)
      expect(r.details).toMatchObject({ valueBytes: expected[r.workload].valueBytes, readOps: expected[r.workload].ops })
      expect(r.details?.readFound).toBeGreaterThan(0)
    }
  })

  it('passes --min-blob-bytes to stratadb only', () => {
    const out = path.join(dir, 'min-blob.json')
    const run = runCli(['fillseq', '--engines', 'stratadb,classic-level', '--num', '2000', '--min-blob-bytes', '64', '--out', out], 60_000)
    expect(run.stdout).toContain('blobs:    minBlobBytes 64 for stratadb')
    expect(run.stdout).toContain('values 100 B (compression ratio 0.5: ')
    const report = JSON.parse(fs.readFileSync(out, 'utf8')) as Report & { config: BenchConfig }
    expect(report.config.minBlobBytes).toBe(64)
    expect(report.config.compressionRatio).toBe(0.5)
    for (const r of report.results) expect(r.ok, `${r.engine}: ${r.error}`).toBe(true)
  })

  it('passes --stratadb-options to stratadb only, after its own options', () => {
    const out = path.join(dir, 'stratadb-options.json')
    // A value stratadb refuses proves the options reach its open(); classic-level runs as usual.
    const bad = runCli(['fillseq', '--engines', 'stratadb,classic-level', '--num', '2000', '--stratadb-options', '{"pointReadIndexes":"sometimes"}', '--out', out], 60_000)
    expect(bad.stdout).toContain('options:  {"pointReadIndexes":"sometimes"} for stratadb')
    const refused = JSON.parse(fs.readFileSync(out, 'utf8')) as Report
    expect(refused.results.find((r) => r.engine === 'stratadb')).toMatchObject({ ok: false, error: expect.stringMatching(/pointReadIndexes/) })
    expect(refused.results.find((r) => r.engine === 'classic-level')?.ok).toBe(true)
    const good = runCli(['fillseq', '--engines', 'stratadb', '--num', '2000', '--stratadb-options', '{"compression":"none"}', '--out', out], 60_000)
    expect(good.stdout).toContain('options:  {"compression":"none"} for stratadb')
    const report = JSON.parse(fs.readFileSync(out, 'utf8')) as Report & { config: BenchConfig }
    expect(report.config.stratadbOptions).toEqual({ compression: 'none' })
    for (const r of report.results) expect(r.ok, `${r.engine}: ${r.error}`).toBe(true)
  })

  it('rejects an unknown workload', () => {
    const run = runCli(['fillsideways'], 30_000)
    expect(run.status).not.toBe(0)
    expect(run.stderr).toContain('unknown workload fillsideways')
  })

  it.skipIf(!fs.existsSync(CHROMIUM))('renders the chart in headless Chromium', () => {
    const outcome = {
      config: { workloads: ['fillrandom'], num: 10, concurrency: 1, runs: 1 },
      environment: { cpuModel: 'test', cores: 1, node: 'v20', startedAt: 'now' },
      engines: [
        { name: 'stratadb', available: true },
        { name: 'lmdb', available: true },
      ],
      results: ['stratadb', 'lmdb'].map((engine, e) => ({
        workload: 'fillrandom',
        engine,
        ok: true,
        series: Array.from({ length: 30 }, (_, t) => ({ t, seconds: 1, ops: 1000, opsPerSec: 1000 * (e + 1) * (t === 12 ? 0 : 1), p99Ns: t === 12 ? undefined : 1e5 * (t + 1) })),
      })),
    } as unknown as Parameters<typeof writeChart>[1]
    expect(chartRows(outcome)).toHaveLength(1)
    const svg = path.join(dir, 'render.svg')
    const png = path.join(dir, 'render.png')
    writeChart(svg, outcome)
    const run = spawnSync(process.execPath, [RENDER, svg, png], { encoding: 'utf8', timeout: 90_000 })
    expect(run.status, run.stderr).toBe(0)
    expect(run.stdout).toMatch(/\d+ lines/)
    const header = fs.readFileSync(png).subarray(0, 8)
    expect(header.equals(Buffer.from([0x89, 0x50, 0x4e, 0x47, 0x0d, 0x0a, 0x1a, 0x0a]))).toBe(true)
  })
})

#!/usr/bin/env node
/**
 * Large values in one engine process (issue "Large values at the speed of
 * the disk"), for the measurements behind docs/design.md "Blob files":
 *
 *   node bench/blob-probe.mjs write [--num 3000] [--bytes 262144] [--options '{"minBlobBytes":2147483648}']
 *     puts of --bytes values with scattered keys, 64 in flight, into a new
 *     database; prints puts/s, p50/p99/max, write stalls, and the flushes'
 *     time and bytes (stats().writes). `minBlobBytes` above the value size
 *     keeps values inline, for the comparison.
 *   node bench/blob-probe.mjs scan [--num 50000] [--bytes 4096]
 *     writes --num values (kept under --dir between runs), compactRange,
 *     reopens, then scans everything forward and backward; prints values/s.
 *   node bench/blob-probe.mjs read [--num 1000] [--bytes 262144]
 *     writes, reopens, then getSync of every key three times; prints µs per get.
 *   node bench/blob-probe.mjs rss [--num 500] [--bytes 1048576]
 *     writes (64 in flight), compactRange;
 *     prints the peak RSS (sampled every 20 ms) and the memory budget.
 *
 * --dir <parent> (default the OS temp directory); --runs N repeats and prints
 * each run (alternate builds or options between invocations for A/B).
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { open } from '../dist/index.js'

const args = process.argv.slice(2)
const mode = args[0]
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : dflt
}
const bytes = Number(opt('bytes', { scan: '4096', rss: '1048576' }[mode] ?? '262144'))
const num = Number(opt('num', { scan: '50000', read: '1000', rss: '500' }[mode] ?? '3000'))
const options = JSON.parse(opt('options', '{}'))
const runs = Number(opt('runs', '1'))
const parent = opt('dir', os.tmpdir())

/** Distinct values: windows of a pseudo-random pool. */
const pool = Buffer.alloc(bytes * 2)
for (let i = 0; i < pool.length; i++) pool[i] = Math.imul(i, 2654435761) >>> 24
const valueOf = (i) => pool.subarray(i % bytes, (i % bytes) + bytes)
const keyOf = (i) => `key${String((i * 7919) % num).padStart(8, '0')}`

async function fill(db, concurrency = 64) {
  const latencies = []
  let next = 0
  const worker = async () => {
    while (next < num) {
      const i = next++
      const started = performance.now()
      await db.put(keyOf(i), valueOf(i))
      latencies.push(performance.now() - started)
    }
  }
  await Promise.all(Array.from({ length: concurrency }, worker))
  return latencies.sort((a, b) => a - b)
}

async function write(dir) {
  const db = await open(dir, options)
  const started = performance.now()
  const lat = await fill(db)
  const ms = performance.now() - started
  const w = db.stats().writes
  await db.close()
  const at = (q) => lat[Math.min(lat.length - 1, Math.floor(lat.length * q))].toFixed(1)
  console.log(JSON.stringify({ mode, bytes, num, putsPerSec: Math.round((num / ms) * 1000), p50Ms: at(0.5), p99Ms: at(0.99), maxMs: at(1), stalls: w.stalls, stallMs: Math.round(w.stallMs), flushes: w.flushes, flushMs: Math.round(w.flushMs), flushMB: Math.round(w.flushBytes / 1e6), walMB: Math.round(w.walBytes / 1e6) }))
}

async function scan(dir) {
  if (!fs.existsSync(path.join(dir, 'CURRENT'))) {
    const db = await open(dir, options)
    await fill(db)
    await db.compactRange()
    await db.close()
  }
  const db = await open(dir, options)
  for (const reverse of [false, true]) {
    const started = performance.now()
    let n = 0
    for await (const [, v] of db.iterator({ reverse })) n += v.length > 0 ? 1 : 0
    const s = (performance.now() - started) / 1000
    console.log(JSON.stringify({ mode, bytes, reverse, values: n, valuesPerSec: Math.round(n / s), mbPerSec: Math.round((n * bytes) / 1e6 / s) }))
  }
  await db.close()
}

async function read(dir) {
  if (!fs.existsSync(path.join(dir, 'CURRENT'))) {
    const db = await open(dir, options)
    await fill(db)
    await db.close()
  }
  const db = await open(dir, options)
  for (let round = 0; round < 3; round++) {
    const started = performance.now()
    for (let i = 0; i < num; i++) if (db.getSync(keyOf(i)) === undefined) throw new Error(`lost ${keyOf(i)}`)
    console.log(JSON.stringify({ mode, bytes, round, usPerGet: (((performance.now() - started) / num) * 1000).toFixed(1) }))
  }
  await db.close()
}

async function rss(dir) {
  const before = process.memoryUsage().rss
  let peak = before
  const timer = setInterval(() => (peak = Math.max(peak, process.memoryUsage().rss)), 20)
  const db = await open(dir, options)
  await fill(db)
  await db.compactRange()
  peak = Math.max(peak, process.memoryUsage().rss)
  clearInterval(timer)
  const budget = db.stats().memory.budget
  await db.close()
  const mib = (n) => Math.round(n / 2 ** 20)
  console.log(JSON.stringify({ mode, bytes, num, beforeMiB: mib(before), peakMiB: mib(peak), budgetMiB: mib(budget.totalBytes), memtablesMiB: mib(budget.memtablesBytes) }))
}

if (!['write', 'scan', 'read', 'rss'].includes(mode)) {
  console.error('usage: node bench/blob-probe.mjs write|scan|read|rss [--num N] [--bytes B] [--options JSON] [--runs N] [--dir PARENT]')
  process.exit(2)
}
const dir = fs.mkdtempSync(path.join(parent, 'strata-blob-probe-'))
try {
  for (let r = 0; r < runs; r++) {
    if (mode === 'write' || mode === 'rss') fs.rmSync(dir, { recursive: true, force: true })
    await { write, scan, read, rss }[mode](dir)
  }
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}

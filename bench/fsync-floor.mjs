#!/usr/bin/env node
/**
 * The floor under a durable put with one writer (issue "No put waits a
 * second", fillsync): one append of a WAL-record-sized buffer and one
 * fdatasync per operation, nothing else, on the same file system the bench
 * uses. Two loops: synchronous system calls on the main thread, and the
 * asynchronous calls an engine on Node uses (FileHandle.write, then
 * FileHandle.datasync, each on libuv's thread pool).
 *
 *   node bench/fsync-floor.mjs [--ops 2000] [--bytes 150] [--dir <parent>] [--runs 3]
 *
 * Prints ops/s per loop and run, and the medians; compare with
 * `node dist/cli/strata.js bench fillsync --engines stratadb --concurrency 1`
 * run alternately (its puts/s ÷ the async floor is the ratio to report).
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'

const args = process.argv.slice(2)
const opt = (name, dflt) => {
  const i = args.indexOf(`--${name}`)
  return i >= 0 ? args[i + 1] : dflt
}
const ops = Number(opt('ops', '2000'))
const bytes = Number(opt('bytes', '150'))
const runs = Number(opt('runs', '3'))
const parent = opt('dir', os.tmpdir())

function median(xs) {
  const s = [...xs].sort((a, b) => a - b)
  return s[Math.floor(s.length / 2)]
}

function syncLoop(file) {
  const fd = fs.openSync(file, 'w')
  const buf = Buffer.alloc(bytes, 7)
  const started = performance.now()
  for (let i = 0; i < ops; i++) {
    fs.writeSync(fd, buf, 0, buf.length, null)
    fs.fdatasyncSync(fd)
  }
  const ms = performance.now() - started
  fs.closeSync(fd)
  return (ops * 1000) / ms
}

async function asyncLoop(file) {
  const fh = await fs.promises.open(file, 'w')
  const buf = Buffer.alloc(bytes, 7)
  const started = performance.now()
  for (let i = 0; i < ops; i++) {
    await fh.write(buf, 0, buf.length, null)
    await fh.datasync()
  }
  const ms = performance.now() - started
  await fh.close()
  return (ops * 1000) / ms
}

const dir = fs.mkdtempSync(path.join(parent, 'strata-fsync-floor-'))
try {
  const results = { sync: [], async: [] }
  for (let r = 0; r < runs; r++) {
    results.sync.push(syncLoop(path.join(dir, `sync-${r}.log`)))
    results.async.push(await asyncLoop(path.join(dir, `async-${r}.log`)))
  }
  for (const [name, xs] of Object.entries(results)) {
    console.log(`${name.padEnd(5)} write+fdatasync: ${xs.map((x) => Math.round(x)).join(', ')} ops/s; median ${Math.round(median(xs))} (${(1000 / median(xs)).toFixed(3)} ms each), ${ops} ops of ${bytes} bytes in ${dir}`)
  }
  console.log(JSON.stringify({ ops, bytes, dir: parent, syncOpsPerSecond: median(results.sync), asyncOpsPerSecond: median(results.async) }))
} finally {
  fs.rmSync(dir, { recursive: true, force: true })
}

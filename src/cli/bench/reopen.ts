import { fork } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { performance } from 'node:perf_hooks'
import { fileURLToPath } from 'node:url'
import type { BenchConfig } from './config.js'
import type { EngineAdapter } from './engines.js'
import { KeyFormat, randomIndices, streamSeed } from './key-stream.js'
import { LatencyRecorder } from './latency.js'
import { REOPEN_STREAM, reopenSettings, type ReopenChildMessage, type ReopenChildRequest } from './reopen-protocol.js'
import type { Measurement } from './workload.js'

/**
 * The reopen workload, parent side: a child process writes the database and
 * is killed with SIGKILL as soon as its last write is acknowledged; the parent
 * then times `open()` (recovery) and checks that acknowledged writes survived.
 */

/** Acknowledged writes checked after the reopen: this many of the first and of the last. */
const VERIFIED_WRITES_PER_END = 1000

/** Longest wait for the child's writes. */
const CHILD_TIMEOUT_MS = 30 * 60_000

/** Runs one kill-and-reopen cycle for `adapter` in a directory under `scratchDir`. */
export async function measureReopenAfterKill(adapter: EngineAdapter, scratchDir: string, config: BenchConfig): Promise<Measurement> {
  const dir = path.join(scratchDir, `reopen-${adapter.name}`)
  fs.rmSync(dir, { recursive: true, force: true })
  try {
    const { writeMs } = await writeInChildThenKill({ engine: adapter.name, dir, config })
    const startMs = performance.now()
    const db = await adapter.open(dir, reopenSettings(config))
    const openMs = performance.now() - startMs
    let missing: number
    try {
      missing = await countMissingAcknowledged(config, (key) => db.get(key))
    } finally {
      await db.close()
    }
    if (missing > 0) throw new Error(`${missing} acknowledged writes are missing after the reopen`)
    const latency = new LatencyRecorder()
    latency.recordMs(openMs)
    return { ops: 1, bytes: 0, elapsedMs: openMs, latency, details: { childWriteMs: writeMs, openMs } }
  } finally {
    fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** How many of the checked acknowledged writes the reopened database lacks. */
async function countMissingAcknowledged(config: BenchConfig, get: (key: Buffer) => Promise<Uint8Array | undefined>): Promise<number> {
  const indices = randomIndices(config.num, config.num, streamSeed(config.seed, REOPEN_STREAM))
  const keys = new KeyFormat(config.keyBytes)
  const checked = new Set<number>()
  for (let op = 0; op < Math.min(VERIFIED_WRITES_PER_END, config.num); op++) checked.add(indices[op])
  for (let op = Math.max(0, config.num - VERIFIED_WRITES_PER_END); op < config.num; op++) checked.add(indices[op])
  let missing = 0
  for (const index of checked) if ((await get(keys.encode(index))) === undefined) missing++
  return missing
}

/** Forks the child, waits for its "written" message, kills it with SIGKILL and waits for it to exit. */
function writeInChildThenKill(request: ReopenChildRequest): Promise<{ writeMs: number }> {
  const childPath = fileURLToPath(new URL('./reopen-child.js', import.meta.url))
  // A profiler flag given to the parent would make the child write a profile too.
  const execArgv = process.execArgv.filter((arg) => !/^--(cpu-prof|heap-prof|prof)/.test(arg))
  const child = fork(childPath, [JSON.stringify(request)], { execArgv, stdio: ['ignore', 'inherit', 'pipe', 'ipc'] })
  let stderr = ''
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000)
  })
  return new Promise((resolve, reject) => {
    let written: { writeMs: number } | undefined
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS)
    child.on('message', (message: ReopenChildMessage) => {
      if (message.type === 'written') {
        written = { writeMs: message.writeMs }
        child.kill('SIGKILL')
      }
    })
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      if (written !== undefined && signal === 'SIGKILL') resolve(written)
      else reject(new Error(`the writer process ended before its writes were acknowledged (code ${code}, signal ${signal}): ${stderr.trim()}`))
    })
  })
}

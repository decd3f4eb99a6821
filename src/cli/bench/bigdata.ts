import { fork } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import type { BigdataChildMessage, BigdataRequest, BigdataResult } from './bigdata-child.js'
import { stratadbOpenOptions, type BenchConfig } from './config.js'
import type { EngineAdapter } from './engines.js'
import { activeProgress } from './progress.js'
import type { Measurement } from './workload.js'

/**
 * The bigdata workload, parent side: runs bigdata-child.js for one engine,
 * shows its progress, and turns its JSON into a Measurement (the puts), with
 * everything else (windows, memory, disk, reads) in the details.
 */

/** Longest wait for one engine's child (20M keys on a slow engine take a while). */
const CHILD_TIMEOUT_MS = 6 * 3600_000

export async function measureBigdata(adapter: EngineAdapter, scratchDir: string, config: BenchConfig): Promise<Measurement> {
  const dir = path.join(scratchDir, `bigdata-${adapter.name}`)
  fs.rmSync(dir, { recursive: true, force: true })
  const request: BigdataRequest = {
    engine: adapter.name,
    dir,
    keyBytes: config.keyBytes,
    valueBytes: config.valueBytes,
    compressionRatio: config.compressionRatio,
    seed: config.seed,
    num: config.bigdataNum,
    reads: config.bigdataReads,
    windowOps: config.bigdataWindow,
    concurrency: config.concurrency,
    settings: {
      writeBufferBytes: config.bigdataMemtableBytes,
      cacheBytes: config.bigdataCacheBytes,
      stratadbOptions: stratadbOpenOptions(config),
    },
  }
  try {
    const result = await runChild(request)
    const { write } = result
    return {
      ops: result.num,
      bytes: result.io.userBytes,
      elapsedMs: write.elapsedMs,
      latency: undefined,
      latencySummary: write.latencyNs,
      found: result.read.found,
      series: write.series,
      details: { bigdata: result },
    }
  } finally {
    // 2.3 GB per engine at the default size: kept only with --dir.
    if (config.dir === undefined) fs.rmSync(dir, { recursive: true, force: true })
  }
}

/** Forks the child, relays its progress, and parses the JSON it prints. */
function runChild(request: BigdataRequest): Promise<BigdataResult> {
  const childPath = fileURLToPath(new URL('./bigdata-child.js', import.meta.url))
  // A profiler flag given to the parent would make the child write a profile too.
  const execArgv = process.execArgv.filter((arg) => !/^--(cpu-prof|heap-prof|prof)/.test(arg))
  const child = fork(childPath, [JSON.stringify(request)], { execArgv, stdio: ['ignore', 'pipe', 'pipe', 'ipc'] })
  let stdout = ''
  let stderr = ''
  child.stdout?.on('data', (chunk: Buffer) => {
    stdout += chunk.toString()
  })
  child.stderr?.on('data', (chunk: Buffer) => {
    stderr = (stderr + chunk.toString()).slice(-4000)
  })
  const progress = activeProgress()
  child.on('message', (message: BigdataChildMessage) => {
    if (message.type === 'progress') progress.set(message.done, message.total, `bigdata ${request.engine} ${message.phase}s`)
  })
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => child.kill('SIGKILL'), CHILD_TIMEOUT_MS)
    child.on('error', (err) => {
      clearTimeout(timer)
      reject(err)
    })
    child.on('exit', (code, signal) => {
      clearTimeout(timer)
      const line = stdout.trim().split('\n').at(-1) ?? ''
      if (code === 0 && line.startsWith('{')) {
        try {
          resolve(JSON.parse(line) as BigdataResult)
          return
        } catch (err) {
          reject(new Error(`the bigdata process printed invalid JSON: ${(err as Error).message}`))
          return
        }
      }
      reject(new Error(`the bigdata process failed (code ${code}, signal ${signal}): ${stderr.trim().split('\n').slice(-5).join(' | ')}`))
    })
  })
}

import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { StrataError, type StrataErrorCode } from '../base/errors.js'
import type { TableMeta } from '../manifest/table-meta.js'
import { runCompactionJob, type CompactionJob, type CompactionResult } from './compaction-job.js'
import { runFlushJob, type FlushJob } from './flush-job.js'
import type { WrittenTable } from './table-writer.js'
import type { FileSystem } from '../vfs/file-system.js'
import { nodeFileSystem } from '../vfs/node-file-system.js'

/** Young-generation size of a worker thread (V8 picks 16-48 MiB by default). */
const WORKER_YOUNG_GENERATION_MB = 4

/** A job for a background thread. */
export type BackgroundJob = { type: 'flush'; flush: FlushJob } | { type: 'compact'; compaction: CompactionJob }

/**
 * Runs background jobs, one at a time, on a worker thread of its own, so that
 * building tables does not take the main thread's CPU from writes and reads
 * (on 2 cores a flush was ~35% of a random-write stream's main-thread time;
 * docs/performance.md). The engine's flushes have one runner, each
 * concurrent compaction another (a worker would run several jobs at once,
 * interleaved at their awaits). Falls back
 * to running in this thread when the compiled worker script is not available
 * (TypeScript sources without a build), and runs there whenever the engine's
 * file system is not the default one (a seam object cannot be sent to a
 * worker, and a fault-injecting one must see the jobs' calls).
 */
export class BackgroundRunner {
  constructor(private readonly fs: FileSystem = nodeFileSystem) {}

  private worker: Worker | undefined
  private nextId = 1
  private readonly pending = new Map<number, { resolve: (r: unknown) => void; reject: (e: unknown) => void }>()

  async flush(job: FlushJob): Promise<WrittenTable> {
    const written = (await this.run({ type: 'flush', flush: job })) as WrittenTable
    return { ...written, table: written.table === undefined ? undefined : reviveMeta(written.table) }
  }

  async compact(job: CompactionJob): Promise<CompactionResult> {
    const result = (await this.run({ type: 'compact', compaction: job })) as CompactionResult
    return { ...result, outputs: result.outputs.map(reviveMeta) }
  }

  async close(): Promise<void> {
    const w = this.worker
    this.worker = undefined
    if (w !== undefined) await w.terminate()
  }

  private run(job: BackgroundJob): Promise<unknown> {
    const worker = this.ensureWorker()
    if (worker === undefined) return job.type === 'flush' ? runFlushJob(job.flush, this.fs) : runCompactionJob(job.compaction, this.fs)
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      worker.postMessage({ id, job })
    })
  }

  private ensureWorker(): Worker | undefined {
    if (this.worker !== undefined) return this.worker
    if (this.fs !== nodeFileSystem) return undefined
    const script = workerScript()
    if (script === undefined) return undefined
    // A small young generation keeps the worker's garbage (block buffers read
    // once) from growing its heap far past what a job holds live.
    // execArgv: [] so that flags meant for the main script (--input-type, -e, profilers) do not reach the worker.
    const worker = new Worker(script, { execArgv: [], resourceLimits: { maxYoungGenerationSizeMb: WORKER_YOUNG_GENERATION_MB } })
    worker.unref()
    worker.on('message', (msg: { id: number; result?: unknown; error?: { code?: string; message: string } }) => {
      const p = this.pending.get(msg.id)
      if (p === undefined) return
      this.pending.delete(msg.id)
      if (msg.error) {
        const code = (msg.error.code?.startsWith('STRATA_') ? msg.error.code : 'STRATA_IO_ERROR') as StrataErrorCode
        p.reject(new StrataError(code, msg.error.message))
      } else {
        p.resolve(msg.result)
      }
    })
    worker.on('error', (err) => this.failAll(err))
    worker.on('exit', (code) => {
      if (this.worker === worker) this.worker = undefined
      this.failAll(new StrataError('STRATA_IO_ERROR', `background worker exited with code ${code}`))
    })
    this.worker = worker
    return worker
  }

  private failAll(err: unknown): void {
    for (const p of this.pending.values()) p.reject(err)
    this.pending.clear()
  }
}

/** Buffers arrive as plain Uint8Arrays after structured cloning. */
function reviveMeta(m: TableMeta): TableMeta {
  const buf = (u: Uint8Array): Buffer => Buffer.from(u.buffer, u.byteOffset, u.byteLength)
  return { ...m, smallestKey: buf(m.smallestKey), largestKey: buf(m.largestKey) }
}

/** The compiled worker next to this module, or in dist/ when running from src/. */
function workerScript(): URL | undefined {
  const here = new URL('./background-worker.js', import.meta.url)
  if (scriptExists(here)) return here
  const built = new URL(here.href.replace('/src/compaction/', '/dist/compaction/'))
  if (built.href !== here.href && scriptExists(built)) return built
  return undefined
}

/** Looks the worker script up through the default seam (not the engine's: it is not a database file). */
function scriptExists(url: URL): boolean {
  try {
    return nodeFileSystem.stat(fileURLToPath(url)).isFile
  } catch {
    return false
  }
}

import * as fs from 'node:fs'
import { fileURLToPath } from 'node:url'
import { Worker } from 'node:worker_threads'
import { StrataError, type StrataErrorCode } from '../base/errors.js'
import type { TableMeta } from '../manifest/table-meta.js'
import { runFlushJob, type FlushJob } from './flush-job.js'

/**
 * Runs flush jobs on one background worker thread, so building tables does
 * not take the main thread's CPU from writes and reads (on 2 cores the flush
 * was ~35% of a random-write stream's main-thread time; docs/performance.md).
 * Falls back to running in this thread when the compiled worker script is not
 * available (running from TypeScript sources without a build).
 */
export class FlushRunner {
  private worker: Worker | undefined
  private nextId = 1
  private readonly pending = new Map<number, { resolve: (m: TableMeta | undefined) => void; reject: (e: unknown) => void }>()

  run(job: FlushJob): Promise<TableMeta | undefined> {
    const worker = this.ensureWorker()
    if (worker === undefined) return runFlushJob(job)
    const id = this.nextId++
    return new Promise((resolve, reject) => {
      this.pending.set(id, { resolve, reject })
      worker.postMessage({ id, job })
    })
  }

  async close(): Promise<void> {
    const w = this.worker
    this.worker = undefined
    if (w !== undefined) await w.terminate()
  }

  private ensureWorker(): Worker | undefined {
    if (this.worker !== undefined) return this.worker
    const script = workerScript()
    if (script === undefined) return undefined
    const worker = new Worker(script)
    worker.unref()
    worker.on('message', (msg: { id: number; meta?: TableMeta; error?: { code?: string; message: string } }) => {
      const p = this.pending.get(msg.id)
      if (p === undefined) return
      this.pending.delete(msg.id)
      if (msg.error) {
        const code = (msg.error.code?.startsWith('STRATA_') ? msg.error.code : 'STRATA_IO_ERROR') as StrataErrorCode
        p.reject(new StrataError(code, msg.error.message))
      } else {
        p.resolve(msg.meta === undefined ? undefined : reviveMeta(msg.meta))
      }
    })
    worker.on('error', (err) => this.failAll(err))
    worker.on('exit', (code) => {
      if (this.worker === worker) this.worker = undefined
      this.failAll(new StrataError('STRATA_IO_ERROR', `flush worker exited with code ${code}`))
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
  const here = new URL('./flush-worker.js', import.meta.url)
  if (fs.existsSync(fileURLToPath(here))) return here
  const built = new URL(here.href.replace('/src/compaction/', '/dist/compaction/'))
  if (built.href !== here.href && fs.existsSync(fileURLToPath(built))) return built
  return undefined
}

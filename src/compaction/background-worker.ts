import { parentPort } from 'node:worker_threads'
import { runCompactionJob } from './compaction-job.js'
import { runFlushJob } from './flush-job.js'
import type { BackgroundJob } from './background-runner.js'

/**
 * Worker-thread entry: runs flush and compaction jobs as they arrive (they
 * interleave at their awaits; a running compaction pauses while a flush
 * runs, flush-priority.ts) and replies with the result or the error (code
 * and message survive the boundary).
 */
parentPort!.on('message', (msg: { id: number; job: BackgroundJob }) => {
  const run = msg.job.type === 'flush' ? runFlushJob(msg.job.flush) : runCompactionJob(msg.job.compaction)
  run.then(
    (result) => parentPort!.postMessage({ id: msg.id, result }),
    (err: unknown) => {
      const e = err as { code?: string; message?: string }
      parentPort!.postMessage({ id: msg.id, error: { code: e.code, message: e.message ?? String(err) } })
    },
  )
})

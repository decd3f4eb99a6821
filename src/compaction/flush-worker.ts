import { parentPort } from 'node:worker_threads'
import { runFlushJob, type FlushJob } from './flush-job.js'

/**
 * Worker-thread entry: runs flush jobs one at a time and replies with the new
 * table's metadata or the error (code and message survive the boundary).
 */
parentPort!.on('message', (msg: { id: number; job: FlushJob }) => {
  runFlushJob(msg.job).then(
    (meta) => parentPort!.postMessage({ id: msg.id, meta }),
    (err: unknown) => {
      const e = err as { code?: string; message?: string }
      parentPort!.postMessage({ id: msg.id, error: { code: e.code, message: e.message ?? String(err) } })
    },
  )
})

import { loadEngine } from './engines.js'
import { REOPEN_STREAM, reopenSettings, type ReopenChildMessage, type ReopenChildRequest } from './reopen-protocol.js'
import { createContext } from './workload.js'
import { putRandom } from './workloads.js'

/**
 * The reopen workload's writer process (forked by reopen.ts): opens a new
 * database, makes the fillrandom writes of the `reopen` stream, reports
 * "written" once every write is acknowledged, then waits to be killed.
 */

async function main(): Promise<void> {
  const request = JSON.parse(process.argv[2] ?? '') as ReopenChildRequest
  // Never outlive the parent.
  process.on('disconnect', () => process.exit(1))
  const adapter = await loadEngine(request.engine)
  const db = await adapter.open(request.dir, reopenSettings(request.config))
  const measured = await putRandom(db, createContext(request.config), REOPEN_STREAM)
  const message: ReopenChildMessage = { type: 'written', writeMs: measured.elapsedMs }
  process.send!(message)
  // Stay alive, database open, until the SIGKILL.
  setInterval(() => {}, 60_000)
}

main().catch((err: unknown) => {
  console.error(err instanceof Error ? (err.stack ?? err.message) : String(err))
  process.exit(1)
})

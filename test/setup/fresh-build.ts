import { execFileSync } from 'node:child_process'
import * as fs from 'node:fs'
import * as path from 'node:path'

/**
 * Vitest runs the engine from src/, but a worker thread (flush and
 * compaction) and the child processes of the crash tests run dist/. A dist/
 * older than src/ makes them disagree (after a format change, the worker
 * writes tables the reader rejects). `npm test` builds first; this rebuilds
 * when a direct `npx vitest` finds dist/ stale.
 */
export default function setup(): void {
  const root = path.resolve(import.meta.dirname, '..', '..')
  const built = path.join(root, 'dist', 'index.js')
  const builtMs = fs.existsSync(built) ? fs.statSync(built).mtimeMs : 0
  if (newestMs(path.join(root, 'src')) <= builtMs) return
  console.log('dist/ is older than src/: building first (npm run build)')
  execFileSync('npm', ['run', 'build'], { cwd: root, stdio: 'inherit' })
  // tsc keeps unchanged outputs' times: mark the build as done now.
  const now = new Date()
  fs.utimesSync(built, now, now)
}

function newestMs(dir: string): number {
  let newest = 0
  for (const entry of fs.readdirSync(dir, { withFileTypes: true })) {
    const p = path.join(dir, entry.name)
    newest = Math.max(newest, entry.isDirectory() ? newestMs(p) : fs.statSync(p).mtimeMs)
  }
  return newest
}

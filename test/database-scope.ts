import { afterEach } from 'vitest'
import { open, type Database, type OpenOptions } from '../src/index.js'
import { tempDir } from './unit/helpers.js'

/**
 * Temporary directories and databases of one test file, closed and removed
 * after each test (registers the afterEach: call it at the file's top level).
 */
export function databaseScope(prefix: string): { newDir: () => string; openDb: (dir: string, options?: OpenOptions) => Promise<Database> } {
  const cleanups: Array<() => void> = []
  const openDbs: Database[] = []
  afterEach(async () => {
    for (const db of openDbs.splice(0)) if (db.isOpen) await db.close()
    for (const c of cleanups.splice(0)) c()
  })
  return {
    newDir(): string {
      const t = tempDir(prefix)
      cleanups.push(t.cleanup)
      return t.dir
    },
    async openDb(dir: string, options: OpenOptions = {}): Promise<Database> {
      const db = await open(dir, options)
      openDbs.push(db)
      return db
    },
  }
}

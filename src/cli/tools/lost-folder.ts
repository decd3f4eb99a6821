/**
 * The `lost/` folder of a repair: every file the repair replaces or leaves
 * out is moved there, never deleted. A move is planned (with a free name in
 * lost/, `name.1`, `name.2`... when an earlier repair took it) and its
 * outcome recorded; the files are linked there before the new manifest is
 * switched to and unlinked from the directory after it, so that a crash at
 * any point loses nothing.
 */
import * as path from 'node:path'
import { syncDirectory, writeFully, type FileSystem } from '../../vfs/file-system.js'
import type { Finding } from './output.js'
import type { FileOutcome } from './repair-report.js'

/** The folder files are moved into. */
export const LOST_DIR = 'lost'

/** A file to move into lost/: linked there first, unlinked after the new manifest is in place. */
interface Move {
  name: string
  target: string
  /** Keep the original name (CURRENT: replaced by the switch, its old text kept in lost/). */
  copyOnly: boolean
  linked: boolean
}

/** The lost/ folder of the directory being repaired, and the moves into it planned so far. */
export class LostFolder {
  private readonly moves: Move[] = []
  /** Names taken in lost/ (by earlier repairs, and by this one's moves). */
  readonly names = new Set<string>()

  constructor(
    private readonly fs: FileSystem,
    private readonly dir: string,
    /** Where the outcome of every move is recorded (the report's list of files). */
    private readonly files: FileOutcome[],
  ) {}

  /** Notes the names lost/ already holds (from earlier repairs). */
  readExisting(): void {
    try {
      for (const n of this.fs.readdir(path.join(this.dir, LOST_DIR))) this.names.add(n)
    } catch {
      // None yet.
    }
  }

  /** Creates lost/ unless it exists. */
  ensure(): void {
    this.fs.mkdir(path.join(this.dir, LOST_DIR))
  }

  /** A free name in lost/ for `name` (`name.1`, `name.2`... when taken by an earlier repair). */
  target(name: string): string {
    let candidate = name
    for (let i = 1; this.names.has(candidate); i++) candidate = `${name}.${i}`
    this.names.add(candidate)
    return path.join(LOST_DIR, candidate)
  }

  /** Plans moving `name` into lost/ and records the outcome. */
  moveAside(name: string, outcome: Omit<FileOutcome, 'file' | 'problems'> & { problems?: Finding[] }, copyOnly = false): void {
    const target = this.target(name)
    this.moves.push({ name, target, copyOnly, linked: false })
    this.files.push({ file: name, problems: [], ...outcome, movedTo: target })
  }

  /** Links every file planned into lost/ (before the new manifest is switched to). */
  linkMoves(): void {
    if (this.moves.length === 0) return
    this.ensure()
    for (const m of this.moves) {
      try {
        this.fs.link(path.join(this.dir, m.name), path.join(this.dir, m.target))
        m.linked = true
      } catch {
        // No hard links here: the file is renamed after the switch instead (copied, when it keeps its name).
        if (m.copyOnly) this.copyFile(m.name, m.target)
      }
    }
    syncDirectory(this.fs, path.join(this.dir, LOST_DIR))
  }

  private copyFile(name: string, target: string): void {
    const bytes = this.fs.readFile(path.join(this.dir, name))
    const file = this.fs.open(path.join(this.dir, target), 'wx')
    try {
      writeFully(file, bytes, 0)
      file.datasyncSync()
    } finally {
      file.close()
    }
  }

  /** Unlinks the old names (or renames, where no hard link was made), after the switch. */
  finishMoves(): void {
    for (const m of this.moves) {
      if (m.copyOnly) continue
      const from = path.join(this.dir, m.name)
      if (m.linked) this.fs.unlink(from)
      else this.fs.rename(from, path.join(this.dir, m.target))
    }
    if (this.moves.length > 0) {
      syncDirectory(this.fs, this.dir)
      syncDirectory(this.fs, path.join(this.dir, LOST_DIR))
    }
  }
}

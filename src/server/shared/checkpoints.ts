/**
 * Checkpoints the server writes on request: HTTP `POST /v1/admin/checkpoint`
 * and RESP `SAVE` / `BGSAVE` all come here. Each is `db.checkpoint()` (an
 * online, consistent copy, tables hard-linked; writes go on meanwhile) into
 * a new subdirectory of the checkpoint directory (`checkpointDir`, by
 * default the data directory's sibling `<dir>.checkpoints`).
 *
 * - One at a time: `start()` answers undefined while one is being written
 *   (HTTP 409, RESP `-ERR Background save already in progress`);
 *   `background(true)` (BGSAVE SCHEDULE) instead remembers to start one
 *   more as soon as it is done (several requests make one checkpoint).
 * - Names: a caller's name (`checkpointNameError` checks it: a plain name,
 *   never a path), else `checkpoint-<UTC yyyymmddThhmmssZ>-<sequence>`, the
 *   sequence being the one the checkpoint holds (read in the same
 *   synchronous step in which the engine captures it); should that name
 *   exist (two checkpoints in one second without writes between), `-2`,
 *   `-3`… is appended.
 * - What INFO, LASTSAVE, /v1/stats and the metrics report: the last
 *   success (LASTSAVE starts at the server's start time, as Redis reports
 *   the load of its dump), the status and duration of the last attempt,
 *   counts, and the writes since the last checkpoint (sequence difference).
 * - Every checkpoint is logged (path, sequence, size, ms); a failure too,
 *   naming the directory left behind (open() refuses such an incomplete
 *   checkpoint; remove it).
 * - `close()` (shutdown) refuses new checkpoints, forgets a scheduled one
 *   and waits for the one being written, so the database closes after it.
 */
import * as path from 'node:path'
import { StrataError, type CheckpointResult, type Database } from '../../index.js'
import { isLoopbackHost } from './address.js'

/** What a checkpoint name may be: a plain directory name, never a path. */
const NAME_PATTERN = /^[A-Za-z0-9][A-Za-z0-9._-]{0,99}$/

/** Why `name` is not an acceptable checkpoint name, or undefined when it is. */
export function checkpointNameError(name: unknown): string | undefined {
  if (typeof name !== 'string') return 'name must be a string'
  if (!NAME_PATTERN.test(name) || name.includes('..')) {
    return `invalid checkpoint name ${JSON.stringify(name.slice(0, 120))}: use 1 to 100 of A-Z a-z 0-9 . _ -, starting with a letter or digit, without ".." (a name, not a path)`
  }
  return undefined
}

/** Who asked for a checkpoint (for the log). */
export type CheckpointTrigger = 'HTTP' | 'SAVE' | 'BGSAVE'

/** A checkpoint written. */
export interface CheckpointDone extends CheckpointResult {
  /** Its subdirectory of the checkpoint directory. */
  name: string
  /** Its absolute path. */
  dir: string
  durationMs: number
  /** Date.now() when it was done. */
  finishedAtMs: number
}

/** What `background()` did. */
export type BackgroundStart = 'started' | 'scheduled' | 'in-progress' | 'closed'

/** Figures for INFO, /v1/stats and the metrics. */
export interface CheckpointFigures {
  dir: string
  inProgress: boolean
  /** How long the one being written has run (ms), -1 when none is. */
  currentMs: number
  scheduled: boolean
  completed: number
  failed: number
  /** The last successful checkpoint. */
  last: CheckpointDone | undefined
  /** Date.now() of the last success; the server's start time before the first. */
  lastSaveMs: number
  /** Outcome of the last attempt ('ok' before the first). */
  lastStatus: 'ok' | 'err'
  lastError: string | undefined
  /** Duration of the last attempt (ms), -1 before the first. */
  lastDurationMs: number
  /** Writes (sequence numbers) since the last checkpoint (since the start before the first). */
  changesSinceLast: number
}

/** The checkpoints of one server; see the file comment. */
export class Checkpoints {
  /** Absolute path of the directory checkpoints are written into. */
  readonly dir: string
  private running: Promise<CheckpointDone> | undefined
  private runningSinceMs = 0
  private scheduled = false
  private closed = false
  private completed = 0
  private failed = 0
  private last: CheckpointDone | undefined
  private lastSaveMs: number
  private lastStatus: 'ok' | 'err' = 'ok'
  private lastError: string | undefined
  private lastDurationMs = -1
  /** Sequence the last checkpoint holds (the last at start before the first). */
  private savedSequence: number

  constructor(
    private readonly db: Database,
    dir: string,
    /** True when a token is configured (else only loopback clients may ask). */
    private readonly tokenRequired: boolean,
    private readonly log: (line: string) => void,
  ) {
    this.dir = path.resolve(dir)
    this.lastSaveMs = Date.now()
    this.savedSequence = db.stats().lastSequence
  }

  /** True while a checkpoint is being written. */
  get inProgress(): boolean {
    return this.running !== undefined
  }

  /**
   * Why a client at `remoteAddress` may not ask for a checkpoint, or
   * undefined. Without a token only loopback clients may (the listeners bind
   * loopback then anyway; this holds whatever fronts them).
   */
  refusal(remoteAddress: string | undefined): string | undefined {
    if (this.tokenRequired) return undefined
    if (remoteAddress !== undefined && isLoopbackHost(remoteAddress)) return undefined
    return 'without a token, checkpoints are only written for clients on loopback'
  }

  /**
   * Writes a checkpoint (into `name`, else a generated name). undefined when
   * one is being written already; rejects as `db.checkpoint()` does
   * (STRATA_EXISTS when `name` exists) and with STRATA_NOT_OPEN once closing.
   * The caller validates `name` (checkpointNameError).
   */
  start(trigger: CheckpointTrigger, name?: string): Promise<CheckpointDone> | undefined {
    if (this.running !== undefined) return undefined
    if (this.closed) return Promise.reject(new StrataError('STRATA_NOT_OPEN', 'the server is shutting down'))
    this.runningSinceMs = performance.now()
    const run = this.write(trigger, name)
    this.running = run
    const settled = (): void => {
      this.running = undefined
      if (this.scheduled && !this.closed) {
        this.scheduled = false
        this.start('BGSAVE')?.catch(() => {})
      }
    }
    run.then(settled, settled)
    return run
  }

  /**
   * BGSAVE: starts a checkpoint without waiting for it (its failure is
   * logged and reported by INFO). While one is being written: 'in-progress',
   * or with `schedule` (BGSAVE SCHEDULE) 'scheduled': one more starts when it
   * is done.
   */
  background(schedule: boolean): BackgroundStart {
    if (this.closed) return 'closed'
    if (this.running !== undefined) {
      if (!schedule) return 'in-progress'
      this.scheduled = true
      return 'scheduled'
    }
    this.start('BGSAVE')?.catch(() => {})
    return 'started'
  }

  /** Refuses new checkpoints, forgets a scheduled one, waits for the one being written. */
  async close(): Promise<void> {
    this.closed = true
    this.scheduled = false
    await this.running?.catch(() => {})
  }

  figures(): CheckpointFigures {
    const lastSequence = this.db.isOpen ? this.db.stats().lastSequence : this.savedSequence
    return {
      dir: this.dir,
      inProgress: this.running !== undefined,
      currentMs: this.running === undefined ? -1 : performance.now() - this.runningSinceMs,
      scheduled: this.scheduled,
      completed: this.completed,
      failed: this.failed,
      last: this.last,
      lastSaveMs: this.lastSaveMs,
      lastStatus: this.lastStatus,
      lastError: this.lastError,
      lastDurationMs: this.lastDurationMs,
      changesSinceLast: Math.max(0, lastSequence - this.savedSequence),
    }
  }

  private async write(trigger: CheckpointTrigger, name: string | undefined): Promise<CheckpointDone> {
    const started = performance.now()
    let target = path.join(this.dir, name ?? 'checkpoint')
    try {
      let result: CheckpointResult | undefined
      for (let attempt = 1; result === undefined; attempt++) {
        let chosen = name
        if (chosen === undefined) {
          // The sequence the checkpoint holds is the visible one when the engine captures its
          // state, which it does synchronously in checkpoint() before its first await: read here,
          // in the same step, it is that sequence (the result's `sequence` is the authority).
          const snapshot = this.db.snapshot()
          const sequence = snapshot.sequence
          snapshot.release()
          chosen = generatedName(new Date(), sequence) + (attempt === 1 ? '' : `-${attempt}`)
        }
        target = path.join(this.dir, chosen)
        const call = this.db.checkpoint(target)
        try {
          result = await call
          name = chosen
        } catch (e) {
          // A generated name that exists (two checkpoints in one second, no write between): next suffix.
          if (name === undefined && e instanceof StrataError && e.code === 'STRATA_EXISTS' && attempt < 100) continue
          throw e
        }
      }
      const durationMs = performance.now() - started
      const done: CheckpointDone = { ...result, name: name!, dir: target, durationMs: Math.round(durationMs), finishedAtMs: Date.now() }
      this.completed++
      this.last = done
      this.lastSaveMs = done.finishedAtMs
      this.lastStatus = 'ok'
      this.lastError = undefined
      this.lastDurationMs = durationMs
      this.savedSequence = result.sequence
      this.log(
        `checkpoint ${target}: sequence ${result.sequence}, ${result.files} files, ${result.bytes} bytes (${result.copiedBytes} copied), ${durationMs.toFixed(1)} ms (${trigger})`,
      )
      return done
    } catch (e) {
      // A name the caller chose that exists is the caller's mistake, not a failed checkpoint.
      if (!(name !== undefined && e instanceof StrataError && e.code === 'STRATA_EXISTS')) {
        const message = e instanceof Error ? e.message : String(e)
        this.failed++
        this.lastStatus = 'err'
        this.lastError = message
        this.lastDurationMs = performance.now() - started
        this.log(`checkpoint ${target} failed (${trigger}): ${message}; an incomplete checkpoint directory left there is refused by open(): remove it`)
      }
      throw e
    }
  }
}

/** `checkpoint-20261206T210405Z-000123`: the UTC time to the second and the sequence (at least six digits). */
export function generatedName(at: Date, sequence: number): string {
  const stamp = at.toISOString().replace(/\.\d+Z$/, 'Z').replaceAll('-', '').replaceAll(':', '')
  return `checkpoint-${stamp}-${String(sequence).padStart(6, '0')}`
}

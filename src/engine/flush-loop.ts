import type { BackgroundRunner } from '../compaction/background-runner.js'
import type { WrittenTable } from '../compaction/table-writer.js'
import type { Memtable } from '../memtable/memtable.js'
import type { TableBuilderOptions } from '../sstable/table-builder.js'

/** What the flush loop needs from the engine. */
export interface FlushHost {
  readonly dir: string
  /** Settings of the table a flush starting now writes. */
  readonly flushTableOptions: TableBuilderOptions
  /** Values of puts at least this long go to a blob file at flush. */
  readonly minBlobBytes: number
  /** Frozen memtables, oldest first. */
  frozenMemtables(): readonly Memtable[]
  snapshotSequences(): number[]
  /** Allocates file numbers and protects them from obsolete-file deletion. */
  reserveOutputs(count: number): number[]
  releaseOutputs(numbers: readonly number[]): void
  /** Records the oldest frozen memtable's table and blob file (none: it held nothing) in the manifest and drops the memtable. */
  installFlush(memtable: Memtable, written: WrittenTable, startedMs: number): Promise<void>
  /** A flush of the oldest frozen memtable starts at `startedMs`. */
  flushStarted(startedMs: number): void
  /** After each flush, successful or not: wake writers waiting for room. */
  flushEnded(): void
  onError(err: unknown, where: 'flush'): void
  hasBackgroundError(): boolean
}

/**
 * The background flush loop: while frozen memtables wait, the oldest is
 * written to an L0 table on the flush worker thread and installed. One loop
 * at a time; `running` is cleared synchronously when the loop ends, so a
 * memtable frozen right after is never missed.
 *
 * Flush is split the way compaction is: this loop (like
 * compaction/scheduler.ts) decides what to flush and installs the result; the
 * job it hands to the worker (compaction/flush-job.ts, like
 * compaction-job.ts) turns one frozen memtable into a table and touches no
 * engine state. The job sits below the engine so the worker can load it.
 */
export class FlushLoop {
  private running = false
  private loop: Promise<void> = Promise.resolve()

  /**
   * @param runner the worker thread flushes run on, theirs alone (closed by
   *   `close`). Compactions run on threads of their own: sharing one, a flush
   *   went first and the compaction paused, and under a random-write stream
   *   flushes kept that thread busy, so the first L0→L1 compaction of a 10M-key
   *   stream had not finished after 30 s while L0 grew to 25 tables
   *   (docs/performance.md, "A thread for flushes"). Apart, the system's
   *   scheduler shares the cores between writers, flushes and compaction.
   */
  constructor(
    private readonly host: FlushHost,
    private readonly runner: BackgroundRunner,
  ) {}

  /** Starts the loop unless it runs or nothing waits. */
  schedule(): void {
    if (this.running || this.host.frozenMemtables().length === 0) return
    this.running = true
    this.loop = this.run()
  }

  /** Waits for the running loop, then ends the worker thread (a later flush starts a new one). */
  async close(): Promise<void> {
    while (this.running) await this.loop
    await this.runner.close()
  }

  private async run(): Promise<void> {
    try {
      while (this.host.frozenMemtables().length > 0 && !this.host.hasBackgroundError()) {
        try {
          await this.flushOldest()
        } catch (err) {
          this.host.onError(err, 'flush')
        }
        this.host.flushEnded()
      }
    } finally {
      this.running = false
    }
  }

  private async flushOldest(): Promise<void> {
    const imm = this.host.frozenMemtables()[0]
    // A table and, for values of at least minBlobBytes, a blob file.
    const outputs = this.host.reserveOutputs(2)
    const startedMs = performance.now()
    this.host.flushStarted(startedMs)
    try {
      const written = await this.runner.flush({
        dir: this.host.dir,
        walNumbers: imm.walNumbers,
        // A memtable holding replayed entries flushes from its WAL files; others from their records in memory.
        segments: imm.replayed ? undefined : imm.arena.segments(),
        entryCount: imm.entryCount,
        tableNumber: outputs[0],
        tableOptions: this.host.flushTableOptions,
        snapshots: this.host.snapshotSequences(),
        blobs: { minBlobBytes: this.host.minBlobBytes, number: outputs[1] },
      })
      await this.host.installFlush(imm, written, startedMs)
    } finally {
      this.host.releaseOutputs(outputs)
    }
  }
}

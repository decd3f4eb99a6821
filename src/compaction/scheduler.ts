import { NUM_LEVELS } from '../manifest/table-version-edit.js'
import type { TableVersionSet } from '../manifest/table-version-set.js'
import type { ResolvedOptions } from '../options.js'
import type { TableBuilderOptions } from '../sstable/table-builder.js'
import { BackgroundRunner } from './background-runner.js'
import { outputNumbersNeeded, type KeySpan } from './compaction-job.js'
import { blobFilesToCollect, pickBlobCollection, pickCompaction, pickRangeCompaction, pickRangeDeleteCollection, type CompactionPlan } from './picker.js'

/** What the scheduler needs from the engine. */
export interface CompactionHost {
  readonly dir: string
  readonly options: ResolvedOptions
  readonly tableVersions: TableVersionSet
  readonly tableOptions: TableBuilderOptions
  snapshotSequences(): number[]
  currentSequence(): number
  /** Allocates file numbers and protects them from obsolete-file deletion. */
  reserveOutputs(count: number): number[]
  releaseOutputs(numbers: readonly number[]): void
  /** A compaction's edit is installed: delete obsolete files, wake paced writers. */
  afterInstall(): void
  onError(err: unknown, where: 'compaction'): void
  /** False once closing or after a background error. */
  canRunBackgroundWork(): boolean
}

export interface CompactionStats {
  compactions: number
  running: number
  bytesRead: number
  bytesWritten: number
  entriesDropped: number
  /** Expired puts compactions turned into deletes (or dropped). */
  entriesExpired: number
  /** Versions compactions dropped because a range tombstone covers them. */
  entriesRangeDeleted: number
  ms: number
  byReason: Record<CompactionPlan['reason'], number>
  /** Bytes of blob values compactions found garbage (dropped or relocated references). */
  blobGarbageBytes: number
  /** Bytes of blob values blob garbage collection moved to new blob files. */
  blobBytesRelocated: number
}

const toSpans = (tables: readonly { smallestKey: Buffer; largestKey: Buffer; fileBytes: number }[]): KeySpan[] =>
  tables.map((t) => ({ smallestKey: t.smallestKey, largestKey: t.largestKey, fileBytes: t.fileBytes }))

/**
 * Runs leveled compactions in the background: picks with the pure picker,
 * merges on worker threads (at most maxConcurrentCompactions at once, never
 * two on the same table), installs each result with one manifest edit.
 */
export class CompactionScheduler {
  readonly stats: CompactionStats = {
    compactions: 0,
    running: 0,
    bytesRead: 0,
    bytesWritten: 0,
    entriesDropped: 0,
    entriesExpired: 0,
    entriesRangeDeleted: 0,
    ms: 0,
    byReason: { l0: 0, size: 0, tombstones: 0, manual: 0, 'blob-gc': 0, 'range-delete': 0 },
    blobGarbageBytes: 0,
    blobBytesRelocated: 0,
  }
  private readonly busy = new Set<number>()
  private readonly cursors: Array<Buffer | undefined> = new Array(NUM_LEVELS).fill(undefined)
  private readonly idleRunners: BackgroundRunner[] = []
  private readonly allRunners: BackgroundRunner[] = []
  private readonly idleWaiters: Array<() => void> = []
  private manual = false
  /** Shared with every job: set at close. */
  private readonly cancel = new Int32Array(new SharedArrayBuffer(4))

  /** Each concurrent compaction runs on a worker thread of its own (closed by `close`). */
  constructor(private readonly host: CompactionHost) {}

  /** Starts automatic compactions while there are free slots and work to do. */
  maybeSchedule(): void {
    const { options } = this.host
    if (!options.autoCompaction || this.manual) return
    while (this.stats.running < options.maxConcurrentCompactions && this.host.canRunBackgroundWork()) {
      const current = this.host.tableVersions.current
      const plan =
        pickCompaction(current, options, this.busy, this.cursors) ??
        pickBlobCollection(current, options.blobGarbagePercent, this.busy) ??
        pickRangeDeleteCollection(current, this.host.snapshotSequences()[0] ?? Infinity, this.busy)
      if (plan === undefined) return
      void this.run(plan) // errors are reported through host.onError
    }
  }

  /**
   * Compacts every table overlapping [start, end] down level by level until
   * the range sits in the deepest populated level, then rewrites the tables of
   * that level which this call did not just write, so deletes and versions
   * that released snapshots held are dropped there too.
   */
  async compactRange(start: Buffer | undefined, end: Buffer | undefined): Promise<void> {
    this.manual = true
    try {
      await this.idle()
      const written = new Set<number>()
      const deepest = (): number => {
        const levels = this.host.tableVersions.current.levels
        for (let l = NUM_LEVELS - 1; l > 0; l--) if (levels[l].length > 0) return l
        return 0
      }
      // L0 tables overlap each other: all of them move together (a subset could
      // leave an older version above a newer one). Then level by level.
      for (let level = 0; level === 0 || level < deepest(); level++) {
        const plan = pickRangeCompaction(this.host.tableVersions.current, level, start, end, this.busy)
        if (plan !== undefined) for (const n of await this.run(plan)) written.add(n)
      }
      const bottom = pickRangeCompaction(this.host.tableVersions.current, deepest(), start, end, this.busy, true)
      if (bottom !== undefined && bottom.inputs.some((t) => !written.has(t.number))) await this.run(bottom)
    } finally {
      this.manual = false
    }
    this.maybeSchedule()
  }

  /** Resolves when no compaction is running. */
  idle(): Promise<void> {
    if (this.stats.running === 0) return Promise.resolve()
    return new Promise((resolve) => this.idleWaiters.push(resolve))
  }

  /**
   * Stops running compactions at their next output chunk (their partial
   * outputs are never installed; the next open deletes them), waits for them,
   * and stops the worker threads. A compaction can take tens of seconds; a
   * close should not.
   */
  async close(): Promise<void> {
    Atomics.store(this.cancel, 0, 1)
    await this.idle()
    await Promise.all(this.allRunners.map((r) => r.close()))
  }

  /** Runs one plan to its installed end; returns the numbers of the tables it wrote. */
  private async run(plan: CompactionPlan): Promise<number[]> {
    const { host } = this
    const inputs = [...plan.inputs, ...plan.overlapping]
    for (const t of inputs) this.busy.add(t.number)
    this.stats.running++
    const inputBytes = inputs.reduce((n, t) => n + t.fileBytes, 0)
    const outputNumbers = host.reserveOutputs(
      outputNumbersNeeded(inputBytes, host.options.targetTableBytes, plan.grandparents.length) + 1,
    )
    // The last number is for the blob file that values of collected blob files move to.
    const blobOutputNumber = outputNumbers[outputNumbers.length - 1]
    const runner = this.idleRunners.pop() ?? this.newRunner()
    const started = performance.now()
    let written: number[] = []
    try {
      const tableVersion = host.tableVersions.current
      const result = await runner.compact({
        dir: host.dir,
        inputNumbers: inputs.map((t) => t.number),
        outputNumbers: outputNumbers.slice(0, -1),
        tableOptions: host.tableOptions,
        targetTableBytes: host.options.targetTableBytes,
        snapshots: host.snapshotSequences(),
        grandparents: toSpans(plan.grandparents),
        deeperLevels: tableVersion.levels.slice(plan.outputLevel + 1).map(toSpans),
        cancel: this.cancel,
        relocateBlobFiles: blobFilesToCollect(tableVersion, host.options.blobGarbagePercent),
        blobOutputNumber,
        minBlobBytes: host.options.minBlobBytes,
        nowMs: host.options.clock(),
        rangeTombstones: [...tableVersion.rangeTombstones],
      })
      if (result.cancelled === true) return written
      await host.tableVersions.logAndApply(
        {
          deleted: [
            ...plan.inputs.map((t) => ({ level: plan.level, number: t.number })),
            ...plan.overlapping.map((t) => ({ level: plan.outputLevel, number: t.number })),
          ],
          added: result.outputs.map((table) => ({ level: plan.outputLevel, table })),
          blobsAdded: result.blobFile === undefined ? [] : [{ ...result.blobFile, garbageCount: 0, garbageBytes: 0 }],
          blobGarbage: result.blobGarbage,
        },
        host.currentSequence(),
      )
      written = result.outputs.map((t) => t.number)
      if (plan.level > 0) this.cursors[plan.level] = plan.inputs[plan.inputs.length - 1].largestKey
      const s = this.stats
      s.compactions++
      s.byReason[plan.reason]++
      s.bytesRead += result.bytesRead
      s.bytesWritten += result.bytesWritten
      s.entriesDropped += result.entriesDropped
      s.entriesExpired += result.entriesExpired
      s.entriesRangeDeleted += result.entriesRangeDeleted
      for (const g of result.blobGarbage) s.blobGarbageBytes += g.bytes
      s.blobBytesRelocated += result.blobBytesRelocated
    } catch (err) {
      host.onError(err, 'compaction')
    } finally {
      this.stats.ms += performance.now() - started
      this.idleRunners.push(runner)
      for (const t of inputs) this.busy.delete(t.number)
      host.releaseOutputs(outputNumbers)
      this.stats.running--
      host.afterInstall()
      if (this.stats.running === 0) for (const wake of this.idleWaiters.splice(0)) wake()
    }
    this.maybeSchedule()
    return written
  }

  private newRunner(): BackgroundRunner {
    const r = new BackgroundRunner(this.host.options.fileSystem)
    this.allRunners.push(r)
    return r
  }
}

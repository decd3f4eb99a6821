import { performance } from 'node:perf_hooks'

/**
 * A one-line progress bar on stderr for long workloads, drawn only when
 * stderr is a terminal (and not with --no-progress). The drivers report each
 * completed operation; drawing is throttled, and it is synchronous on a
 * terminal, so it also shows during synchronous loops that block the event loop.
 */

/** Redraw at most this often. */
const REDRAW_MS = 200
/** Draw only for workloads that last longer than this. */
const SHOW_AFTER_MS = 1000
const BAR_CELLS = 24

type Writer = { write(text: string): unknown; columns?: number }

export class ProgressBar {
  private label = ''
  private total = 0
  private done = 0
  private phaseStartMs = 0
  private lastDrawMs = 0
  private drawn = false
  private checkEvery = 1
  private sinceCheck = 0
  private timer: NodeJS.Timeout | undefined

  constructor(
    private readonly out: Writer | undefined,
  ) {}

  get enabled(): boolean {
    return this.out !== undefined
  }

  /** Operations completed in the current phase. */
  get doneCount(): number {
    return this.done
  }

  /** Operations of the current phase. */
  get totalCount(): number {
    return this.total
  }

  /** Names what runs now (e.g. "fillrandom stratadb"); clears the previous bar. */
  begin(label: string): void {
    this.clear()
    this.label = label
    this.total = 0
    this.done = 0
    this.phaseStartMs = performance.now()
    // Redraws while no operation completes (a stall), when the event loop is free.
    if (this.out !== undefined && this.timer === undefined) {
      this.timer = setInterval(() => this.maybeDraw(), 500)
      this.timer.unref()
    }
  }

  /** Removes the bar and stops redrawing. */
  end(): void {
    if (this.timer !== undefined) clearInterval(this.timer)
    this.timer = undefined
    this.clear()
  }

  /** Starts a phase of `total` operations (a workload may have several: writes, then reads). */
  phase(total: number, label?: string): void {
    if (label !== undefined) this.label = label
    this.total = total
    this.done = 0
    this.phaseStartMs = performance.now()
    this.sinceCheck = 0
    this.checkEvery = 1
  }

  /** One more operation completed. Cheap: looks at the clock every `checkEvery` calls. */
  advance(): void {
    this.done++
    if (this.out === undefined || ++this.sinceCheck < this.checkEvery) return
    this.sinceCheck = 0
    this.maybeDraw()
  }

  /** Sets the count of completed operations (progress reported by a child process). */
  set(done: number, total: number, label?: string): void {
    if (label !== undefined && label !== this.label) {
      this.label = label
      this.phaseStartMs = performance.now()
    }
    if (total !== this.total) this.phaseStartMs = performance.now()
    this.total = total
    this.done = done
    this.maybeDraw()
  }

  /** Writes a line above the bar. */
  log(line: string): void {
    if (this.out === undefined) {
      process.stderr.write(line + '\n')
      return
    }
    this.clear()
    this.out.write(line + '\n')
  }

  /** Removes the bar. */
  clear(): void {
    if (this.out !== undefined && this.drawn) {
      this.out.write('\r\x1b[K')
      this.drawn = false
    }
  }

  private maybeDraw(): void {
    if (this.out === undefined) return
    const now = performance.now()
    if (now - this.lastDrawMs < REDRAW_MS) {
      // Calls come fast: look at the clock less often.
      if (this.checkEvery < 1024) this.checkEvery *= 2
      return
    }
    // Calls come slowly now (after a fast start): look more often again.
    if (now - this.lastDrawMs > 2 * REDRAW_MS && this.checkEvery > 1) this.checkEvery >>= 1
    if (now - this.phaseStartMs < SHOW_AFTER_MS) return
    this.lastDrawMs = now
    this.draw(now)
  }

  private draw(now: number): void {
    const out = this.out!
    const fraction = this.total > 0 ? Math.min(1, this.done / this.total) : 0
    const filled = Math.round(fraction * BAR_CELLS)
    const elapsedS = (now - this.phaseStartMs) / 1000
    const rate = elapsedS > 0 ? this.done / elapsedS : 0
    const etaS = rate > 0 && this.total > this.done ? (this.total - this.done) / rate : 0
    const text =
      `  [${'#'.repeat(filled)}${'.'.repeat(BAR_CELLS - filled)}] ${(fraction * 100).toFixed(0).padStart(3)}% ` +
      `${this.label} ${Math.round(this.done).toLocaleString('en-US')}/${this.total.toLocaleString('en-US')} ` +
      `${Math.round(rate).toLocaleString('en-US')}/s ETA ${formatSeconds(etaS)}`
    const width = out.columns !== undefined && out.columns > 20 ? out.columns : 120
    out.write('\r\x1b[K' + text.slice(0, Math.max(10, width - 1)))
    this.drawn = true
  }
}

function formatSeconds(s: number): string {
  if (s < 60) return `${Math.ceil(s)}s`
  const m = Math.floor(s / 60)
  return m < 60 ? `${m}m${String(Math.round(s % 60)).padStart(2, '0')}s` : `${Math.floor(m / 60)}h${String(m % 60).padStart(2, '0')}m`
}

/** A bar that draws nothing (not a terminal, --no-progress, or a child process). */
export const NO_PROGRESS = new ProgressBar(undefined)

let current: ProgressBar = NO_PROGRESS

/** The bar the drivers report to. */
export function activeProgress(): ProgressBar {
  return current
}

export function setActiveProgress(bar: ProgressBar): void {
  current = bar
}

/** A bar on stderr when it is a terminal and `wanted`, else NO_PROGRESS. */
export function stderrProgress(wanted: boolean): ProgressBar {
  return wanted && process.stderr.isTTY ? new ProgressBar(process.stderr) : NO_PROGRESS
}

import * as fs from 'node:fs'
import type { BigdataResult } from './bigdata-child.js'
import type { EngineName, WorkloadName } from './config.js'
import type { BenchOutcome } from './runner.js'
import type { SeriesPoint } from './timeline.js'

/**
 * `--chart chart.svg`: throughput and p99 latency per second of every timed
 * workload, one line per engine, so stalls (throughput at zero, p99 up) and
 * cliffs show at a glance. Plain SVG written by hand: one row per workload,
 * throughput on the left (linear), p99 on the right (logarithmic). bigdata
 * adds rows for its reads and for the child process's resident memory.
 */

export const ENGINE_COLORS: Record<EngineName, string> = {
  stratadb: '#1f77b4',
  'stratadb-level': '#9467bd',
  'classic-level': '#ff7f0e',
  lmdb: '#2ca02c',
}

/** One line of a panel. */
interface Line {
  engine: EngineName
  dashed?: boolean
  /** [x, y] points; y undefined breaks the line. */
  points: Array<[number, number | undefined]>
}

/** One row of the chart: a title and two panels sharing the x axis. */
interface Row {
  title: string
  xLabel: string
  left: { label: string; lines: Line[]; format: (v: number) => string; log: false; limit?: { value: number; label: string } }
  right?: { label: string; lines: Line[]; format: (v: number) => string; log: true }
}

const WIDTH = 1100
const MARGIN = 24
const PANEL_GAP = 80
const ROW_TITLE = 26
const PLOT_HEIGHT = 170
const AXIS_BOTTOM = 40
const AXIS_LEFT = 70
const ROW_HEIGHT = ROW_TITLE + PLOT_HEIGHT + AXIS_BOTTOM + 14
const HEADER = 70

/** Writes the chart of `outcome` to `file`; returns how many rows it has. */
export function writeChart(file: string, outcome: BenchOutcome): number {
  const rows = chartRows(outcome)
  fs.writeFileSync(file, renderSvg(rows, outcome))
  return rows.length
}

/** The rows of `outcome`: run 1 (or the first successful run) of each workload with a series, engines in order. */
export function chartRows(outcome: BenchOutcome): Row[] {
  const rows: Row[] = []
  const engines = outcome.engines.filter((e) => e.available).map((e) => e.name)
  const firstOk = (workload: WorkloadName, engine: EngineName) =>
    outcome.results.find((r) => r.workload === workload && r.engine === engine && r.ok && r.series !== undefined && r.series.length > 0)
  for (const workload of new Set(outcome.config.workloads)) {
    const found = engines.flatMap((engine) => {
      const r = firstOk(workload, engine)
      return r ? [{ engine, r }] : []
    })
    if (found.length === 0) continue
    rows.push(
      seriesRow(
        workload === 'bigdata' ? 'bigdata: puts' : workload,
        found.map(({ engine, r }) => ({ engine, series: r.series! })),
      ),
    )
    if (workload === 'bigdata') {
      const results = found.flatMap(({ engine, r }) => {
        const b = (r.details as { bigdata?: BigdataResult } | undefined)?.bigdata
        return b ? [{ engine, b }] : []
      })
      if (results.length > 0) {
        rows.push(seriesRow('bigdata: random reads after reopening', results.map(({ engine, b }) => ({ engine, series: b.read.series }))))
        rows.push({
          title: 'bigdata: resident memory of each engine\'s process per second (solid: RSS; dashed: anonymous, i.e. without mapped files); open, writes, close, reads',
          xLabel: 'seconds since the process started',
          left: {
            label: 'RSS (MiB)',
            log: false,
            format: (v) => formatCount(v),
            limit: { value: 400, label: '400 MiB' },
            lines: results.flatMap(({ engine, b }) => [
              { engine, points: b.memory.perSecond.map((p): [number, number] => [p.t + 0.5, p.rssBytes / 2 ** 20]) },
              {
                engine,
                dashed: true,
                points: b.memory.perSecond.map((p): [number, number | undefined] => [p.t + 0.5, p.rssAnonBytes !== undefined ? p.rssAnonBytes / 2 ** 20 : undefined]),
              },
            ]),
          },
        })
      }
    }
  }
  return rows
}

function seriesRow(title: string, data: Array<{ engine: EngineName; series: SeriesPoint[] }>): Row {
  const mid = (p: SeriesPoint): number => p.t + p.seconds / 2
  return {
    title,
    xLabel: 'seconds since timing started',
    left: {
      label: 'ops/s',
      log: false,
      format: formatCount,
      lines: data.map(({ engine, series }) => ({ engine, points: series.map((p): [number, number] => [mid(p), p.opsPerSec]) })),
    },
    right: {
      label: 'p99 latency',
      log: true,
      format: formatDuration,
      lines: data.map(({ engine, series }) => ({ engine, points: series.map((p): [number, number | undefined] => [mid(p), p.p99Ns]) })),
    },
  }
}

function renderSvg(rows: Row[], outcome: BenchOutcome): string {
  const height = HEADER + Math.max(1, rows.length) * ROW_HEIGHT + MARGIN
  const out: string[] = []
  out.push(
    `<svg xmlns="http://www.w3.org/2000/svg" width="${WIDTH}" height="${height}" viewBox="0 0 ${WIDTH} ${height}" font-family="Helvetica, Arial, sans-serif" font-size="12">`,
  )
  out.push(`<rect x="0" y="0" width="${WIDTH}" height="${height}" fill="#ffffff"/>`)
  const env = outcome.environment
  out.push(text(MARGIN, 26, 'strata bench: throughput and p99 latency per second, one line per engine', { size: 16, weight: 'bold' }))
  out.push(
    text(
      MARGIN,
      44,
      `${env.cpuModel}, ${env.cores} cores; node ${env.node}; num ${outcome.config.num.toLocaleString('en-US')}, concurrency ${outcome.config.concurrency}` +
        `${outcome.config.runs > 1 ? '; run 1 of ' + outcome.config.runs : ''}; started ${env.startedAt}`,
      { fill: '#555' },
    ),
  )
  // Legend.
  let lx = MARGIN
  for (const e of outcome.engines.filter((e) => e.available)) {
    out.push(`<line x1="${lx}" y1="60" x2="${lx + 22}" y2="60" stroke="${ENGINE_COLORS[e.name]}" stroke-width="3"/>`)
    out.push(text(lx + 28, 64, e.name))
    lx += 40 + e.name.length * 7.5
  }
  if (rows.length === 0) out.push(text(MARGIN, HEADER + 30, 'no workload recorded a per-second series', { fill: '#a00' }))
  const panelWidth = (WIDTH - 2 * MARGIN - PANEL_GAP) / 2 - AXIS_LEFT
  rows.forEach((row, i) => {
    const top = HEADER + i * ROW_HEIGHT
    out.push(text(MARGIN, top + 18, row.title, { size: 13, weight: 'bold' }))
    const plotTop = top + ROW_TITLE
    const xMax = niceMax(Math.max(1e-9, ...[...row.left.lines, ...(row.right?.lines ?? [])].flatMap((l) => l.points.map((p) => p[0] + 0.5))))
    const leftX = MARGIN + AXIS_LEFT
    out.push(...panel(leftX, plotTop, row.right ? panelWidth : panelWidth * 2 + PANEL_GAP + AXIS_LEFT, xMax, row.xLabel, row.left))
    if (row.right) out.push(...panel(leftX + panelWidth + PANEL_GAP + AXIS_LEFT, plotTop, panelWidth, xMax, row.xLabel, row.right))
  })
  out.push('</svg>')
  return out.join('\n') + '\n'
}

type PanelSpec = Row['left'] | NonNullable<Row['right']>

function panel(x0: number, y0: number, width: number, xMax: number, xLabel: string, spec: PanelSpec): string[] {
  const out: string[] = []
  const values = spec.lines.flatMap((l) => l.points.flatMap((p) => (p[1] !== undefined && Number.isFinite(p[1]) && (!spec.log || p[1] > 0) ? [p[1]] : [])))
  out.push(`<rect x="${x0}" y="${y0}" width="${fmt(width)}" height="${PLOT_HEIGHT}" fill="#fafafa" stroke="#ccc"/>`)
  const sx = (x: number): number => x0 + (x / xMax) * width
  let sy: (v: number) => number
  const yTicks: number[] = []
  if (spec.log) {
    const lo = values.length > 0 ? Math.floor(Math.log10(Math.min(...values))) : 3
    const hi = values.length > 0 ? Math.max(lo + 1, Math.ceil(Math.log10(Math.max(...values)))) : 4
    sy = (v) => y0 + PLOT_HEIGHT - ((Math.log10(v) - lo) / (hi - lo)) * PLOT_HEIGHT
    for (let d = lo; d <= hi; d++) yTicks.push(10 ** d)
  } else {
    const limit = 'limit' in spec && spec.limit !== undefined ? spec.limit.value : 0
    const yMax = niceMax(Math.max(1e-9, limit * 1.1, ...values))
    sy = (v) => y0 + PLOT_HEIGHT - (v / yMax) * PLOT_HEIGHT
    const step = niceStep(yMax / 5)
    for (let v = 0; v <= yMax + step / 1e6; v += step) yTicks.push(v)
  }
  for (const v of yTicks) {
    const y = sy(v)
    out.push(`<line x1="${x0}" y1="${fmt(y)}" x2="${fmt(x0 + width)}" y2="${fmt(y)}" stroke="#e4e4e4"/>`)
    out.push(text(x0 - 6, y + 4, spec.format(v), { anchor: 'end', fill: '#444', size: 11 }))
  }
  const xStep = niceStep(xMax / 8)
  for (let x = 0; x <= xMax + xStep / 1e6; x += xStep) {
    out.push(`<line x1="${fmt(sx(x))}" y1="${y0 + PLOT_HEIGHT}" x2="${fmt(sx(x))}" y2="${y0 + PLOT_HEIGHT + 4}" stroke="#888"/>`)
    out.push(text(sx(x), y0 + PLOT_HEIGHT + 16, formatCount(x), { anchor: 'middle', fill: '#444', size: 11 }))
  }
  out.push(text(x0 + width / 2, y0 + PLOT_HEIGHT + 32, xLabel, { anchor: 'middle', fill: '#666', size: 11 }))
  out.push(
    text(x0 - 56, y0 + PLOT_HEIGHT / 2, spec.label + (spec.log ? ' (log)' : ''), {
      anchor: 'middle',
      fill: '#444',
      size: 11,
      transform: `rotate(-90 ${x0 - 56} ${y0 + PLOT_HEIGHT / 2})`,
    }),
  )
  if ('limit' in spec && spec.limit !== undefined) {
    const y = sy(spec.limit.value)
    out.push(`<line x1="${x0}" y1="${fmt(y)}" x2="${fmt(x0 + width)}" y2="${fmt(y)}" stroke="#c00" stroke-dasharray="6 4"/>`)
    out.push(text(x0 + width - 4, y - 4, spec.limit.label, { anchor: 'end', fill: '#c00', size: 11 }))
  }
  for (const line of spec.lines) {
    const color = ENGINE_COLORS[line.engine]
    const usable = line.points.filter((p) => p[1] !== undefined && Number.isFinite(p[1]) && (!spec.log || p[1] > 0)) as Array<[number, number]>
    // Break the line where a point has no value (no operation completed that second).
    let segment: string[] = []
    const flush = (): void => {
      if (segment.length > 1) {
        out.push(
          `<polyline fill="none" stroke="${color}" stroke-width="1.8" stroke-linejoin="round"${line.dashed ? ' stroke-dasharray="5 3"' : ''} points="${segment.join(' ')}"/>`,
        )
      }
      segment = []
    }
    for (const [x, y] of line.points) {
      if (y === undefined || !Number.isFinite(y) || (spec.log && y <= 0)) {
        flush()
        continue
      }
      segment.push(`${fmt(sx(x))},${fmt(sy(y))}`)
    }
    flush()
    if (usable.length <= 40 && !line.dashed) {
      for (const [x, y] of usable) out.push(`<circle cx="${fmt(sx(x))}" cy="${fmt(sy(y))}" r="2.6" fill="${color}"/>`)
    }
  }
  return out
}

function text(
  x: number,
  y: number,
  content: string,
  o: { size?: number; weight?: string; fill?: string; anchor?: string; transform?: string } = {},
): string {
  const attrs = [
    `x="${fmt(x)}"`,
    `y="${fmt(y)}"`,
    o.size ? `font-size="${o.size}"` : '',
    o.weight ? `font-weight="${o.weight}"` : '',
    o.fill ? `fill="${o.fill}"` : '',
    o.anchor ? `text-anchor="${o.anchor}"` : '',
    o.transform ? `transform="${o.transform}"` : '',
  ].filter((a) => a !== '')
  return `<text ${attrs.join(' ')}>${escapeXml(content)}</text>`
}

export function escapeXml(s: string): string {
  return s.replace(/[<>&"']/g, (c) => ({ '<': '&lt;', '>': '&gt;', '&': '&amp;', '"': '&quot;', "'": '&apos;' })[c]!)
}

const fmt = (n: number): string => (Math.round(n * 10) / 10).toString()

/** 1, 2 or 5 times a power of ten, at least `x`. */
export function niceStep(x: number): number {
  if (!(x > 0)) return 1
  const p = 10 ** Math.floor(Math.log10(x))
  for (const m of [1, 2, 5, 10]) if (m * p >= x) return m * p
  return 10 * p
}

/** A round upper bound of an axis that includes `x`, not much above it. */
export function niceMax(x: number): number {
  if (!(x > 0)) return 1
  const p = 10 ** Math.floor(Math.log10(x))
  for (const m of [1, 1.2, 1.5, 2, 2.5, 3, 4, 5, 6, 8, 10]) if (m * p >= x * (1 - 1e-12)) return m * p
  return 10 * p
}

function formatCount(v: number): string {
  if (v >= 1e6) return `${+(v / 1e6).toFixed(2)}M`
  if (v >= 1e3) return `${+(v / 1e3).toFixed(1)}k`
  return `${+v.toFixed(2)}`
}

function formatDuration(ns: number): string {
  if (ns >= 1e9) return `${+(ns / 1e9).toFixed(2)} s`
  if (ns >= 1e6) return `${+(ns / 1e6).toFixed(2)} ms`
  if (ns >= 1e3) return `${+(ns / 1e3).toFixed(2)} µs`
  return `${Math.round(ns)} ns`
}

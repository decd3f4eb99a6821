/**
 * Writing entries into new tables in internal-key order, for `strata
 * repair`: a WAL's entries sorted, and the rebuild's merge of many sources
 * (each table's verified entries, each WAL's sorted entries) through a binary
 * heap, asking for the value of each blob entry it writes.
 */
import { isBlobKind } from './entry-kinds.js'
import { compareInternalKeys } from './internal-keys.js'
import type { EntryView } from './table-inspection.js'
import type { TableSink } from './table-sink.js'
import type { WalEntry } from './wal-inspection.js'

/** An entry source of the rebuild's merge. */
export interface Source {
  entry: EntryView
  /** Moves to the next entry; false at the end. */
  advance(): boolean
  /** The table it reads (undefined: a WAL). */
  table?: number
}

/** The value of an entry that has none (a delete). */
export const EMPTY = Buffer.alloc(0)

/** A WAL's entries in internal-key order. */
export function sortedWalEntries(entries: WalEntry[]): WalEntry[] {
  return [...entries].sort((a, b) => compareInternalKeys(a.key, a.sequence, b.key, b.sequence))
}

/** Writes a WAL's entries into the sink in internal-key order. */
export async function writeSorted(sink: TableSink, entries: WalEntry[]): Promise<void> {
  for (const e of sortedWalEntries(entries)) {
    const due = sink.add(e.key, e.sequence, e.kind, e.value ?? EMPTY)
    if (due !== undefined) await due
  }
}

/**
 * Merges sources (each in internal-key order) into the sink through a binary
 * heap. `blobValue` gives the value to write for an entry of kind 3 or 5
 * (undefined: drop it); a repeat of the entry written last is not asked about (the sink
 * drops it).
 */
export async function mergeInto(sink: TableSink, sources: Source[], blobValue?: (e: EntryView, source: Source) => Promise<Uint8Array | undefined>): Promise<void> {
  const heap: Source[] = []
  const less = (a: Source, b: Source): boolean => compareInternalKeys(a.entry.key, a.entry.sequence, b.entry.key, b.entry.sequence) < 0
  const up = (i: number): void => {
    while (i > 0) {
      const p = (i - 1) >> 1
      if (!less(heap[i], heap[p])) break
      ;[heap[i], heap[p]] = [heap[p], heap[i]]
      i = p
    }
  }
  const down = (i: number): void => {
    for (;;) {
      const l = 2 * i + 1
      const r = l + 1
      let m = i
      if (l < heap.length && less(heap[l], heap[m])) m = l
      if (r < heap.length && less(heap[r], heap[m])) m = r
      if (m === i) return
      ;[heap[i], heap[m]] = [heap[m], heap[i]]
      i = m
    }
  }
  for (const s of sources) {
    if (s.advance()) {
      heap.push(s)
      up(heap.length - 1)
    }
  }
  while (heap.length > 0) {
    const top = heap[0]
    const e = top.entry
    const value = isBlobKind(e.kind) && blobValue !== undefined && !sink.isRepeat(e.key, e.sequence) ? await blobValue(e, top) : e.value
    if (value !== undefined) {
      const due = sink.add(e.key, e.sequence, e.kind, value)
      if (due !== undefined) await due
    }
    if (top.advance()) down(0)
    else {
      const last = heap.pop()!
      if (heap.length > 0) {
        heap[0] = last
        down(0)
      }
    }
  }
}

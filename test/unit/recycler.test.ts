import { describe, expect, it } from 'vitest'
import { Recycler } from '../../src/memtable/recycler.js'
import { RecordArena } from '../../src/wal/record-arena.js'

describe('recycler', () => {
  it('keeps chunks of large records (whole multiples of the chunk size) and hands each to a record that fits', () => {
    const r = new Recycler(1024, 16, 1 << 20)
    r.giveChunk(new SharedArrayBuffer(1024))
    r.giveChunk(new SharedArrayBuffer(5 * 1024))
    r.giveChunk(new SharedArrayBuffer(3 * 1024))
    r.giveChunk(new SharedArrayBuffer(1000)) // not a multiple: left to the GC
    expect(r.heldBytes).toBe(9 * 1024)
    // The smallest large enough, not the last given.
    expect(r.takeChunk(2 * 1024)?.byteLength).toBe(3 * 1024)
    expect(r.takeChunk(6 * 1024)).toBeUndefined()
    expect(r.takeChunk(1024)?.byteLength).toBe(5 * 1024)
    expect(r.takeChunk(512)?.byteLength).toBe(1024)
    expect(r.takeChunk(1)).toBeUndefined()
    expect(r.heldBytes).toBe(0)
  })

  it('a stream of records larger than a chunk reuses the chunks a released arena gave back', () => {
    const r = new Recycler(1024, 16, 1 << 20)
    const first = new RecordArena(r)
    const a = first.tail(4000)
    first.commit(4000)
    expect(a.buffer.byteLength).toBe(4096)
    first.recycle()
    const second = new RecordArena(r)
    const b = second.tail(3500)
    expect(b.buffer).toBe(a.buffer)
    expect(r.heldBytes).toBe(0)
  })
})

/**
 * SCAN cursors. Redis cursors are numbers (redis-cli --scan parses them as
 * such), while a key-order scan resumes after a key of any length. So the
 * server remembers, per issued cursor number, the key to resume after, in a
 * table bounded by bytes: the oldest cursors are forgotten first, and a
 * forgotten cursor answers an error rather than silently restarting.
 */

/** Per-entry overhead counted on top of the key bytes. */
const ENTRY_OVERHEAD_BYTES = 64

/** The table of issued SCAN cursors. */
export class ScanCursors {
  private readonly entries = new Map<string, Buffer>()
  private bytes = 0
  private nextId: bigint

  constructor(private readonly maxBytes: number) {
    // Start somewhere random so cursors of a restarted server are not mistaken for fresh ones.
    this.nextId = BigInt(1 + Math.floor(Math.random() * 2 ** 40))
  }

  /** Number of remembered cursors. */
  get size(): number {
    return this.entries.size
  }

  /** Remembers `afterKey`; returns the cursor to hand to the client. */
  save(afterKey: Buffer): string {
    const id = (this.nextId++).toString()
    const key = Buffer.from(afterKey)
    this.entries.set(id, key)
    this.bytes += key.length + ENTRY_OVERHEAD_BYTES
    for (const [oldId, oldKey] of this.entries) {
      if (this.bytes <= this.maxBytes || oldId === id) break
      this.entries.delete(oldId)
      this.bytes -= oldKey.length + ENTRY_OVERHEAD_BYTES
    }
    return id
  }

  /**
   * The key to resume after: null for cursor "0" (start), undefined for a
   * cursor that is not a number or was never issued / already forgotten.
   */
  load(cursor: string): Buffer | null | undefined {
    if (cursor === '0') return null
    if (!/^[1-9]\d{0,19}$/.test(cursor)) return undefined
    return this.entries.get(cursor)
  }
}

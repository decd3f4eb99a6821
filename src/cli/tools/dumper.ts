/**
 * The state and wording every `strata dump` shares, whatever the kind of
 * file: the options (key bounds, --keys-only, --json, --hex), the output, the
 * problems met so far (each printed as `error:` where it lies, or collected
 * for the JSON document's tail), and how keys, values, blob references,
 * expiry times and entries are shown as text and as JSON.
 */
import { KIND_DELETE, KIND_RANGE_DELETE, isExpiringKind } from '../../base/entry.js'
import { blobFileName } from '../../base/file-names.js'
import { decodeBlobReference, type BlobReference } from '../../blob/blob-reference.js'
import { KIND_NOOP } from '../../wal/wal-record.js'
import { expiryText, isBlobKind, isoTime, kindName, payloadOf, readExpiry, type KindName } from './entry-kinds.js'
import { count, hex32, inBounds, jsonBytes, showBytes, showFinding, type BytesFormat, type Finding, type KeyBounds, type Out } from './output.js'
import { rangeInBounds, rangeJson, rangeText, tombstoneOfEntry, type JsonRangeTombstone } from './range-deletes.js'

export type DumpType = 'table' | 'wal' | 'manifest' | 'blob'

export interface DumpOptions extends KeyBounds, BytesFormat {
  keysOnly: boolean
  json: boolean
  /** The file's kind, when its name does not tell. */
  type?: DumpType
}

/** An entry of a table or WAL in a dump's JSON: a point entry, or a WAL's range delete (kind 6). */
export type JsonEntry = JsonPointEntry | JsonRangeDeleteEntry

/** A range delete of a WAL: `{ sequence, kind: 'delete-range', start, startEncoding, end, endEncoding }` (end null: no end). */
export interface JsonRangeDeleteEntry extends JsonRangeTombstone {
  kind: 'delete-range'
}

/** A put, delete or noop of a table or WAL. */
export interface JsonPointEntry {
  key: string
  keyEncoding: string
  sequence: number
  kind: Exclude<KindName, 'delete-range'> | 'noop'
  /** Kinds 'put-expiring' and 'blob-expiring': when the value expires (ms since the epoch), and as ISO 8601 (null: no such date). */
  expiresAt?: number
  expiresAtIso?: string | null
  /** The value stored (for an expiring kind: without its expiry time). */
  value?: string
  valueEncoding?: string
  /** Kinds 'blob' and 'blob-expiring': where the value is (the entry's value bytes are this reference, after the expiry time). */
  blobFile?: string
  blobOffset?: number
  blobLength?: number
  blobChecksum?: number
}

/** What the dump of any kind of file shares: its options and output, the problems met, and how entries are shown. */
export class Dumper {
  readonly problems: Finding[] = []
  readonly format: BytesFormat

  constructor(
    readonly o: DumpOptions,
    readonly out: Out,
  ) {
    this.format = { hex: o.hex }
  }

  /** Whether --from or --to narrows what is shown. */
  get ranged(): boolean {
    return this.o.from !== undefined || this.o.to !== undefined
  }

  show(b: Uint8Array): string {
    return showBytes(b, this.format)
  }

  /** The blob reference an entry of kind 3 (or 5, after its expiry time) holds, or undefined when it does not decode. */
  reference(value: Uint8Array): BlobReference | undefined {
    try {
      return decodeBlobReference(value, '')
    } catch {
      return undefined
    }
  }

  /**
   * An entry as a line: key, `@sequence`, kind, the expiry time of an
   * expiring kind (`expires <ms> (<ISO time>)`, shown with --keys-only too),
   * then the value (without its expiry time) or the blob reference.
   */
  entryText(key: Uint8Array, seq: number, kind: number, value: Uint8Array | null): string {
    if (kind === KIND_NOOP) return `  @${seq} noop`
    // A range delete: `@12 delete-range ["a", "k")` (its bounds are keys: shown with --keys-only too).
    if (kind === KIND_RANGE_DELETE) return `  @${seq} ${kindName(kind)} ${rangeText(tombstoneOfEntry(key, value, seq), this.format)}`
    let v = ''
    if (kind !== KIND_DELETE && value !== null) {
      let payload = value
      if (isExpiringKind(kind)) {
        const x = readExpiry(value)
        if ('problem' in x) return `  ${this.show(key)} @${seq} ${kindName(kind)} malformed: ${x.problem}${this.o.keysOnly ? '' : `; value bytes 0x${Buffer.from(value).toString('hex')}`}`
        v = ` ${expiryText(x.expiresAt)}`
        payload = payloadOf(kind, value)
      }
      if (!this.o.keysOnly) {
        if (isBlobKind(kind)) {
          const r = this.reference(payload)
          v += r === undefined ? ` malformed reference 0x${Buffer.from(payload).toString('hex')}` : ` ${blobFileName(r.fileNumber)} offset ${r.valueOffset}, ${count(r.valueLength)} bytes, checksum 0x${hex32(r.checksum)}`
        } else {
          v += ` ${this.show(payload)}`
        }
      }
    }
    return `  ${this.show(key)} @${seq} ${kindName(kind)}${v}`
  }

  /** An entry in a dump's JSON: see JsonEntry (an expiring kind whose expiry time does not read has its raw value bytes, and no expiresAt). */
  entryJson(key: Uint8Array, seq: number, kind: number, value: Uint8Array | null): JsonEntry {
    if (kind === KIND_RANGE_DELETE) {
      const { sequence, ...range } = rangeJson(tombstoneOfEntry(key, value, seq), this.format)
      return { sequence, kind: 'delete-range', ...range }
    }
    const k = jsonBytes(key, this.format)
    const e: JsonPointEntry = { key: k.text, keyEncoding: k.encoding, sequence: seq, kind: kind === KIND_NOOP ? 'noop' : (kindName(kind) as JsonPointEntry['kind']) }
    if (kind === KIND_DELETE || value === null) return e
    let payload = value
    if (isExpiringKind(kind)) {
      const x = readExpiry(value)
      if ('expiresAt' in x) {
        e.expiresAt = x.expiresAt
        e.expiresAtIso = isoTime(x.expiresAt) ?? null
        payload = payloadOf(kind, value)
      }
    }
    if (this.o.keysOnly) return e
    const blob = isBlobKind(kind) && (!isExpiringKind(kind) || e.expiresAt !== undefined)
    const r = blob ? this.reference(payload) : undefined
    if (r !== undefined) {
      e.blobFile = blobFileName(r.fileNumber)
      e.blobOffset = r.valueOffset
      e.blobLength = r.valueLength
      e.blobChecksum = r.checksum
    } else {
      // A put's value; the raw bytes of a blob reference (or an expiring value) that does not decode.
      const v = jsonBytes(payload, this.format)
      e.value = v.text
      e.valueEncoding = v.encoding
    }
    return e
  }

  /** Whether an entry is within --from/--to: its key, or (a range delete) its range meets them. */
  entryInBounds(key: Uint8Array, kind: number, value: Uint8Array | null): boolean {
    return kind === KIND_RANGE_DELETE ? rangeInBounds(tombstoneOfEntry(key, value, 0), this.o) : inBounds(key, this.o)
  }

  keyJson(key: Uint8Array): { key: string; keyEncoding: string } {
    const k = jsonBytes(key, this.format)
    return { key: k.text, keyEncoding: k.encoding }
  }

  problem(f: Finding): Promise<void> | undefined {
    this.problems.push(f)
    return this.o.json ? undefined : this.out.line(`error: ${showFinding(f)}`)
  }

  /** Starts the JSON document: the fields of `head`, then the list named `list`, whose items follow (then `]` and `jsonTail`). */
  jsonHead(head: Record<string, unknown>, list: string): Promise<void> | undefined {
    return this.out.write(`${JSON.stringify(head).slice(0, -1)},${JSON.stringify(list)}:[`)
  }

  async jsonTail(extra: Record<string, unknown> = {}): Promise<void> {
    let tail = ''
    for (const [k, v] of Object.entries(extra)) tail += `,${JSON.stringify(k)}:${JSON.stringify(v)}`
    await this.out.line(`${tail},"problems":${JSON.stringify(this.problems)}}`)
  }
}

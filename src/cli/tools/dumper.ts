/**
 * The state and wording every `strata dump` shares, whatever the kind of
 * file: the options (key bounds, --keys-only, --json, --hex), the output, the
 * problems met so far (each printed as `error:` where it lies, or collected
 * for the JSON document's tail), and how keys, values, blob references and
 * entries are shown as text and as JSON.
 */
import { KIND_BLOB, KIND_DELETE } from '../../base/entry.js'
import { blobFileName } from '../../base/file-names.js'
import { decodeBlobReference, type BlobReference } from '../../blob/blob-reference.js'
import { KIND_NOOP } from '../../wal/wal-record.js'
import { count, hex32, jsonBytes, showBytes, showFinding, type BytesFormat, type Finding, type KeyBounds, type Out } from './output.js'
import { kindName } from './table-file.js'

export type DumpType = 'table' | 'wal' | 'manifest' | 'blob'

export interface DumpOptions extends KeyBounds, BytesFormat {
  keysOnly: boolean
  json: boolean
  /** The file's kind, when its name does not tell. */
  type?: DumpType
}

/** An entry of a table or WAL in a dump's JSON. */
export interface JsonEntry {
  key: string
  keyEncoding: string
  sequence: number
  kind: 'put' | 'delete' | 'blob' | 'noop' | `kind ${number}`
  value?: string
  valueEncoding?: string
  /** Kind 'blob': where the value is (the entry's value bytes are this reference). */
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

  /** The blob reference an entry of kind 3 holds as its value, or undefined when it does not decode. */
  reference(value: Uint8Array): BlobReference | undefined {
    try {
      return decodeBlobReference(value, '')
    } catch {
      return undefined
    }
  }

  entryText(key: Uint8Array, seq: number, kind: number, value: Uint8Array | null): string {
    if (kind === KIND_NOOP) return `  @${seq} noop`
    const k = kindName(kind)
    let v = ''
    if (kind !== KIND_DELETE && !this.o.keysOnly && value !== null) {
      if (kind === KIND_BLOB) {
        const r = this.reference(value)
        v = r === undefined ? ` malformed reference 0x${Buffer.from(value).toString('hex')}` : ` ${blobFileName(r.fileNumber)} offset ${r.valueOffset}, ${count(r.valueLength)} bytes, checksum 0x${hex32(r.checksum)}`
      } else {
        v = ` ${this.show(value)}`
      }
    }
    return `  ${this.show(key)} @${seq} ${k}${v}`
  }

  entryJson(key: Uint8Array, seq: number, kind: number, value: Uint8Array | null): JsonEntry {
    const k = jsonBytes(key, this.format)
    const e: JsonEntry = { key: k.text, keyEncoding: k.encoding, sequence: seq, kind: kind === KIND_NOOP ? 'noop' : kindName(kind) }
    if (kind !== KIND_DELETE && !this.o.keysOnly && value !== null) {
      const r = kind === KIND_BLOB ? this.reference(value) : undefined
      if (r !== undefined) {
        e.blobFile = blobFileName(r.fileNumber)
        e.blobOffset = r.valueOffset
        e.blobLength = r.valueLength
        e.blobChecksum = r.checksum
      } else {
        // A put's value; the raw bytes of a blob reference that does not decode.
        const v = jsonBytes(value, this.format)
        e.value = v.text
        e.valueEncoding = v.encoding
      }
    }
    return e
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

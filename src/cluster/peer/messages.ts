/**
 * The messages of the replication peer protocol (docs/replication.md, "Peer
 * protocol") and their binary codec.
 *
 * A message is one frame payload (frames: src/wal/record-framing.ts, as the
 * WAL's records). Payload layout, integers little-endian:
 *
 *   u8 messageType | u32 headerBytes | header (JSON, UTF-8, the message minus its Buffer field) | u32 bufferCount | (u32 length | bytes) × bufferCount
 *
 * The Buffer field is `records` (append, fetched) or `data` (install-chunk);
 * every other type has bufferCount 0 (install-chunk exactly 1). The header is
 * JSON because it is small and read once per message; the bulk (WAL record
 * payloads, checkpoint file chunks) travels as raw bytes beside it, so an
 * append costs one copy into the frame and none out of it (decoded Buffers
 * are views of the payload).
 *
 * Decoding trusts nothing: the type byte must be known, the header valid
 * UTF-8 JSON of an object whose `type` matches the byte, every field present
 * with its kind (epochs, sequences, offsets and sizes non-negative safe
 * integers), every length inside the payload and no byte left over. Unknown
 * header fields are ignored (dropped from the decoded message), so a later
 * version may add optional ones. Anything else throws PeerError('protocol').
 */
import { readU32, writeU32 } from '../../base/coding.js'
import { frameRecordInPlace, RECORD_HEADER_BYTES } from '../../wal/record-framing.js'
import { PeerError } from './peer-error.js'

/** Where an epoch begins in a node's log (the REPLICA file's leader-epoch checkpoint). */
export interface EpochStart {
  epoch: number
  startSequence: number
}

/** What the leader sends a follower. */
export type PeerRequest =
  | { type: 'fence'; epoch: number; leaderId: string }
  /** `records`: WAL record payloads, verbatim. Empty: a heartbeat carrying `commitSeq`. */
  | { type: 'append'; epoch: number; prevEpoch: number; prevSeq: number; commitSeq: number; records: Buffer[] }
  /** A new leader reads the records after `since` from a more advanced node. */
  | { type: 'fetch'; epoch: number; since: number; maxBytes: number }
  /** Checkpoint transfer (catch-up of a follower behind the leader's retained WALs). */
  | { type: 'install-begin'; epoch: number; sequence: number; epochStarts: EpochStart[]; files: Array<{ name: string; bytes: number }> }
  | { type: 'install-chunk'; epoch: number; name: string; offset: number; data: Buffer }
  | { type: 'install-end'; epoch: number }

/** What a follower answers, one reply per request, in request order. */
export type PeerReply =
  | { type: 'fenced'; nodeId: string; promisedEpoch: number; lastSeq: number; epochStarts: EpochStart[] }
  | { type: 'appended'; epoch: number; lastSeq: number }
  | { type: 'diverged'; lastSeq: number; epochStarts: EpochStart[] }
  | { type: 'fetched'; records: Buffer[]; lastSeq: number }
  | { type: 'ok' }
  /** A message of an epoch older than the one promised. */
  | { type: 'rejected'; promisedEpoch: number; message: string }
  | { type: 'error'; code: string; message: string }

export type PeerMessage = PeerRequest | PeerReply

/** How a header field is checked: `uint` is a non-negative safe integer (epochs, sequences, offsets, sizes). */
type FieldKind = 'uint' | 'string' | 'epochStarts' | 'files'

interface Schema {
  readonly type: PeerMessage['type']
  readonly typeByte: number
  readonly request: boolean
  /** Header fields, all required. */
  readonly fields: ReadonlyArray<readonly [string, FieldKind]>
  /** The Buffer field carried after the header, if any; `data` is exactly one buffer. */
  readonly buffers: 'records' | 'data' | null
}

/** Type bytes: requests 0x01.., replies 0x41..; never renumber (both ends of a link must agree). */
const SCHEMAS: readonly Schema[] = [
  { type: 'fence', typeByte: 0x01, request: true, fields: [['epoch', 'uint'], ['leaderId', 'string']], buffers: null },
  { type: 'append', typeByte: 0x02, request: true, fields: [['epoch', 'uint'], ['prevEpoch', 'uint'], ['prevSeq', 'uint'], ['commitSeq', 'uint']], buffers: 'records' },
  { type: 'fetch', typeByte: 0x03, request: true, fields: [['epoch', 'uint'], ['since', 'uint'], ['maxBytes', 'uint']], buffers: null },
  { type: 'install-begin', typeByte: 0x04, request: true, fields: [['epoch', 'uint'], ['sequence', 'uint'], ['epochStarts', 'epochStarts'], ['files', 'files']], buffers: null },
  { type: 'install-chunk', typeByte: 0x05, request: true, fields: [['epoch', 'uint'], ['name', 'string'], ['offset', 'uint']], buffers: 'data' },
  { type: 'install-end', typeByte: 0x06, request: true, fields: [['epoch', 'uint']], buffers: null },
  { type: 'fenced', typeByte: 0x41, request: false, fields: [['nodeId', 'string'], ['promisedEpoch', 'uint'], ['lastSeq', 'uint'], ['epochStarts', 'epochStarts']], buffers: null },
  { type: 'appended', typeByte: 0x42, request: false, fields: [['epoch', 'uint'], ['lastSeq', 'uint']], buffers: null },
  { type: 'diverged', typeByte: 0x43, request: false, fields: [['lastSeq', 'uint'], ['epochStarts', 'epochStarts']], buffers: null },
  { type: 'fetched', typeByte: 0x44, request: false, fields: [['lastSeq', 'uint']], buffers: 'records' },
  { type: 'ok', typeByte: 0x45, request: false, fields: [], buffers: null },
  { type: 'rejected', typeByte: 0x46, request: false, fields: [['promisedEpoch', 'uint'], ['message', 'string']], buffers: null },
  { type: 'error', typeByte: 0x47, request: false, fields: [['code', 'string'], ['message', 'string']], buffers: null },
]

const BY_TYPE = new Map<string, Schema>(SCHEMAS.map((s) => [s.type, s]))
const BY_BYTE = new Map<number, Schema>(SCHEMAS.map((s) => [s.typeByte, s]))

/** Rejects invalid UTF-8 instead of replacing it: a damaged header must not parse. */
const utf8 = new TextDecoder('utf-8', { fatal: true })

/** True for the message types the leader sends. */
export function isPeerRequest(m: PeerMessage): m is PeerRequest {
  return BY_TYPE.get(m.type)?.request === true
}

/** True for the message types a follower answers with. */
export function isPeerReply(m: PeerMessage): m is PeerReply {
  return BY_TYPE.get(m.type)?.request === false
}

/**
 * The frame PAYLOAD of `m` (not framed). Built in one allocation: sizes first,
 * then every part written in place. Throws TypeError on a message the decoder
 * would reject (a NaN sequence, a missing field), so a bad message fails at
 * its sender rather than closing the link at its receiver.
 */
export function encodeMessage(m: PeerMessage): Buffer {
  return encodeWithHeadroom(m, 0)
}

/** `m` framed (record header + payload), ready to write to a socket: one allocation, no copy of the payload. */
export function frameMessage(m: PeerMessage): Buffer {
  const buf = encodeWithHeadroom(m, RECORD_HEADER_BYTES)
  frameRecordInPlace(buf)
  return buf
}

/** Encodes `m` at `headroomBytes` into a new Buffer, leaving the bytes before it for a frame header. */
function encodeWithHeadroom(m: PeerMessage, headroomBytes: number): Buffer {
  const schema = BY_TYPE.get((m as { type?: unknown }).type as string)
  if (schema === undefined) throw new TypeError(`unknown peer message type ${JSON.stringify((m as { type?: unknown }).type)}`)
  const fields = m as unknown as Record<string, unknown>
  const header: Record<string, unknown> = { type: schema.type }
  for (const [name, kind] of schema.fields) {
    const problem = fieldProblem(fields[name], kind)
    if (problem !== null) throw new TypeError(`peer message '${schema.type}': field ${name} ${problem}`)
    header[name] = fieldValue(fields[name], kind)
  }
  const buffers = bufferField(schema, fields)
  const json = JSON.stringify(header)
  const headerBytes = Buffer.byteLength(json, 'utf8')
  let size = headroomBytes + 1 + 4 + headerBytes + 4
  for (const b of buffers) size += 4 + b.length
  const buf = Buffer.allocUnsafe(size)
  let at = headroomBytes
  buf[at++] = schema.typeByte
  writeU32(buf, at, headerBytes)
  at += 4
  at += buf.write(json, at, headerBytes, 'utf8')
  writeU32(buf, at, buffers.length)
  at += 4
  for (const b of buffers) {
    writeU32(buf, at, b.length)
    at += 4
    buf.set(b, at)
    at += b.length
  }
  return buf
}

/** The Buffers `m` carries after its header, checked. */
function bufferField(schema: Schema, fields: Record<string, unknown>): readonly Uint8Array[] {
  if (schema.buffers === null) return []
  const value = fields[schema.buffers]
  if (schema.buffers === 'data') {
    if (!(value instanceof Uint8Array)) throw new TypeError(`peer message '${schema.type}': field data must be a Buffer`)
    return [value]
  }
  if (!Array.isArray(value) || !value.every((r) => r instanceof Uint8Array)) throw new TypeError(`peer message '${schema.type}': field records must be an array of Buffers`)
  return value as Uint8Array[]
}

function protocol(what: string): PeerError {
  return new PeerError('protocol', `malformed peer message: ${what}`)
}

/**
 * The message in a frame payload. Buffers in it are views of `payload` (no
 * copy): keep the payload unmodified while they are in use. Throws
 * PeerError('protocol') on anything malformed (see the file's comment).
 */
export function decodeMessage(payload: Buffer): PeerMessage {
  if (payload.length < 1 + 4 + 4) throw protocol(`payload of ${payload.length} bytes is shorter than the smallest message`)
  const schema = BY_BYTE.get(payload[0] as number)
  if (schema === undefined) throw protocol(`unknown message type byte 0x${(payload[0] as number).toString(16)}`)
  const headerBytes = readU32(payload, 1)
  const headerEnd = 5 + headerBytes
  if (headerEnd + 4 > payload.length) throw protocol(`header of ${headerBytes} bytes runs past the payload (${payload.length} bytes)`)
  let header: unknown
  try {
    header = JSON.parse(utf8.decode(payload.subarray(5, headerEnd)))
  } catch (err) {
    throw protocol(`header is not UTF-8 JSON (${err instanceof Error ? err.message : String(err)})`)
  }
  if (typeof header !== 'object' || header === null || Array.isArray(header)) throw protocol('header is not a JSON object')
  const fields = header as Record<string, unknown>
  if (fields.type !== schema.type) throw protocol(`header type ${JSON.stringify(fields.type)} does not match type byte of '${schema.type}'`)
  const message: Record<string, unknown> = { type: schema.type }
  for (const [name, kind] of schema.fields) {
    const problem = fieldProblem(fields[name], kind)
    if (problem !== null) throw protocol(`'${schema.type}' field ${name} ${problem}`)
    message[name] = fieldValue(fields[name], kind)
  }

  let at = headerEnd
  const bufferCount = readU32(payload, at)
  at += 4
  if (schema.buffers === null && bufferCount !== 0) throw protocol(`'${schema.type}' carries ${bufferCount} buffers, expected none`)
  if (schema.buffers === 'data' && bufferCount !== 1) throw protocol(`'${schema.type}' carries ${bufferCount} buffers, expected 1`)
  // Each buffer takes at least its 4-byte length: a count beyond that is garbage (and must not size an array).
  if (bufferCount > (payload.length - at) / 4) throw protocol(`buffer count ${bufferCount} exceeds the payload`)
  const buffers: Buffer[] = new Array<Buffer>(bufferCount)
  for (let i = 0; i < bufferCount; i++) {
    if (at + 4 > payload.length) throw protocol(`buffer ${i} length runs past the payload`)
    const length = readU32(payload, at)
    at += 4
    if (length > payload.length - at) throw protocol(`buffer ${i} of ${length} bytes runs past the payload`)
    buffers[i] = payload.subarray(at, at + length)
    at += length
  }
  if (at !== payload.length) throw protocol(`${payload.length - at} trailing bytes after the last buffer`)
  if (schema.buffers === 'records') message.records = buffers
  else if (schema.buffers === 'data') message.data = buffers[0]
  return message as unknown as PeerMessage
}

/** Why `value` is not a valid field of `kind`, or null when it is. */
function fieldProblem(value: unknown, kind: FieldKind): string | null {
  switch (kind) {
    case 'uint':
      return isUint(value) ? null : `must be a non-negative safe integer, got ${describe(value)}`
    case 'string':
      return typeof value === 'string' ? null : `must be a string, got ${describe(value)}`
    case 'epochStarts': {
      if (!Array.isArray(value)) return `must be an array, got ${describe(value)}`
      for (const e of value as unknown[]) {
        if (!isRecord(e) || !isUint(e.epoch) || !isUint(e.startSequence)) return `must hold { epoch, startSequence } of non-negative safe integers, got ${describe(e)}`
      }
      return null
    }
    case 'files': {
      if (!Array.isArray(value)) return `must be an array, got ${describe(value)}`
      for (const f of value as unknown[]) {
        if (!isRecord(f) || typeof f.name !== 'string' || !isUint(f.bytes)) return `must hold { name: string, bytes: non-negative safe integer }, got ${describe(f)}`
      }
      return null
    }
  }
}

/** A valid field's value with only its known parts: nested objects lose any other keys, like the header does. */
function fieldValue(value: unknown, kind: FieldKind): unknown {
  if (kind === 'epochStarts') return (value as EpochStart[]).map((e) => ({ epoch: e.epoch, startSequence: e.startSequence }))
  if (kind === 'files') return (value as Array<{ name: string; bytes: number }>).map((f) => ({ name: f.name, bytes: f.bytes }))
  return value
}

function isUint(v: unknown): v is number {
  return typeof v === 'number' && Number.isSafeInteger(v) && v >= 0
}

function isRecord(v: unknown): v is Record<string, unknown> {
  return typeof v === 'object' && v !== null && !Array.isArray(v)
}

function describe(v: unknown): string {
  if (v === undefined) return 'nothing'
  const s = JSON.stringify(v)
  return s.length > 60 ? `${s.slice(0, 60)}…` : s
}

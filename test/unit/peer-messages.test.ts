/**
 * The peer protocol's codec (src/cluster/peer/messages.ts) and frame reader
 * (src/cluster/peer/frame-reader.ts): every message type round-trips, every
 * malformed payload or frame fails with PeerError 'protocol'.
 */
import { describe, expect, it } from 'vitest'
import { writeU32 } from '../../src/base/coding.js'
import { frameRecord, RECORD_HEADER_BYTES } from '../../src/wal/record-framing.js'
import { FrameReader } from '../../src/cluster/peer/frame-reader.js'
import { decodeMessage, encodeMessage, frameMessage, isPeerReply, isPeerRequest, type PeerMessage } from '../../src/cluster/peer/messages.js'
import { PeerError } from '../../src/cluster/peer/peer-error.js'
import { ready } from './helpers.js'

await ready() // frames are built while the suite is collected

const bytes = (s: string): Buffer => Buffer.from(s, 'utf8')

/** Runs `fn` and returns the PeerError code it threw (fails when it throws nothing or something else). */
function protocolCode(fn: () => unknown): string {
  try {
    fn()
  } catch (err) {
    expect(err).toBeInstanceOf(PeerError)
    return (err as PeerError).code
  }
  throw new Error('expected a PeerError, nothing was thrown')
}

/** A payload assembled by hand, to produce layouts the encoder never would. */
function rawPayload(typeByte: number, headerJson: string, buffers: Buffer[] = [], trailing = Buffer.alloc(0)): Buffer {
  const header = bytes(headerJson)
  const parts: Buffer[] = [Buffer.from([typeByte]), u32(header.length), header, u32(buffers.length)]
  for (const b of buffers) parts.push(u32(b.length), b)
  parts.push(trailing)
  return Buffer.concat(parts)
}

/** `m` with its Buffers as base64 strings: toEqual on a 4 MiB Buffer compares element by element and takes seconds. */
function comparable(v: unknown): unknown {
  if (Buffer.isBuffer(v)) return `bytes:${v.toString('base64')}`
  if (Array.isArray(v)) return v.map(comparable)
  if (typeof v === 'object' && v !== null) return Object.fromEntries(Object.entries(v).map(([k, x]) => [k, comparable(x)]))
  return v
}

function u32(n: number): Buffer {
  const b = Buffer.alloc(4)
  writeU32(b, 0, n)
  return b
}

const big = Buffer.alloc(4 * 1024 * 1024)
for (let i = 0; i < big.length; i++) big[i] = (i * 31 + 7) & 0xff

const samples: PeerMessage[] = [
  { type: 'fence', epoch: 7, leaderId: 'node-a' },
  { type: 'fence', epoch: 0, leaderId: 'nœud-é-🚀-节点' },
  { type: 'append', epoch: 3, prevEpoch: 2, prevSeq: 100, commitSeq: 99, records: [] },
  { type: 'append', epoch: 3, prevEpoch: 3, prevSeq: 101, commitSeq: 100, records: [bytes('one'), Buffer.alloc(0), bytes('three')] },
  { type: 'append', epoch: 3, prevEpoch: 3, prevSeq: 0, commitSeq: 0, records: Array.from({ length: 5000 }, (_, i) => bytes(`record-${i}`)) },
  { type: 'append', epoch: 2 ** 40, prevEpoch: 1, prevSeq: Number.MAX_SAFE_INTEGER, commitSeq: 5, records: [big] },
  { type: 'fetch', epoch: 4, since: 12345, maxBytes: 1 << 20 },
  {
    type: 'install-begin',
    epoch: 5,
    sequence: 999,
    epochStarts: [{ epoch: 1, startSequence: 1 }, { epoch: 5, startSequence: 900 }],
    files: [{ name: 'MANIFEST-000003', bytes: 512 }, { name: 'données-日本.sst', bytes: 0 }],
  },
  { type: 'install-begin', epoch: 5, sequence: 0, epochStarts: [], files: [] },
  { type: 'install-chunk', epoch: 5, name: '000012.sst', offset: 65536, data: bytes('chunk bytes') },
  { type: 'install-chunk', epoch: 5, name: 'ß.sst', offset: 0, data: Buffer.alloc(0) },
  { type: 'install-end', epoch: 5 },
  { type: 'fenced', nodeId: 'node-b', promisedEpoch: 7, lastSeq: 4242, epochStarts: [{ epoch: 7, startSequence: 4000 }] },
  { type: 'appended', epoch: 3, lastSeq: 104 },
  { type: 'diverged', lastSeq: 90, epochStarts: [{ epoch: 2, startSequence: 50 }] },
  { type: 'fetched', records: [bytes('r1'), bytes('r2')], lastSeq: 200 },
  { type: 'fetched', records: [], lastSeq: 0 },
  { type: 'ok' },
  { type: 'rejected', promisedEpoch: 9, message: 'epoch 7 is older than the promised 9' },
  { type: 'error', code: 'STRATA_IO_ERROR', message: 'disk full — ✗' },
]

describe('peer message codec', () => {
  it('round-trips every message type', () => {
    const seen = new Set<string>()
    for (const m of samples) {
      const decoded = decodeMessage(encodeMessage(m))
      expect(comparable(decoded)).toEqual(comparable(m))
      seen.add(m.type)
    }
    expect([...seen].sort()).toEqual(
      ['append', 'appended', 'diverged', 'error', 'fence', 'fenced', 'fetch', 'fetched', 'install-begin', 'install-chunk', 'install-end', 'ok', 'rejected'].sort(),
    )
  })

  it('lays out the payload as documented and decodes buffers as views of it', () => {
    const m: PeerMessage = { type: 'append', epoch: 1, prevEpoch: 0, prevSeq: 0, commitSeq: 0, records: [bytes('ab'), bytes('cde')] }
    const payload = encodeMessage(m)
    const json = '{"type":"append","epoch":1,"prevEpoch":0,"prevSeq":0,"commitSeq":0}'
    expect(payload).toEqual(rawPayload(0x02, json, [bytes('ab'), bytes('cde')]))
    const decoded = decodeMessage(payload) as Extract<PeerMessage, { type: 'append' }>
    expect(decoded.records[1]?.buffer).toBe(payload.buffer)
    expect(decoded.records[1]?.toString()).toBe('cde')
  })

  it('keeps a 4 MiB record intact and many records in order', () => {
    const decoded = decodeMessage(encodeMessage(samples[5] as PeerMessage)) as Extract<PeerMessage, { type: 'append' }>
    expect(decoded.records).toHaveLength(1)
    expect(decoded.records[0]?.length).toBe(4 * 1024 * 1024)
    expect(decoded.records[0]?.equals(big)).toBe(true)
    const many = decodeMessage(encodeMessage(samples[4] as PeerMessage)) as Extract<PeerMessage, { type: 'append' }>
    expect(many.records.map((r) => r.toString())).toEqual(Array.from({ length: 5000 }, (_, i) => `record-${i}`))
  })

  it('drops unknown header fields and fields of nested objects', () => {
    const payload = rawPayload(0x01, '{"type":"fence","epoch":2,"leaderId":"x","future":true}')
    expect(decodeMessage(payload)).toEqual({ type: 'fence', epoch: 2, leaderId: 'x' })
    const extra = { type: 'diverged', lastSeq: 1, epochStarts: [{ epoch: 1, startSequence: 1, junk: 1 }] } as unknown as PeerMessage
    expect(decodeMessage(encodeMessage(extra))).toEqual({ type: 'diverged', lastSeq: 1, epochStarts: [{ epoch: 1, startSequence: 1 }] })
  })

  it('tells requests from replies', () => {
    expect(samples.filter(isPeerRequest).map((m) => m.type)).toEqual(['fence', 'fence', 'append', 'append', 'append', 'append', 'fetch', 'install-begin', 'install-begin', 'install-chunk', 'install-chunk', 'install-end'])
    expect(samples.filter(isPeerReply)).toHaveLength(samples.length - 12)
  })

  it('refuses to encode an invalid message (TypeError, before it reaches a peer)', () => {
    expect(() => encodeMessage({ type: 'fetch', epoch: 1, since: Number.NaN, maxBytes: 1 })).toThrow(TypeError)
    expect(() => encodeMessage({ type: 'appended', epoch: -1, lastSeq: 0 })).toThrow(TypeError)
    expect(() => encodeMessage({ type: 'nope' } as unknown as PeerMessage)).toThrow(TypeError)
    expect(() => encodeMessage({ type: 'append', epoch: 1, prevEpoch: 0, prevSeq: 0, commitSeq: 0, records: ['x'] } as unknown as PeerMessage)).toThrow(TypeError)
  })

  describe('malformed payloads fail with protocol', () => {
    const fence = '{"type":"fence","epoch":1,"leaderId":"a"}'
    const cases: Array<[string, () => Buffer]> = [
      ['an empty payload', () => Buffer.alloc(0)],
      ['an unknown type byte', () => rawPayload(0x7f, fence)],
      ['type byte 0', () => rawPayload(0x00, fence)],
      ['a header type that does not match the byte', () => rawPayload(0x02, fence)],
      ['a header without type', () => rawPayload(0x01, '{"epoch":1,"leaderId":"a"}')],
      ['a header that is not JSON', () => rawPayload(0x01, '{"type":"fence",')],
      ['a header that is a JSON array', () => rawPayload(0x01, '["fence"]')],
      ['a header that is JSON null', () => rawPayload(0x01, 'null')],
      ['a header of invalid UTF-8', () => Buffer.concat([Buffer.from([0x01]), u32(3), Buffer.from([0x22, 0xff, 0x22]), u32(0)])],
      ['a header length past the end', () => Buffer.concat([Buffer.from([0x01]), u32(1000), bytes(fence), u32(0)])],
      ['a header length of 0xffffffff', () => Buffer.concat([Buffer.from([0x01]), u32(0xffff_ffff), bytes(fence), u32(0)])],
      ['no buffer count', () => rawPayload(0x01, fence).subarray(0, 1 + 4 + fence.length)],
      ['a truncated buffer', () => rawPayload(0x02, '{"type":"append","epoch":1,"prevEpoch":0,"prevSeq":0,"commitSeq":0}', [bytes('abcdef')]).subarray(0, -2)],
      ['a buffer length past the end', () => Buffer.concat([rawPayload(0x02, '{"type":"append","epoch":1,"prevEpoch":0,"prevSeq":0,"commitSeq":0}').subarray(0, -4), u32(1), u32(50), bytes('abc')])],
      ['a huge buffer count', () => Buffer.concat([rawPayload(0x02, '{"type":"append","epoch":1,"prevEpoch":0,"prevSeq":0,"commitSeq":0}').subarray(0, -4), u32(0xffff_ffff)])],
      ['a trailing byte', () => rawPayload(0x01, fence, [], Buffer.from([0]))],
      ['a trailing byte after buffers', () => rawPayload(0x44, '{"type":"fetched","lastSeq":1}', [bytes('r')], Buffer.from([9]))],
      ['a buffer on a type without one', () => rawPayload(0x01, fence, [bytes('x')])],
      ['install-chunk without its data', () => rawPayload(0x05, '{"type":"install-chunk","epoch":1,"name":"f","offset":0}')],
      ['install-chunk with two buffers', () => rawPayload(0x05, '{"type":"install-chunk","epoch":1,"name":"f","offset":0}', [bytes('a'), bytes('b')])],
      ['a negative sequence', () => rawPayload(0x42, '{"type":"appended","epoch":1,"lastSeq":-1}')],
      ['a non-integer sequence', () => rawPayload(0x42, '{"type":"appended","epoch":1,"lastSeq":1.5}')],
      ['a sequence beyond 2^53', () => rawPayload(0x42, '{"type":"appended","epoch":1,"lastSeq":9007199254740993}')],
      ['a sequence as a string', () => rawPayload(0x42, '{"type":"appended","epoch":1,"lastSeq":"5"}')],
      ['a missing field', () => rawPayload(0x42, '{"type":"appended","epoch":1}')],
      ['a negative offset', () => rawPayload(0x05, '{"type":"install-chunk","epoch":1,"name":"f","offset":-4}', [bytes('a')])],
      ['a non-string leaderId', () => rawPayload(0x01, '{"type":"fence","epoch":1,"leaderId":5}')],
      ['a bad epoch start', () => rawPayload(0x43, '{"type":"diverged","lastSeq":1,"epochStarts":[{"epoch":1,"startSequence":-2}]}')],
      ['epochStarts not an array', () => rawPayload(0x43, '{"type":"diverged","lastSeq":1,"epochStarts":{}}')],
      ['a file without a name', () => rawPayload(0x04, '{"type":"install-begin","epoch":1,"sequence":1,"epochStarts":[],"files":[{"bytes":1}]}')],
    ]
    for (const [name, make] of cases) {
      it(name, () => {
        expect(protocolCode(() => decodeMessage(make()))).toBe('protocol')
      })
    }

    it('every truncation of a valid payload', () => {
      const payload = encodeMessage({ type: 'fetched', records: [bytes('abc'), bytes('de')], lastSeq: 3 })
      for (let n = 0; n < payload.length; n++) {
        expect(protocolCode(() => decodeMessage(payload.subarray(0, n))), `cut at ${n}`).toBe('protocol')
      }
    })
  })
})

describe('FrameReader', () => {
  const payloads = [bytes('first'), Buffer.alloc(0), bytes('x'.repeat(1000)), bytes('last one')]
  const stream = Buffer.concat(payloads.map((p) => frameRecord(p)))

  it('reassembles frames delivered one byte at a time', () => {
    const reader = new FrameReader(1 << 20)
    const out: Buffer[] = []
    for (let i = 0; i < stream.length; i++) out.push(...reader.push(stream.subarray(i, i + 1)))
    expect(out.map((p) => p.toString())).toEqual(payloads.map((p) => p.toString()))
    expect(reader.pendingBytes).toBe(0)
  })

  it('returns many frames from one chunk, and keeps a partial one for later', () => {
    const reader = new FrameReader(1 << 20)
    const cut = stream.length - 5
    const first = reader.push(stream.subarray(0, cut))
    expect(first.map((p) => p.toString())).toEqual(payloads.slice(0, 3).map((p) => p.toString()))
    expect(reader.pendingBytes).toBe(RECORD_HEADER_BYTES + payloads[3]!.length - 5)
    expect(reader.push(stream.subarray(cut)).map((p) => p.toString())).toEqual(['last one'])
  })

  it('reassembles frames at every split point', () => {
    for (let cut = 0; cut <= stream.length; cut++) {
      const reader = new FrameReader(1 << 20)
      const out = [...reader.push(stream.subarray(0, cut)), ...reader.push(stream.subarray(cut))]
      expect(out.length, `cut at ${cut}`).toBe(payloads.length)
    }
  })

  it('reads a big frame arriving in many chunks', () => {
    const frame = frameRecord(big)
    const reader = new FrameReader(8 * 1024 * 1024)
    const out: Buffer[] = []
    for (let at = 0; at < frame.length; at += 1000) out.push(...reader.push(frame.subarray(at, at + 1000)))
    expect(out).toHaveLength(1)
    expect(out[0]?.equals(big)).toBe(true)
  })

  it('carries messages framed by frameMessage', () => {
    const reader = new FrameReader(8 * 1024 * 1024)
    const messages = samples
    const out = reader.push(Buffer.concat(messages.map((m) => frameMessage(m)))).map((p) => decodeMessage(p))
    expect(out.map(comparable)).toEqual(messages.map(comparable))
  })

  it('fails on a flipped byte in the header, and stays failed', () => {
    for (let i = 0; i < RECORD_HEADER_BYTES; i++) {
      const damaged = Buffer.from(stream)
      damaged[i] = (damaged[i] as number) ^ 0x01
      const reader = new FrameReader(1 << 20)
      expect(protocolCode(() => reader.push(damaged)), `byte ${i}`).toBe('protocol')
      expect(protocolCode(() => reader.push(stream))).toBe('protocol')
    }
  })

  it('fails on a flipped byte in a payload, also when it arrives byte by byte', () => {
    const damaged = Buffer.from(stream)
    const at = RECORD_HEADER_BYTES + 2 // inside 'first'
    damaged[at] = (damaged[at] as number) ^ 0x40
    expect(protocolCode(() => new FrameReader(1 << 20).push(damaged))).toBe('protocol')
    const reader = new FrameReader(1 << 20)
    let err: unknown
    let delivered = 0
    try {
      for (let i = 0; i < damaged.length; i++) delivered += reader.push(damaged.subarray(i, i + 1)).length
    } catch (e) {
      err = e
    }
    expect(delivered).toBe(0)
    expect((err as PeerError).code).toBe('protocol')
  })

  it('fails on a length over maxFrameBytes as soon as the header is in', () => {
    const reader = new FrameReader(100)
    const frame = frameRecord(Buffer.alloc(101))
    expect(protocolCode(() => reader.push(frame.subarray(0, RECORD_HEADER_BYTES)))).toBe('protocol')
    expect(new FrameReader(101).push(frame)).toHaveLength(1)
  })

  it('validates maxFrameBytes', () => {
    expect(() => new FrameReader(0)).toThrow(RangeError)
    expect(() => new FrameReader(1.5)).toThrow(RangeError)
  })
})

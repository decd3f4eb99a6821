/**
 * RESP replies as values, and their encoding for RESP2 and RESP3 (chosen per
 * connection with HELLO). Command handlers return these values; the
 * connection encodes them in order into an `OutputBuffer`.
 */

/** A status reply: `+OK`. */
export class SimpleString {
  constructor(readonly value: string) {}
}

/** An error reply; `message` starts with the error kind (`ERR …`, `WRONGTYPE …`, `BUSY …`). */
export class ErrorReply {
  constructor(readonly message: string) {}
}

/** A map: RESP3 `%`, a flat array of alternating keys and values in RESP2. */
export class MapReply {
  constructor(readonly entries: ReadonlyArray<readonly [Reply, Reply]>) {}
}

/** The null of an aborted EXEC: RESP2 `*-1`, RESP3 `_`. */
export class NullArray {
  private constructor() {}
  static readonly instance = new NullArray()
}

/**
 * A reply. `Buffer` and `string` are bulk strings (strings UTF-8 encoded),
 * `number`/`bigint` integers, `null` the null bulk string, arrays arrays.
 */
export type Reply = SimpleString | ErrorReply | MapReply | NullArray | Buffer | string | number | bigint | null | readonly Reply[]

export const OK = new SimpleString('OK')
export const QUEUED = new SimpleString('QUEUED')
export const PONG = new SimpleString('PONG')

/** Shorthand for an `ERR …` reply. */
export function err(message: string): ErrorReply {
  return new ErrorReply(`ERR ${message}`)
}

/** RESP protocol version of a connection. */
export type Protocol = 2 | 3

const CRLF = '\r\n'
const SMALL_BULK_BYTES = 8 * 1024

/**
 * Bytes waiting to go to a socket. Small replies are copied into one buffer,
 * large values pass through as their own chunks; `take()` hands everything
 * over (buffers are never reused after being handed over).
 */
export class OutputBuffer {
  private buf: Buffer | undefined
  private len = 0
  private chunks: Buffer[] = []
  private chunkBytes = 0

  /** Bytes buffered. */
  get size(): number {
    return this.chunkBytes + this.len
  }

  /** Appends `reply` encoded for `protocol`. */
  reply(reply: Reply, protocol: Protocol): void {
    if (reply === null) {
      this.ascii(protocol === 3 ? '_\r\n' : '$-1\r\n')
    } else if (Buffer.isBuffer(reply)) {
      this.bulk(reply)
    } else if (reply === OK) {
      this.ascii('+OK\r\n')
    } else if (typeof reply === 'string') {
      this.text(`$${Buffer.byteLength(reply)}\r\n${reply}\r\n`)
    } else if (typeof reply === 'number' && Number.isSafeInteger(reply)) {
      this.integer(reply)
    } else if (typeof reply === 'number' || typeof reply === 'bigint') {
      this.text(`:${reply}\r\n`)
    } else if (reply instanceof SimpleString) {
      this.text(`+${oneLine(reply.value)}\r\n`)
    } else if (reply instanceof ErrorReply) {
      this.text(`-${oneLine(reply.message)}\r\n`)
    } else if (reply instanceof MapReply) {
      this.text(protocol === 3 ? `%${reply.entries.length}\r\n` : `*${reply.entries.length * 2}\r\n`)
      for (const [k, v] of reply.entries) {
        this.reply(k, protocol)
        this.reply(v, protocol)
      }
    } else if (reply instanceof NullArray) {
      this.text(protocol === 3 ? '_\r\n' : '*-1\r\n')
    } else {
      this.text(`*${reply.length}\r\n`)
      for (const r of reply) this.reply(r, protocol)
    }
  }

  /** `$<length>\r\n<bytes>\r\n`, written byte by byte for small values (the GET reply). */
  private bulk(b: Buffer): void {
    const n = b.length
    if (n >= SMALL_BULK_BYTES) {
      this.ascii(`$${n}\r\n`)
      this.bytes(b)
      this.ascii(CRLF)
      return
    }
    this.ensure(n + 16)
    const buf = this.buf!
    let p = this.len
    buf[p++] = 0x24 // '$'
    p = writeDigits(buf, p, n)
    buf[p++] = 13
    buf[p++] = 10
    if (n <= 32) {
      for (let i = 0; i < n; i++) buf[p + i] = b[i]
    } else {
      buf.set(b, p)
    }
    p += n
    buf[p++] = 13
    buf[p++] = 10
    this.len = p
  }

  /** `:<n>\r\n` for a safe integer. */
  private integer(n: number): void {
    this.ensure(24)
    const buf = this.buf!
    let p = this.len
    buf[p++] = 0x3a // ':'
    if (n < 0) {
      buf[p++] = 0x2d
      n = -n
    }
    p = writeDigits(buf, p, n)
    buf[p++] = 13
    buf[p++] = 10
    this.len = p
  }

  /** A short ASCII string, byte by byte. */
  private ascii(s: string): void {
    this.ensure(s.length)
    const buf = this.buf!
    let p = this.len
    for (let i = 0; i < s.length; i++) buf[p++] = s.charCodeAt(i)
    this.len = p
  }

  /** Raw text (UTF-8). */
  text(s: string): void {
    const max = s.length * 3
    this.ensure(max)
    this.len += this.buf!.write(s, this.len, 'utf8')
  }

  /** Raw bytes. */
  bytes(b: Buffer): void {
    if (b.length >= SMALL_BULK_BYTES) {
      this.cut()
      this.chunks.push(b)
      this.chunkBytes += b.length
      return
    }
    this.ensure(b.length)
    b.copy(this.buf!, this.len)
    this.len += b.length
  }

  /** Everything buffered, in order; the buffer is empty afterwards. */
  take(): Buffer[] {
    this.cut()
    const out = this.chunks
    this.chunks = []
    this.chunkBytes = 0
    return out
  }

  private cut(): void {
    if (this.buf !== undefined && this.len > 0) {
      const piece = this.buf.subarray(0, this.len)
      this.chunks.push(piece)
      this.chunkBytes += piece.length
      // The rest of the buffer may still be used: the piece handed over ends before it.
      this.buf = this.buf.length - this.len >= 1024 ? this.buf.subarray(this.len) : undefined
      this.len = 0
    }
  }

  private ensure(extra: number): void {
    if (this.buf !== undefined && this.buf.length - this.len >= extra) return
    this.cut()
    this.buf = Buffer.allocUnsafe(Math.max(16 * 1024, extra))
    this.len = 0
  }
}

/** Writes the decimal digits of the non-negative safe integer `n` at `p`; returns the position after them. */
function writeDigits(buf: Buffer, p: number, n: number): number {
  if (n < 10) {
    buf[p] = 0x30 + n
    return p + 1
  }
  let digits = 1
  for (let x = n; x >= 10; x = Math.floor(x / 10)) digits++
  let q = p + digits - 1
  for (let x = n; q >= p; x = Math.floor(x / 10)) buf[q--] = 0x30 + (x % 10)
  return p + digits
}

/** Status and error lines must not contain CR or LF. */
function oneLine(s: string): string {
  return /[\r\n]/.test(s) ? s.replace(/[\r\n]+/g, ' ') : s
}

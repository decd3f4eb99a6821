/**
 * An incremental, bounded parser of RESP requests: multibulk arrays of bulk
 * strings (`*2\r\n$3\r\nGET\r\n$1\r\nk\r\n`, what every client library
 * sends) and inline commands (`GET k\r\n`, what telnet sends).
 *
 * Every size is checked against a limit *before* anything is buffered for
 * it, so a hostile peer cannot make the server allocate more than the
 * limits allow. Malformed input throws `RespProtocolError`, whose message is
 * Redis's; the connection answers it and closes.
 *
 * Input is appended with `push()`; complete commands are taken one at a time
 * with `next()`, so the caller can stop taking commands (backpressure) while
 * input stays buffered. Arguments are views of the input (no copies); large
 * bulk strings are received straight into their own buffer.
 */

/** Limits of the parser; see `ServerLimits` for their meaning and defaults. */
export interface RespParserLimits {
  maxBulkBytes: number
  maxArgs: number
  maxInlineBytes: number
  maxCommandBytes: number
  /** Limits of a client that has not authenticated yet: errors say so, as Redis's (CVE-2021-32675). */
  preAuth?: boolean
}

/** Malformed or oversized input; the message is the error reply (without `-ERR`). */
export class RespProtocolError extends Error {
  override readonly name = 'RespProtocolError'
}

/** Longest `*<n>` or `$<n>` header line accepted (as Redis). */
const MAX_HEADER_LINE = 64 * 1024
/** Bulk strings at least this large that have not fully arrived get their own buffer. */
const DIRECT_BULK_BYTES = 64 * 1024

const CR = 13
const LF = 10
const EMPTY = Buffer.alloc(0)

/** Parses a stream of RESP requests. See the file comment. */
export class RespParser {
  private buf: Buffer = EMPTY
  private start = 0
  private end = 0
  /** Arguments of the multibulk command being parsed, or undefined between commands. */
  private args: Buffer[] | undefined
  private argsExpected = 0
  private commandBytes = 0
  /** Length of the bulk string whose `$` header has been read, or -1. */
  private bulkLength = -1
  /**
   * A large bulk string being received directly: `direct` grows (doubling)
   * as bytes actually arrive, up to `directLength` (its length + CRLF), so a
   * peer that only announces a large value gets nothing allocated for it.
   */
  private direct: Buffer | undefined
  private directFilled = 0
  private directLength = 0
  private failed: RespProtocolError | undefined

  constructor(private limits: RespParserLimits) {}

  /**
   * Limits for the commands parsed from now on (the connection switches between its
   * pre-authentication and normal limits on AUTH and RESET, between commands).
   */
  setLimits(limits: RespParserLimits): void {
    this.limits = limits
  }

  /** Bytes received but not yet parsed into commands (bounded by the limits). */
  get bufferedBytes(): number {
    return this.end - this.start + this.directFilled
  }

  /** Bytes of buffers the parser holds (what a peer can make it allocate). */
  get allocatedBytes(): number {
    return (this.ownsBuffer ? this.buf.length : 0) + (this.direct?.length ?? 0)
  }

  /** Appends received bytes. The parser keeps views of `chunk`; do not reuse it. */
  push(chunk: Buffer): void {
    if (this.failed !== undefined || chunk.length === 0) return
    if (this.direct !== undefined) {
      const need = this.directLength - this.directFilled
      const n = Math.min(need, chunk.length)
      if (this.directFilled + n > this.direct.length) {
        const grown = Buffer.allocUnsafe(Math.min(this.directLength, Math.max(2 * this.direct.length, this.directFilled + n)))
        this.direct.copy(grown, 0, 0, this.directFilled)
        this.direct = grown
      }
      chunk.copy(this.direct, this.directFilled, 0, n)
      this.directFilled += n
      if (n === chunk.length) return
      chunk = chunk.subarray(n)
    }
    if (this.start === this.end) {
      this.buf = chunk
      this.start = 0
      this.end = chunk.length
      return
    }
    const pending = this.end - this.start
    if (this.buf.length - this.end >= chunk.length && this.ownsBuffer) {
      chunk.copy(this.buf, this.end)
      this.end += chunk.length
      return
    }
    // Grow geometrically so that input arriving in tiny pieces costs linear time.
    const grown = Buffer.allocUnsafe(Math.max(4096, 2 * (pending + chunk.length)))
    this.buf.copy(grown, 0, this.start, this.end)
    chunk.copy(grown, pending)
    this.buf = grown
    this.ownsBuffer = true
    this.start = 0
    this.end = pending + chunk.length
  }

  /** Whether `buf` was allocated here (its spare room may be written); socket chunks are not. */
  private ownsBuffer = false

  /**
   * The next complete command (its arguments, at least one), or undefined
   * when more input is needed. Throws `RespProtocolError` on malformed input,
   * and again on every later call.
   */
  next(): Buffer[] | undefined {
    if (this.failed !== undefined) throw this.failed
    try {
      return this.parse()
    } catch (err) {
      if (err instanceof RespProtocolError) {
        this.failed = err
        this.buf = EMPTY
        this.start = this.end = 0
        this.args = undefined
        this.direct = undefined
      }
      throw err
    }
  }

  private parse(): Buffer[] | undefined {
    for (;;) {
      if (this.args === undefined) {
        if (this.start >= this.end) return undefined
        if (this.buf[this.start] !== 0x2a /* '*' */) {
          const inline = this.parseInline()
          if (inline === undefined) return undefined
          if (inline.length === 0) continue // empty line: ignored, as Redis does
          return inline
        }
        const n = this.readHeaderNumber('multibulk count')
        if (n === undefined) return undefined
        if (n > this.limits.maxArgs || n > 0x7fffffff) throw new RespProtocolError(this.multibulkLengthError())
        if (n <= 0) continue // *0 and *-1 are ignored, as Redis does
        this.args = []
        this.argsExpected = n
        this.commandBytes = 0
      }
      while (this.args.length < this.argsExpected) {
        const arg = this.parseBulk()
        if (arg === undefined) return undefined
        this.args.push(arg)
      }
      const done = this.args
      this.args = undefined
      if (this.start === this.end) {
        // Everything consumed: drop the reference so the input can be collected.
        this.buf = EMPTY
        this.start = this.end = 0
        this.ownsBuffer = false
      }
      return done
    }
  }

  private parseBulk(): Buffer | undefined {
    if (this.bulkLength < 0) {
      if (this.start >= this.end) return undefined
      const c = this.buf[this.start]
      if (c !== 0x24 /* '$' */) {
        throw new RespProtocolError(`Protocol error: expected '$', got '${printable(c)}'`)
      }
      const n = this.readHeaderNumber('bulk length')
      if (n === undefined) return undefined
      if (n < 0 || n > this.limits.maxBulkBytes) throw new RespProtocolError(n > 0 && this.limits.preAuth === true ? 'Protocol error: unauthenticated bulk length' : 'Protocol error: invalid bulk length')
      this.commandBytes += n
      if (this.commandBytes > this.limits.maxCommandBytes) {
        throw new RespProtocolError(`Protocol error: command larger than ${this.limits.maxCommandBytes} bytes`)
      }
      this.bulkLength = n
    }
    const n = this.bulkLength
    if (this.direct !== undefined) {
      if (this.directFilled < this.directLength) return undefined
      const full = this.direct
      this.direct = undefined
      this.directFilled = 0
      this.bulkLength = -1
      if (full[n] !== CR || full[n + 1] !== LF) throw new RespProtocolError('Protocol error: bulk string not terminated by CRLF')
      return full.subarray(0, n)
    }
    const available = this.end - this.start
    if (available < n + 2) {
      if (n + 2 >= DIRECT_BULK_BYTES) {
        // Receive the rest straight into a buffer of the final size: no repeated copying.
        this.directLength = n + 2
        this.direct = Buffer.allocUnsafe(Math.min(n + 2, Math.max(DIRECT_BULK_BYTES, 2 * available)))
        this.buf.copy(this.direct, 0, this.start, this.end)
        this.directFilled = available
        this.buf = EMPTY
        this.start = this.end = 0
        this.ownsBuffer = false
      }
      return undefined
    }
    const at = this.start
    if (this.buf[at + n] !== CR || this.buf[at + n + 1] !== LF) {
      throw new RespProtocolError('Protocol error: bulk string not terminated by CRLF')
    }
    this.start = at + n + 2
    this.bulkLength = -1
    return this.buf.subarray(at, at + n)
  }

  /**
   * Reads `*<n>\r\n` or `$<n>\r\n` (the type byte is at `start`); undefined when incomplete.
   * The number must match /^-?\d{1,18}$/ (as Redis: no '+', no spaces). Parsed byte by
   * byte: no string, no regular expression (this runs for every argument).
   */
  private readHeaderNumber(what: string): number | undefined {
    const buf = this.buf
    const end = this.end
    let i = this.start + 1
    let negative = false
    if (i < end && buf[i] === 0x2d /* '-' */) {
      negative = true
      i++
    }
    const digitsFrom = i
    let n = 0
    let c = 0
    while (i < end) {
      c = buf[i]
      if (c < 0x30 || c > 0x39) break
      n = n * 10 + (c - 0x30)
      i++
    }
    const digits = i - digitsFrom
    if (i >= end || c !== CR) {
      // Not a clean number up to here: find the end of the line (or wait for it) to tell which error.
      const eol = i < end ? buf.indexOf(CR, i) : -1
      if (eol < 0 || eol >= end) {
        if (end - this.start > MAX_HEADER_LINE) throw new RespProtocolError(`Protocol error: too big ${what} string`)
        return undefined
      }
      if (eol + 1 >= end) return undefined // CR seen, LF not yet
      if (buf[eol + 1] !== LF) throw new RespProtocolError(`Protocol error: invalid ${what}`)
      throw new RespProtocolError(what === 'bulk length' ? 'Protocol error: invalid bulk length' : 'Protocol error: invalid multibulk length')
    }
    // buf[i] is CR.
    if (i + 1 >= end) return undefined // CR seen, LF not yet
    if (buf[i + 1] !== LF) throw new RespProtocolError(`Protocol error: invalid ${what}`)
    if (digits === 0 || digits > 18) {
      throw new RespProtocolError(what === 'bulk length' ? 'Protocol error: invalid bulk length' : 'Protocol error: invalid multibulk length')
    }
    this.start = i + 2
    return negative ? -n : n
  }

  private multibulkLengthError(): string {
    return this.limits.preAuth === true ? 'Protocol error: unauthenticated multibulk length' : 'Protocol error: invalid multibulk length'
  }

  /** One inline command line; undefined when incomplete, [] for a blank line. */
  private parseInline(): Buffer[] | undefined {
    const nl = this.buf.indexOf(LF, this.start)
    if (nl < 0 || nl >= this.end) {
      if (this.end - this.start > this.limits.maxInlineBytes) throw new RespProtocolError('Protocol error: too big inline request')
      return undefined
    }
    if (nl - this.start > this.limits.maxInlineBytes) throw new RespProtocolError('Protocol error: too big inline request')
    let lineEnd = nl
    if (lineEnd > this.start && this.buf[lineEnd - 1] === CR) lineEnd--
    const line = this.buf.subarray(this.start, lineEnd)
    this.start = nl + 1
    const args = splitInline(line)
    if (args.length > this.limits.maxArgs) throw new RespProtocolError(this.multibulkLengthError())
    if (this.start === this.end) {
      this.buf = EMPTY
      this.start = this.end = 0
      this.ownsBuffer = false
    }
    return args
  }
}

function printable(c: number): string {
  return c >= 0x20 && c < 0x7f && c !== 0x27 ? String.fromCharCode(c) : `\\x${c.toString(16).padStart(2, '0')}`
}

function isSpace(c: number): boolean {
  return c === 0x20 || c === 0x09 || c === 0x0a || c === 0x0d || c === 0x0b || c === 0x0c
}

function hexValue(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10
  return -1
}

/**
 * Splits an inline command line like Redis's sdssplitargs: whitespace
 * separates arguments; "double quotes" take \n \r \t \b \a \\ \" and \xHH
 * escapes; 'single quotes' take \' only. A closing quote must be followed by
 * whitespace or the end. Throws on unbalanced quotes.
 */
export function splitInline(line: Buffer): Buffer[] {
  const out: Buffer[] = []
  let i = 0
  const n = line.length
  for (;;) {
    while (i < n && isSpace(line[i])) i++
    if (i >= n) return out
    const bytes: number[] = []
    let inDouble = false
    let inSingle = false
    let done = false
    while (!done) {
      if (inDouble) {
        if (i >= n) throw new RespProtocolError('Protocol error: unbalanced quotes in request')
        const c = line[i]
        if (c === 0x5c /* \ */ && i + 3 < n && line[i + 1] === 0x78 /* x */ && hexValue(line[i + 2]) >= 0 && hexValue(line[i + 3]) >= 0) {
          bytes.push(hexValue(line[i + 2]) * 16 + hexValue(line[i + 3]))
          i += 3
        } else if (c === 0x5c && i + 1 < n) {
          i++
          const e = line[i]
          bytes.push(e === 0x6e ? 10 : e === 0x72 ? 13 : e === 0x74 ? 9 : e === 0x62 ? 8 : e === 0x61 ? 7 : e)
        } else if (c === 0x22 /* " */) {
          if (i + 1 < n && !isSpace(line[i + 1])) throw new RespProtocolError('Protocol error: unbalanced quotes in request')
          done = true
        } else {
          bytes.push(c)
        }
      } else if (inSingle) {
        if (i >= n) throw new RespProtocolError('Protocol error: unbalanced quotes in request')
        const c = line[i]
        if (c === 0x5c && i + 1 < n && line[i + 1] === 0x27) {
          i++
          bytes.push(0x27)
        } else if (c === 0x27 /* ' */) {
          if (i + 1 < n && !isSpace(line[i + 1])) throw new RespProtocolError('Protocol error: unbalanced quotes in request')
          done = true
        } else {
          bytes.push(c)
        }
      } else {
        if (i >= n) {
          done = true
          break
        }
        const c = line[i]
        if (isSpace(c)) done = true
        else if (c === 0x22) inDouble = true
        else if (c === 0x27) inSingle = true
        else bytes.push(c)
      }
      if (i < n) i++
    }
    out.push(Buffer.from(bytes))
  }
}

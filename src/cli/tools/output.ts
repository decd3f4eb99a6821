/**
 * Output of the inspection tools (`strata check`, `dump`, `repair`): how keys
 * and values are shown, problems and their wording, and a stdout writer that
 * respects back-pressure (a dump of a large table is written as it is read).
 */
import * as path from 'node:path'
import { StrataError } from '../../base/errors.js'

/** Exit codes shared by the tools (docs/cli.md). */
export const EXIT_OK = 0
/** Problems found, or the operation failed. */
export const EXIT_PROBLEMS = 1
/** Bad arguments, or a path that does not exist. */
export const EXIT_USAGE = 2

/** A wrong invocation: exits with EXIT_USAGE. */
export class UsageError extends Error {
  constructor(message: string) {
    super(message)
    this.name = 'UsageError'
  }
}

/** How bytes are shown: as text when they are printable UTF-8 (unless forced to hex). */
export interface BytesFormat {
  /** Always hex. */
  hex: boolean
}

const decoder = new TextDecoder('utf-8', { fatal: true })
/** Controls, format characters, private use, unassigned, line/paragraph separators: not shown as text. */
const UNPRINTABLE = /[\p{Cc}\p{Cf}\p{Co}\p{Cn}\p{Zl}\p{Zp}\uFFFD]/u

/** The bytes as text when they are well-formed UTF-8 without unprintable characters; else undefined. */
export function printableText(bytes: Uint8Array): string | undefined {
  let text: string
  try {
    text = decoder.decode(bytes)
  } catch {
    return undefined
  }
  return UNPRINTABLE.test(text) ? undefined : text
}

/** Text form: `"text"` (JSON-quoted) or `0x` followed by lowercase hex. */
export function showBytes(bytes: Uint8Array, format: BytesFormat): string {
  const text = format.hex ? undefined : printableText(bytes)
  return text === undefined ? `0x${Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex')}` : JSON.stringify(text)
}

/** JSON form: the text or the hex digits, and which of the two it is. */
export interface JsonBytes {
  text: string
  encoding: 'utf8' | 'hex'
}

export function jsonBytes(bytes: Uint8Array, format: BytesFormat): JsonBytes {
  const text = format.hex ? undefined : printableText(bytes)
  return text === undefined ? { text: Buffer.from(bytes.buffer, bytes.byteOffset, bytes.byteLength).toString('hex'), encoding: 'hex' } : { text, encoding: 'utf8' }
}

/**
 * Parses a key bound given on the command line: `0x` followed by an even
 * number of hex digits is bytes, anything else is UTF-8 text.
 */
export function parseKeyArgument(value: string): Buffer {
  const m = /^0x((?:[0-9a-fA-F]{2})*)$/.exec(value)
  if (m !== null) return Buffer.from(m[1], 'hex')
  if (!(value as string & { isWellFormed(): boolean }).isWellFormed()) throw new UsageError(`key ${JSON.stringify(value)} is not well-formed text`)
  return Buffer.from(value, 'utf8')
}

/** Inclusive key bounds of a dump. */
export interface KeyBounds {
  from?: Buffer
  to?: Buffer
}

export function inBounds(key: Uint8Array, b: KeyBounds): boolean {
  if (b.from !== undefined && Buffer.compare(key, b.from) < 0) return false
  if (b.to !== undefined && Buffer.compare(key, b.to) > 0) return false
  return true
}

/** A problem (error) or a warning the tools report. */
export interface Finding {
  /** The file's name inside the directory (or the path given), when one is concerned. */
  file?: string
  /** Byte offset in that file, where known. */
  offset?: number
  message: string
}

/** `file at offset N: message`. */
export function showFinding(f: Finding): string {
  const where = f.file === undefined ? '' : f.offset === undefined ? `${f.file}: ` : `${f.file} at offset ${f.offset}: `
  return `${where}${f.message}`
}

/**
 * A library error as a finding: the message without the `corruption: `
 * prefix and the ` in FILE at offset N` suffix, which become the finding's
 * fields (`file` is what the caller passed to the library as the file name).
 */
export function findingOf(err: unknown, file: string, offset?: number): Finding {
  let message = err instanceof Error ? err.message : String(err)
  if (err instanceof StrataError && message.startsWith('corruption: ')) message = message.slice('corruption: '.length)
  let at = offset
  for (const name of new Set([file, path.basename(file)])) {
    const suffix = ` in ${name}`
    const i = message.lastIndexOf(suffix)
    if (i < 0) continue
    const rest = message.slice(i + suffix.length)
    const m = /^ at offset (\d+)$/.exec(rest)
    if (rest === '' || m !== null) {
      if (m !== null) at = Number(m[1])
      message = message.slice(0, i)
      break
    }
  }
  return { file: path.basename(file), offset: at, message }
}

/** The finding with its message prefixed by `what: ` (the part of the file it concerns). */
export function prefixed(what: string, f: Finding): Finding {
  return { ...f, message: `${what}: ${f.message}` }
}

/** `1,234,567`. */
export function count(n: number): string {
  return n.toLocaleString('en-US')
}

/** A u32 as 8 hex digits. */
export function hex32(n: number): string {
  return (n >>> 0).toString(16).padStart(8, '0')
}

/** Bytes in a readable unit: `812 B`, `4.0 KiB`, `1.2 MiB`. */
export function bytes(n: number): string {
  if (n < 1024) return `${n} B`
  const units = ['KiB', 'MiB', 'GiB', 'TiB']
  let v = n / 1024
  let u = 0
  while (v >= 1024 && u < units.length - 1) {
    v /= 1024
    u++
  }
  return `${v.toFixed(1)} ${units[u]}`
}

/** How far data compressed: the ratio raw bytes / stored bytes, to 3 decimals (null when nothing was stored). */
export function compressionRatio(storedBytes: number, rawBytes: number): number | null {
  return storedBytes === 0 ? null : Math.round((rawBytes / storedBytes) * 1000) / 1000
}

/** `n thing` or `n things`. */
export function plural(n: number, one: string, many = `${one}s`): string {
  return `${count(n)} ${n === 1 ? one : many}`
}

/**
 * Writes to stdout in chunks of about 64 KiB and waits for the pipe to drain
 * when it is full, so that a large dump neither piles up in memory nor is cut
 * short at exit.
 */
export class Out {
  private parts: string[] = []
  private pending = 0

  constructor(private readonly stream: NodeJS.WritableStream = process.stdout) {}

  /** Queues text; returns a promise when the caller should wait (a chunk was written and the pipe is full). */
  write(text: string): Promise<void> | undefined {
    this.parts.push(text)
    this.pending += text.length
    return this.pending >= 1 << 16 ? this.flush() : undefined
  }

  line(text = ''): Promise<void> | undefined {
    return this.write(`${text}\n`)
  }

  /** Writes everything queued; resolves once the stream accepted it. */
  flush(): Promise<void> {
    const chunk = this.parts.join('')
    this.parts = []
    this.pending = 0
    if (chunk.length === 0) return Promise.resolve()
    // The callback runs once the chunk left for the OS: waiting for it is the back-pressure.
    return new Promise((resolve, reject) => {
      this.stream.write(chunk, (err) => (err ? reject(err) : resolve()))
    })
  }
}

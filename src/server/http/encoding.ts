/**
 * Byte encodings of the HTTP API: percent-encoded keys in paths and query
 * strings, keys and values in JSON (UTF-8 text when it round-trips, base64
 * otherwise), ETags, and range cursors.
 */
import { isUtf8 } from 'node:buffer'

/**
 * Decodes percent-encoding to bytes. Characters outside `%XX` stand for
 * themselves (code points above 0xFF as UTF-8; Node hands request targets
 * over as latin1, one character per byte). With `plusIsSpace` (query
 * strings, as `URLSearchParams` writes them) `+` means a space. Returns
 * undefined on a malformed escape.
 */
export function percentDecode(text: string, plusIsSpace: boolean): Buffer | undefined {
  let ascii = true
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x25 || c > 0x7f || (plusIsSpace && c === 0x2b)) {
      ascii = false
      break
    }
  }
  if (ascii) return Buffer.from(text, 'latin1')
  const out = Buffer.allocUnsafe(text.length * 3)
  let n = 0
  for (let i = 0; i < text.length; i++) {
    const c = text.charCodeAt(i)
    if (c === 0x25) {
      const hi = hex(text.charCodeAt(i + 1))
      const lo = hex(text.charCodeAt(i + 2))
      if (hi < 0 || lo < 0) return undefined
      out[n++] = hi * 16 + lo
      i += 2
    } else if (plusIsSpace && c === 0x2b) {
      out[n++] = 0x20
    } else if (c <= 0xff) {
      out[n++] = c
    } else {
      n += out.write(String.fromCharCode(c), n, 'utf8')
    }
  }
  return out.subarray(0, n)
}

function hex(c: number): number {
  if (c >= 0x30 && c <= 0x39) return c - 0x30
  if (c >= 0x61 && c <= 0x66) return c - 0x61 + 10
  if (c >= 0x41 && c <= 0x46) return c - 0x41 + 10
  return -1
}

/** Percent-encodes bytes for a path segment (everything but unreserved characters). */
export function percentEncode(bytes: Buffer): string {
  let s = ''
  for (const b of bytes) {
    const unreserved = (b >= 0x30 && b <= 0x39) || (b >= 0x41 && b <= 0x5a) || (b >= 0x61 && b <= 0x7a) || b === 0x2d || b === 0x5f || b === 0x7e
    s += unreserved ? String.fromCharCode(b) : `%${b.toString(16).toUpperCase().padStart(2, '0')}`
  }
  return s
}

/**
 * Parses a query string into decoded byte values (the last occurrence of a
 * name wins). Throws a message on malformed escapes.
 */
export function parseQuery(query: string): Map<string, Buffer> {
  const out = new Map<string, Buffer>()
  if (query.length === 0) return out
  for (const part of query.split('&')) {
    if (part.length === 0) continue
    const eq = part.indexOf('=')
    const rawName = eq < 0 ? part : part.slice(0, eq)
    const rawValue = eq < 0 ? '' : part.slice(eq + 1)
    const name = percentDecode(rawName, true)
    const value = percentDecode(rawValue, true)
    if (name === undefined || value === undefined) throw new Error(`malformed percent-encoding in query parameter ${JSON.stringify(rawName.slice(0, 64))}`)
    out.set(name.toString('utf8'), value)
  }
  return out
}

/** Parses a boolean query flag: 1/true/yes/on or 0/false/no/off (empty = true). */
export function parseFlag(value: Buffer | undefined, name: string): boolean {
  if (value === undefined) return false
  const s = value.toString('latin1').toLowerCase()
  if (s === '' || s === '1' || s === 'true' || s === 'yes' || s === 'on') return true
  if (s === '0' || s === 'false' || s === 'no' || s === 'off') return false
  throw new Error(`${name} must be 1/true or 0/false`)
}

/** A key or value as JSON: `{ key: "text" }` when it is valid UTF-8, else `{ keyBase64: "..." }`. */
export function jsonBytes(field: string, bytes: Buffer): Record<string, string> {
  return isUtf8(bytes) ? { [field]: bytes.toString('utf8') } : { [`${field}Base64`]: bytes.toString('base64') }
}

/** Appends `"field":"text"` or `"fieldBase64":"..."` to a JSON object being written by hand. */
export function jsonBytesMember(field: string, bytes: Buffer): string {
  return isUtf8(bytes) ? `${JSON.stringify(field)}:${JSON.stringify(bytes.toString('utf8'))}` : `"${field}Base64":"${bytes.toString('base64')}"`
}

const BASE64 = /^[A-Za-z0-9+/]*={0,2}$/
const BASE64URL = /^[A-Za-z0-9_-]*={0,2}$/

/**
 * Reads bytes from a JSON object: `obj[field]` (a string, UTF-8) or
 * `obj[field + 'Base64']` (base64). undefined when neither is present;
 * throws a message when malformed or both are given.
 */
export function readJsonBytes(obj: Record<string, unknown>, field: string): Buffer | undefined {
  const text = obj[field]
  const b64 = obj[`${field}Base64`]
  if (text !== undefined && b64 !== undefined) throw new Error(`give either ${field} or ${field}Base64, not both`)
  if (text !== undefined) {
    if (typeof text !== 'string') throw new Error(`${field} must be a string (use ${field}Base64 for binary)`)
    // A lone surrogate ("\ud800") would become U+FFFD: two different keys, one entry.
    if (!(text as string & { isWellFormed(): boolean }).isWellFormed()) throw new Error(`${field} is not a well-formed string (lone surrogate); use ${field}Base64 for binary`)
    return Buffer.from(text, 'utf8')
  }
  if (b64 !== undefined) {
    if (typeof b64 !== 'string' || b64.length % 4 === 1 || !(BASE64.test(b64) || BASE64URL.test(b64))) throw new Error(`${field}Base64 must be base64`)
    return Buffer.from(b64, 'base64')
  }
  return undefined
}

/** The ETag of a version. */
export function etagOf(version: number): string {
  return `"${version}"`
}

/**
 * Parses an If-Match / If-None-Match value: '*' or the list of versions it
 * names. Weak tags (W/"7") count only when `allowWeak` (If-None-Match uses
 * weak comparison). Tags that are not versions match nothing. undefined when malformed.
 */
export function parseEtagList(header: string, allowWeak: boolean): '*' | number[] | undefined {
  const h = header.trim()
  if (h === '*') return '*'
  const out: number[] = []
  const re = /\s*(W\/)?"([^"]*)"\s*(,|$)/gy
  let m: RegExpExecArray | null
  let consumed = 0
  while (consumed < h.length && (m = re.exec(h)) !== null) {
    consumed = re.lastIndex
    if (m[1] !== undefined && !allowWeak) continue
    if (/^\d{1,15}$/.test(m[2])) out.push(Number(m[2]))
    if (m[3] === '') break
  }
  if (consumed !== h.length) return undefined
  return out
}

/** Encodes a range cursor (the last key returned). */
export function encodeCursor(key: Buffer): string {
  return key.toString('base64url')
}

/** Decodes a range cursor; undefined when malformed. */
export function decodeCursor(cursor: Buffer): Buffer | undefined {
  const s = cursor.toString('latin1')
  if (s.length === 0 || !BASE64URL.test(s)) return undefined
  return Buffer.from(s, 'base64url')
}

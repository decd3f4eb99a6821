import { checksum32 } from './checksum.js'
import { corruption } from './errors.js'

/**
 * The layout of stratadb's small text files (the STRATADB marker, the
 * REPLICA file; docs/format.md): a magic first line, body lines, then
 * `xxh32 HEX` of every byte before that last line.
 */
export function encodeChecksummedText(magic: string, lines: readonly string[]): Buffer {
  const body = Buffer.from([magic, ...lines].join('\n') + '\n', 'latin1')
  return Buffer.concat([body, Buffer.from(`xxh32 ${checksum32(body).toString(16).padStart(8, '0')}\n`, 'latin1')])
}

/**
 * The body lines of a file in that layout. Anything else (no magic line, no
 * checksum line, a checksum mismatch) is STRATA_CORRUPTION naming `what`.
 */
export function decodeChecksummedText(buf: Buffer, magic: string, what: string, file: string): string[] {
  const text = buf.toString('latin1')
  const tail = /\nxxh32 ([0-9a-f]{8})\n$/.exec(text)
  if (!text.startsWith(`${magic}\n`) || tail === null) throw corruption(`${what} is damaged (no magic line or checksum line)`, file)
  const bodyLength = tail.index + 1
  if (checksum32(buf.subarray(0, bodyLength)) !== Number.parseInt(tail[1], 16)) throw corruption(`${what} is damaged (checksum mismatch)`, file)
  return text.slice(magic.length + 1, bodyLength - 1).split('\n')
}

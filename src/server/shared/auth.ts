/**
 * Authentication: one shared bearer token for both protocols. A token is
 * mandatory as soon as either listener binds a non-loopback address.
 */
import { createHash, timingSafeEqual } from 'node:crypto'
import dns from 'node:dns'
import * as fs from 'node:fs'
import * as net from 'node:net'
import { formatAddress, isLoopbackHost, type ListenAddress } from './address.js'

/** Tokens shorter than this are refused: they would be guessable over the network. */
export const MIN_TOKEN_CHARS = 16

/** Reads a token file: the first line, trimmed. Throws a readable Error when unreadable, empty or too short. */
export function readTokenFile(file: string): string {
  let text: string
  try {
    text = fs.readFileSync(file, 'utf8')
  } catch (err) {
    throw new Error(`cannot read token file ${file}: ${(err as Error).message}`)
  }
  const token = text.split(/\r?\n/, 1)[0].trim()
  if (token.length === 0) throw new Error(`token file ${file} is empty`)
  if (token.length < MIN_TOKEN_CHARS) throw new Error(`token in ${file} is too short: use at least ${MIN_TOKEN_CHARS} characters`)
  return token
}

/**
 * Refuses a configuration that would expose the database without a token:
 * throws naming every non-loopback address.
 */
export function checkExposure(addresses: Array<{ name: string; address: ListenAddress }>, token: string | undefined): void {
  if (token !== undefined) return
  const exposed = addresses.filter((a) => !isLoopbackHost(a.address.host))
  if (exposed.length === 0) return
  const list = exposed.map((a) => `${a.name} ${formatAddress(a.address.host, a.address.port)}`).join(', ')
  throw new Error(
    `refusing to start: ${list} is not a loopback address, and serving without authentication there would expose the database. ` +
      'Pass --token-file <file> (clients then send "Authorization: Bearer <token>" over HTTP and AUTH <token> over RESP), or bind 127.0.0.1.',
  )
}

/**
 * A name is only a claim: without a token, refuses (before binding) when a
 * listen address given by name (`localhost`, `*.localhost`) resolves to
 * anything that is not loopback. Names that do not resolve are left to
 * listen() to report.
 */
export async function checkNamesResolveToLoopback(addresses: Array<{ name: string; address: ListenAddress }>, token: string | undefined): Promise<void> {
  if (token !== undefined) return
  for (const a of addresses) {
    if (net.isIP(a.address.host) !== 0) continue
    let found: dns.LookupAddress[]
    try {
      found = await new Promise<dns.LookupAddress[]>((resolve, reject) =>
        // Looked up on the module object at call time, as net.Server#listen does.
        dns.lookup(a.address.host, { all: true }, (err, list) => (err ? reject(err) : resolve(list))),
      )
    } catch {
      continue
    }
    const off = found.filter((f) => !isLoopbackHost(f.address)).map((f) => f.address)
    if (off.length > 0) {
      throw new Error(
        `refusing to start: ${a.name} ${formatAddress(a.address.host, a.address.port)} resolves to ${off.join(', ')}, which is not a loopback address. ` +
          'Pass --token-file <file>, or bind 127.0.0.1.',
      )
    }
  }
}

/**
 * The same check on the address actually bound (server.address()): throws
 * when it is not loopback and there is no token. The caller closes the
 * listeners.
 */
export function checkBoundExposure(name: string, requested: ListenAddress, bound: net.AddressInfo, token: string | undefined): void {
  if (token !== undefined || isLoopbackHost(bound.address)) return
  throw new Error(
    `refusing to serve: ${name} ${formatAddress(requested.host, requested.port)} was bound to ${formatAddress(bound.address, bound.port)}, which is not a loopback address, ` +
      'and serving without authentication there would expose the database. Pass --token-file <file>, or bind 127.0.0.1.',
  )
}

/** Constant-time check of a presented secret against the configured token. */
export class TokenChecker {
  private readonly digest: Buffer

  constructor(readonly token: string) {
    this.digest = sha256(Buffer.from(token, 'utf8'))
  }

  /** True when `presented` equals the token; timing does not depend on where they differ. */
  matches(presented: Buffer | string): boolean {
    const bytes = typeof presented === 'string' ? Buffer.from(presented, 'utf8') : presented
    return timingSafeEqual(sha256(bytes), this.digest)
  }

  /** Checks an HTTP `Authorization` header value (`Bearer <token>`). */
  matchesBearer(header: string | undefined): boolean {
    if (header === undefined) return false
    const m = /^Bearer[ \t]+(\S+)[ \t]*$/i.exec(header)
    return m !== null && this.matches(m[1])
  }
}

function sha256(data: Buffer): Buffer {
  return createHash('sha256').update(data).digest()
}

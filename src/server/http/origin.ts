/**
 * Browser safety of the HTTP API (docs/server.md, "Security on loopback"):
 * a web page must not be able to read or write the database, whether it
 * sends cross-site requests to 127.0.0.1 (CSRF: a `text/plain` POST needs
 * no preflight) or rebinds its own name to 127.0.0.1 (DNS rebinding: the
 * browser then sends `Host: evil.example`). Checked on every request, with
 * or without a token:
 *
 * - `Host` must name the server: a loopback name (`localhost`,
 *   `*.localhost`), a loopback address, the bound address (any address when
 *   bound to 0.0.0.0 / ::, since an IP literal cannot be rebound), or a
 *   name listed with `--allow-host`; else 403 `STRATA_FORBIDDEN_HOST`.
 * - A request with an `Origin` is served only when that origin is listed
 *   with `--allow-origin` (it then gets CORS headers, preflight included) or
 *   is the server's own origin; one without `Origin` is refused when
 *   `Sec-Fetch-Site` says `cross-site` or `same-site`; else 403
 *   `STRATA_FORBIDDEN_ORIGIN`. Requests from non-browsers (curl, services)
 *   send neither header and pass.
 *
 * The `Content-Type: application/json` requirement of JSON bodies (415) is
 * checked by the route (api.ts) with `isJsonContentType`.
 */
import type * as http from 'node:http'
import * as net from 'node:net'
import { isLoopbackHost } from '../shared/address.js'
import { HttpError } from '../shared/errors.js'

/** What allowed origins may do (answered to preflights). */
const CORS_ALLOW_METHODS = 'GET, HEAD, PUT, DELETE, POST'
const CORS_ALLOW_HEADERS = 'Authorization, Content-Type, If-Match, If-None-Match'
const CORS_EXPOSE_HEADERS = 'ETag, Retry-After, WWW-Authenticate, Strata-Expires-At'
const CORS_MAX_AGE_SECONDS = '600'
/** Verdicts remembered per distinct `Host` value (cleared when full). */
const MAX_CACHED_HOSTS = 256
const PORT_SUFFIX = /^:\d{1,5}$/

/** The Host/Origin policy of one HTTP listener. */
export class OriginPolicy {
  private readonly exactHosts = new Set<string>()
  /** `.example.com` for `*.example.com`. */
  private readonly hostSuffixes: string[] = []
  private readonly anyHost: boolean
  private readonly origins: Set<string>
  private bound: string | undefined
  private boundWildcard = false
  private readonly hostVerdicts = new Map<string, boolean>()

  /** `allowHosts` and `allowOrigins` as normalized by shared/options.ts. */
  constructor(allowHosts: readonly string[], allowOrigins: readonly string[]) {
    this.anyHost = allowHosts.includes('*')
    for (const h of allowHosts) {
      if (h.startsWith('*.')) this.hostSuffixes.push(h.slice(1))
      else if (h !== '*') this.exactHosts.add(h)
    }
    this.origins = new Set(allowOrigins)
  }

  /** True when allowed origins are configured (responses then vary by Origin). */
  get corsEnabled(): boolean {
    return this.origins.size > 0
  }

  /** The address the listener is bound to (server.address()), once listening. */
  setBoundAddress(address: string): void {
    const a = address.toLowerCase()
    this.bound = a
    this.boundWildcard = a === '0.0.0.0' || a === '::' || a === '::ffff:0.0.0.0'
    this.hostVerdicts.clear()
  }

  /**
   * Checks `Host`, `Origin` and `Sec-Fetch-Site` of a request; throws 400
   * (no Host in HTTP/1.1) or 403. Returns the origin to answer with CORS
   * headers (an allowed cross-origin caller), else undefined.
   */
  check(req: http.IncomingMessage): string | undefined {
    const host = req.headers.host
    if (host === undefined || host === '') {
      // Browsers always send Host; HTTP/1.1 requires it (RFC 9112 §3.2: answer 400).
      if (req.httpVersionMajor === 1 && req.httpVersionMinor === 0 && host === undefined) return this.checkOrigin(req, undefined)
      throw new HttpError(400, 'STRATA_BAD_REQUEST', 'missing Host header')
    }
    let verdict = this.hostVerdicts.get(host)
    if (verdict === undefined) {
      verdict = this.hostAllowed(host)
      if (this.hostVerdicts.size >= MAX_CACHED_HOSTS) this.hostVerdicts.clear()
      this.hostVerdicts.set(host, verdict)
    }
    if (!verdict) {
      const shown = JSON.stringify(host.slice(0, 200))
      throw new HttpError(
        403,
        'STRATA_FORBIDDEN_HOST',
        `Host ${shown} is not allowed (DNS rebinding protection): use the server's address or a loopback name, or start it with --allow-host <name>`,
      )
    }
    return this.checkOrigin(req, host)
  }

  /** CORS headers of an actual response to an allowed origin. */
  corsHeaders(origin: string): Record<string, string> {
    return { 'Access-Control-Allow-Origin': origin, 'Access-Control-Expose-Headers': CORS_EXPOSE_HEADERS, Vary: 'Origin' }
  }

  /** Headers answering a preflight (OPTIONS with Access-Control-Request-Method) of an allowed origin. */
  preflightHeaders(req: http.IncomingMessage, origin: string): Record<string, string> {
    const h: Record<string, string> = {
      'Access-Control-Allow-Origin': origin,
      'Access-Control-Allow-Methods': CORS_ALLOW_METHODS,
      'Access-Control-Allow-Headers': CORS_ALLOW_HEADERS,
      'Access-Control-Max-Age': CORS_MAX_AGE_SECONDS,
      Vary: 'Origin, Access-Control-Request-Method, Access-Control-Request-Headers',
    }
    // Chromium's Private Network Access preflight: the operator listed this origin.
    if (req.headers['access-control-request-private-network'] === 'true') h['Access-Control-Allow-Private-Network'] = 'true'
    return h
  }

  private checkOrigin(req: http.IncomingMessage, host: string | undefined): string | undefined {
    const origin = req.headers.origin
    if (origin !== undefined) {
      if (this.origins.has(origin)) return origin
      if (host !== undefined && isSameOrigin(origin, host)) return undefined
      throw new HttpError(
        403,
        'STRATA_FORBIDDEN_ORIGIN',
        `cross-origin request from ${JSON.stringify(origin.slice(0, 200))} refused: start the server with --allow-origin <origin> to allow it`,
      )
    }
    const site = req.headers['sec-fetch-site']
    if (site === 'cross-site' || site === 'same-site') {
      throw new HttpError(403, 'STRATA_FORBIDDEN_ORIGIN', `${site} request refused (Sec-Fetch-Site): start the server with --allow-origin <origin> to allow it`)
    }
    return undefined
  }

  private hostAllowed(header: string): boolean {
    const name = hostName(header)
    if (name === undefined) return false
    if (this.anyHost || this.exactHosts.has(name)) return true
    if (name === 'localhost' || name.endsWith('.localhost')) return true
    if (net.isIP(name) !== 0) return isLoopbackHost(name) || this.boundWildcard || name === this.bound
    for (const suffix of this.hostSuffixes) if (name.length > suffix.length && name.endsWith(suffix)) return true
    return false
  }
}

/** The host name of a `Host` header value, lower-cased, without port, brackets or trailing dot; undefined when malformed. */
export function hostName(header: string): string | undefined {
  let h = header.trim().toLowerCase()
  if (h.startsWith('[')) {
    const end = h.indexOf(']')
    if (end < 0) return undefined
    const rest = h.slice(end + 1)
    if (rest !== '' && !PORT_SUFFIX.test(rest)) return undefined
    h = h.slice(1, end)
    return net.isIPv6(h) ? h : undefined
  }
  const colon = h.indexOf(':')
  if (colon >= 0) {
    if (!PORT_SUFFIX.test(h.slice(colon))) return undefined
    h = h.slice(0, colon)
  }
  if (h.endsWith('.')) h = h.slice(0, -1)
  return h.length === 0 ? undefined : h
}

/** True when `origin` is `http(s)://` + the request's Host (the page came from this server's own origin). */
function isSameOrigin(origin: string, host: string): boolean {
  const o = origin.toLowerCase()
  const h = host.trim().toLowerCase()
  return (o.startsWith('http://') && o.length === 7 + h.length && o.endsWith(h)) || (o.startsWith('https://') && o.length === 8 + h.length && o.endsWith(h))
}

/** True when a Content-Type header names `application/json` (parameters such as charset allowed). */
export function isJsonContentType(header: string | undefined): boolean {
  if (header === undefined) return false
  const semi = header.indexOf(';')
  return (semi < 0 ? header : header.slice(0, semi)).trim().toLowerCase() === 'application/json'
}

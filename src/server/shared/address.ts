/** Listen addresses: parsing `host:port` and telling loopback from the rest. */
import * as net from 'node:net'

/** A parsed listen address. */
export interface ListenAddress {
  host: string
  port: number
}

/**
 * Parses `host:port`, `[v6]:port`, `:port` (loopback) or a bare port. Port 0
 * asks the OS for an ephemeral port. Throws a readable Error.
 */
export function parseListenAddress(text: string, what: string): ListenAddress {
  const s = text.trim()
  let host: string
  let portText: string
  if (/^\d+$/.test(s)) {
    host = '127.0.0.1'
    portText = s
  } else if (s.startsWith('[')) {
    const end = s.indexOf(']')
    if (end < 0 || s[end + 1] !== ':') throw new Error(`${what}: expected [ipv6]:port, got ${JSON.stringify(text)}`)
    host = s.slice(1, end)
    portText = s.slice(end + 2)
  } else {
    const colon = s.lastIndexOf(':')
    if (colon < 0) throw new Error(`${what}: expected host:port, got ${JSON.stringify(text)}`)
    host = s.slice(0, colon) || '127.0.0.1'
    portText = s.slice(colon + 1)
    if (host.includes(':')) throw new Error(`${what}: write IPv6 addresses as [addr]:port, got ${JSON.stringify(text)}`)
  }
  const port = Number(portText)
  if (!/^\d+$/.test(portText) || !Number.isInteger(port) || port < 0 || port > 65535) {
    throw new Error(`${what}: invalid port ${JSON.stringify(portText)}`)
  }
  if (host.length === 0) throw new Error(`${what}: empty host`)
  return { host, port }
}

/** True when `host` only ever reaches this machine: 127.0.0.0/8, ::1, localhost. */
export function isLoopbackHost(host: string): boolean {
  const h = host.toLowerCase()
  if (h === 'localhost' || h.endsWith('.localhost')) return true
  if (net.isIPv4(h)) return h.startsWith('127.')
  if (net.isIPv6(h)) {
    if (h === '::1' || h === '0:0:0:0:0:0:0:1') return true
    const mapped = /^::ffff:(\d+\.\d+\.\d+\.\d+)$/.exec(h)
    return mapped !== null && mapped[1].startsWith('127.')
  }
  return false
}

/** `host:port` with IPv6 in brackets, for messages. */
export function formatAddress(host: string, port: number): string {
  return host.includes(':') ? `[${host}]:${port}` : `${host}:${port}`
}

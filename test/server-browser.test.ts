/**
 * A real browser against `strata serve` (issue #16): headless Chromium
 * (Debian's `chromium`, installed by .ci/run) driven by playwright-core
 * loads pages of other local origins that try to read and write the
 * database with `fetch`: cross-origin to 127.0.0.1 (CSRF, including the
 * `no-cors` text/plain POST a browser sends without preflight), with a
 * rebinding name (`evil.test`, mapped to 127.0.0.1 by
 * --host-resolver-rules), and same-origin after a DNS rebinding (the page's
 * own origin is http://evil.test:<server port>). Every attempt fails and
 * nothing is written. The same requests from an `--allow-origin` origin
 * succeed through CORS.
 *
 * Without Chromium the test is skipped, except under CI=true, where it fails.
 */
import * as fs from 'node:fs'
import * as http from 'node:http'
import type { AddressInfo } from 'node:net'
import { chromium, type Browser, type Page } from 'playwright-core'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'
import { startServer, type StrataServer } from '../src/server/index.js'
import { tempDir } from './unit/helpers.js'

const CHROMIUM = [process.env.CHROMIUM_PATH, '/usr/bin/chromium', '/usr/bin/chromium-browser'].find((p) => p !== undefined && p !== '' && fs.existsSync(p))
const IN_CI = process.env.CI === 'true'

/** What one fetch attempt of the page gave. */
interface Attempt {
  /** false: fetch threw (network error, CORS refusal). */
  ok: boolean
  status?: number
  type?: string
  text?: string
  error?: string
}

/** Runs in the page: every way a page can try to use the API. `tag` names the keys it tries to write. */
async function attack(page: Page, target: string, tag: string): Promise<Record<string, Attempt>> {
  return page.evaluate(
    async ({ target, tag }) => {
      const results: Record<string, Attempt> = {}
      const attempt = async (name: string, url: string, init?: RequestInit): Promise<void> => {
        try {
          const r = await fetch(url, init)
          let text = ''
          try {
            text = await r.text()
          } catch {
            // opaque or cut
          }
          results[name] = { ok: true, status: r.status, type: r.type, text }
        } catch (e) {
          results[name] = { ok: false, error: String(e) }
        }
      }
      const ops = (key: string): string => JSON.stringify([{ type: 'put', key, value: 'pwned' }])
      // Simple requests: sent without preflight.
      await attempt('post-text-no-cors', `${target}/v1/batch`, { method: 'POST', mode: 'no-cors', headers: { 'Content-Type': 'text/plain' }, body: ops(`${tag}:a`) })
      await attempt('post-text-cors', `${target}/v1/batch`, { method: 'POST', headers: { 'Content-Type': 'text/plain' }, body: ops(`${tag}:b`) })
      await attempt('post-blob-no-cors', `${target}/v1/batch`, { method: 'POST', mode: 'no-cors', body: new Blob([ops(`${tag}:c`)]) })
      await attempt('post-form-no-cors', `${target}/v1/kv/${tag}:d`, { method: 'POST', mode: 'no-cors', body: new URLSearchParams({ a: '1' }) })
      // Preflighted requests.
      await attempt('post-json', `${target}/v1/batch`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: ops(`${tag}:e`) })
      await attempt('put', `${target}/v1/kv/${tag}:f`, { method: 'PUT', body: 'pwned' })
      await attempt('delete', `${target}/v1/kv/seed`, { method: 'DELETE' })
      // Reads.
      await attempt('get', `${target}/v1/kv/seed`)
      await attempt('get-no-cors', `${target}/v1/kv/seed`, { mode: 'no-cors' })
      await attempt('range', `${target}/v1/range`)
      await attempt('stats', `${target}/v1/stats`)
      return results
    },
    { target, tag },
  )
}

describe.skipIf(CHROMIUM === undefined && !IN_CI)('headless Chromium against strata serve', () => {
  let browser: Browser
  let server: StrataServer
  let pages: http.Server
  let pagePort: number
  let port: number
  let cleanup: () => void

  beforeAll(async () => {
    if (CHROMIUM === undefined) throw new Error('chromium not found (apt-get install chromium; .ci/run installs it): this test must run in CI')
    // The second local origin: serves an empty page on 127.0.0.1, reached also as evil.test and localhost.
    pages = http.createServer((_req, res) => {
      res.writeHead(200, { 'Content-Type': 'text/html' })
      res.end('<!doctype html><title>another site</title><p>nothing to see</p>')
    })
    await new Promise<void>((r) => pages.listen(0, '127.0.0.1', r))
    pagePort = (pages.address() as AddressInfo).port
    const t = tempDir('strata-browser-')
    cleanup = t.cleanup
    server = await startServer({ dir: t.dir, http: '127.0.0.1:0', resp: null, log: () => {}, allowOrigins: [`http://localhost:${pagePort}`] })
    port = server.httpPort!
    await server.db.put('seed', 'secret')
    browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--host-resolver-rules=MAP evil.test 127.0.0.1'] })
  }, 60_000)

  afterAll(async () => {
    await browser?.close()
    await server?.close()
    if (pages !== undefined) await new Promise((r) => pages.close(r))
    cleanup?.()
  })

  const noAttemptSucceeds = (results: Record<string, Attempt>, where: string): void => {
    expect(Object.keys(results).length).toBe(11)
    for (const [name, r] of Object.entries(results)) {
      const label = `${where}: ${name} ${JSON.stringify(r)}`
      // Failed outright, opaque (status 0, nothing readable), or a readable refusal.
      if (r.ok) expect(r.status === 0 || r.status === 403 || r.status === 405, label).toBe(true)
      expect(r.text ?? '', label).not.toContain('secret')
      expect(r.text ?? '', label).not.toContain('versions')
    }
  }

  const nothingWritten = async (tag: string): Promise<void> => {
    for (const k of ['a', 'b', 'c', 'd', 'e', 'f']) expect(await server.db.get(`${tag}:${k}`), `${tag}:${k}`).toBeUndefined()
    expect((await server.db.get('seed'))?.toString()).toBe('secret')
  }

  it('refuses a page of another local origin (cross-origin to 127.0.0.1) and one reaching it by a rebinding name', async () => {
    const page = await browser.newPage()
    try {
      await page.goto(`http://127.0.0.1:${pagePort}/`)
      noAttemptSucceeds(await attack(page, `http://127.0.0.1:${port}`, 'csrf'), 'cross-origin')
      await nothingWritten('csrf')
      await page.goto(`http://evil.test:${pagePort}/`)
      noAttemptSucceeds(await attack(page, `http://evil.test:${port}`, 'rebind-cross'), 'rebinding name, cross-origin')
      await nothingWritten('rebind-cross')
    } finally {
      await page.close()
    }
  })

  it('refuses a DNS-rebound page on the server’s own origin (same-origin requests with a foreign Host)', async () => {
    const page = await browser.newPage()
    try {
      // The attacker's page was served as http://evil.test:<port>/; the name now points at 127.0.0.1.
      await page.goto(`http://evil.test:${port}/`)
      const results = await attack(page, `http://evil.test:${port}`, 'rebind')
      noAttemptSucceeds(results, 'rebound same-origin')
      // Same-origin: the page can read the refusals, which say why.
      expect(results.get.status).toBe(403)
      expect(JSON.parse(results.get.text!)).toMatchObject({ code: 'STRATA_FORBIDDEN_HOST' })
      expect(results['post-text-cors'].status).toBe(403)
      await nothingWritten('rebind')
    } finally {
      await page.close()
    }
  })

  it('lets an --allow-origin origin read and write through CORS', async () => {
    const page = await browser.newPage()
    try {
      await page.goto(`http://localhost:${pagePort}/`)
      const target = `http://127.0.0.1:${port}`
      const r = await page.evaluate(async (target) => {
        const put = await fetch(`${target}/v1/kv/allowed`, { method: 'PUT', body: 'from the app' })
        const batch = await fetch(`${target}/v1/batch`, { method: 'POST', headers: { 'Content-Type': 'application/json' }, body: JSON.stringify([{ type: 'put', key: 'allowed:2', value: 'two' }]) })
        const get = await fetch(`${target}/v1/kv/seed`)
        const cas = await fetch(`${target}/v1/kv/allowed`, { method: 'PUT', headers: { 'If-Match': put.headers.get('ETag') ?? '"0"' }, body: 'again' })
        return { put: put.status, etag: put.headers.get('ETag'), batch: [batch.status, await batch.json()], get: [get.status, await get.text()], cas: cas.status }
      }, target)
      expect(r.put).toBe(204)
      expect(r.etag).toMatch(/^"\d+"$/)
      expect(r.batch[0]).toBe(200)
      expect(r.get).toEqual([200, 'secret'])
      expect(r.cas).toBe(204)
      expect((await server.db.get('allowed'))?.toString()).toBe('again')
      expect((await server.db.get('allowed:2'))?.toString()).toBe('two')
    } finally {
      await page.close()
    }
  })
})

/**
 * abstract-level's own conformance suite against StrataLevel: the proof that
 * stratadb is a drop-in for classic-level in the Level ecosystem.
 *
 * The suite is tape-based, so it runs in a child process
 * (test/fixtures/level-suite.mjs, against the BUILT adapter in dist/; `npm
 * test` builds first) and this test parses its TAP summary. Nothing is
 * skipped by the manifest that would fail: every capability StrataLevel
 * declares enables the suite's tests for it.
 */
import { spawn } from 'node:child_process'
import * as fs from 'node:fs'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const SUITE = fileURLToPath(new URL('./fixtures/level-suite.mjs', import.meta.url))
const BUILT = fileURLToPath(new URL('../dist/level/index.js', import.meta.url))
const ROOT = fileURLToPath(new URL('..', import.meta.url))

interface TapSummary {
  tests: number
  pass: number
  fail: number
  /** Test names (the "# name" comment lines). */
  cases: number
  failures: string[]
}

function parseTap(out: string): TapSummary {
  const count = (name: string): number => {
    const m = new RegExp(`^# ${name}\\s+(\\d+)\\s*$`, 'm').exec(out)
    return m === null ? 0 : Number(m[1])
  }
  const lines = out.split('\n')
  const failures: string[] = []
  lines.forEach((line, i) => {
    if (!line.startsWith('not ok')) return
    // The nearest preceding "# name" line names the test the assertion belongs to.
    let name = ''
    for (let j = i - 1; j >= 0; j--) {
      if (lines[j]!.startsWith('# ')) {
        name = lines[j]!.slice(2)
        break
      }
    }
    failures.push(`${name}: ${line}\n${lines.slice(i + 1, i + 8).join('\n')}`)
  })
  const cases = lines.filter((l) => l.startsWith('# ') && !/^# (tests|pass|fail|ok)\b/.test(l)).length
  return { tests: count('tests'), pass: count('pass'), fail: count('fail'), cases, failures }
}

function runSuite(): Promise<{ code: number | null; stdout: string; stderr: string; ms: number }> {
  const started = Date.now()
  return new Promise((resolve, reject) => {
    const child = spawn(process.execPath, [SUITE], { cwd: ROOT, stdio: ['ignore', 'pipe', 'pipe'] })
    let stdout = ''
    let stderr = ''
    child.stdout.setEncoding('utf8').on('data', (d: string) => (stdout += d))
    child.stderr.setEncoding('utf8').on('data', (d: string) => (stderr += d))
    child.on('error', reject)
    child.on('close', (code) => resolve({ code, stdout, stderr, ms: Date.now() - started }))
  })
}

describe('abstract-level conformance suite (abstract-level/test)', () => {
  it('passes completely against StrataLevel', { timeout: 180_000 }, async () => {
    expect(fs.existsSync(BUILT), 'dist/level/index.js is missing: run `npm run build` first').toBe(true)
    const { code, stdout, stderr, ms } = await runSuite()
    const summary = parseTap(stdout)
    console.log(
      `abstract-level suite: ${summary.cases} tests, ${summary.tests} assertions, ` +
        `${summary.pass} passed, ${summary.fail} failed, in ${(ms / 1000).toFixed(1)} s`,
    )
    expect(summary.failures, summary.failures.join('\n\n')).toEqual([])
    expect(summary.fail).toBe(0)
    expect(summary.pass).toBe(summary.tests)
    // Guards against a suite that silently ran (almost) nothing: abstract-level 3.1.1 with
    // StrataLevel's manifest makes 5132 assertions in about 1470 tests.
    expect(summary.tests).toBeGreaterThan(5000)
    expect(code, stderr).toBe(0)
  })
})

/**
 * Redis glob patterns (KEYS, SCAN MATCH) over bytes: `*`, `?`, `[abc]`,
 * `[^a-z]`, and `\` escapes, as Redis's stringmatchlen. Also the literal
 * prefix of a pattern, which turns a pattern scan into a range scan.
 */

/** Longest pattern KEYS, SCAN MATCH and COMMAND LIST accept: longer ones are refused before any key is read. */
export const MAX_GLOB_PATTERN_BYTES = 1024

/** Default step budget of a single match (globMatch). */
const DEFAULT_MAX_STEPS = 1_000_000

const STAR = 0
const ANY = 1
const BYTE = 2
const CLASS = 3

/** One compiled pattern element: `*`, `?`, a literal byte, or a class (`lo,hi` pairs; a single byte is lo === hi). */
type Token = { t: typeof STAR } | { t: typeof ANY } | { t: typeof BYTE; c: number } | { t: typeof CLASS; not: boolean; ranges: number[] }

/** Parses a pattern once, with the rules of Redis's stringmatchlen (including its unterminated `[`). */
function compile(p: Buffer): Token[] {
  const out: Token[] = []
  let pi = 0
  while (pi < p.length) {
    const c = p[pi]
    if (c === 0x2a /* * */) {
      while (pi + 1 < p.length && p[pi + 1] === 0x2a) pi++
      out.push({ t: STAR })
    } else if (c === 0x3f /* ? */) {
      out.push({ t: ANY })
    } else if (c === 0x5b /* [ */) {
      pi++
      const not = p[pi] === 0x5e /* ^ */
      if (not) pi++
      const ranges: number[] = []
      for (;;) {
        if (pi >= p.length) {
          pi-- // unterminated class: like Redis, it runs to the end of the pattern
          break
        }
        if (p[pi] === 0x5c /* \ */ && pi + 1 < p.length) {
          pi++
          ranges.push(p[pi], p[pi])
        } else if (p[pi] === 0x5d /* ] */) {
          break
        } else if (pi + 2 < p.length && p[pi + 1] === 0x2d /* - */) {
          const lo = p[pi]
          const hi = p[pi + 2]
          ranges.push(Math.min(lo, hi), Math.max(lo, hi))
          pi += 2
        } else {
          ranges.push(p[pi], p[pi])
        }
        pi++
      }
      out.push({ t: CLASS, not, ranges })
    } else {
      if (c === 0x5c /* \ */ && pi + 1 < p.length) pi++
      out.push({ t: BYTE, c: p[pi] })
    }
    pi++
  }
  return out
}

/**
 * A compiled pattern with a step budget shared by every `match` call: one
 * matcher per command, so the budget bounds the command, not each key.
 *
 * Matching backtracks only to the last `*` seen (every other element matches
 * exactly one byte, which makes that enough), so one match costs at most
 * about pattern length × key length steps instead of exponential time. Every
 * step is counted: each byte compared and each class range tested. Once the
 * budget is spent, `match` answers false and `exhausted` is true; the caller
 * must then not trust that answer (SCAN stops early, KEYS answers an error).
 */
export class GlobMatcher {
  private readonly tokens: Token[]
  /** Steps spent so far by all matches. */
  steps = 0

  constructor(
    pattern: Buffer,
    readonly maxSteps: number,
  ) {
    this.tokens = compile(pattern)
  }

  /** True once the budget is spent (the last `match` answer is then meaningless). */
  get exhausted(): boolean {
    return this.steps > this.maxSteps
  }

  /** True when `subject` matches; false when it does not or the budget ran out (see `exhausted`). */
  match(subject: Buffer): boolean {
    const tokens = this.tokens
    const m = tokens.length
    const n = subject.length
    const max = this.maxSteps
    let steps = this.steps
    let pi = 0
    let si = 0
    let starP = -1
    let starS = 0
    try {
      while (si < n) {
        if (++steps > max) return false
        if (pi < m) {
          const tok = tokens[pi]
          if (tok.t === STAR) {
            starP = pi++
            starS = si
            continue
          }
          let ok: boolean
          if (tok.t === ANY) ok = true
          else if (tok.t === BYTE) ok = tok.c === subject[si]
          else {
            const b = subject[si]
            const r = tok.ranges
            ok = false
            for (let i = 0; i < r.length; i += 2) {
              if (++steps > max) return false
              if (b >= r[i] && b <= r[i + 1]) {
                ok = true
                break
              }
            }
            if (tok.not) ok = !ok
          }
          if (ok) {
            pi++
            si++
            continue
          }
        }
        if (starP < 0) return false
        // Let the last star absorb one more byte and retry what follows it.
        pi = starP + 1
        si = ++starS
      }
      while (pi < m && tokens[pi].t === STAR) {
        if (++steps > max) return false
        pi++
      }
      return pi === m
    } finally {
      this.steps = steps
    }
  }
}

/** True when `subject` matches `pattern` (both bytes), within `maxSteps` (false beyond). */
export function globMatch(pattern: Buffer, subject: Buffer, maxSteps = DEFAULT_MAX_STEPS): boolean {
  return new GlobMatcher(pattern, maxSteps).match(subject)
}

/** The bytes every match must start with (up to the first special character). */
export function literalPrefix(pattern: Buffer): Buffer {
  const out: number[] = []
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]
    if (c === 0x2a || c === 0x3f || c === 0x5b) break
    if (c === 0x5c) {
      if (i + 1 >= pattern.length) break
      i++
      out.push(pattern[i])
      continue
    }
    out.push(c)
  }
  return Buffer.from(out)
}

/** True when the pattern has no wildcard (it matches exactly one key). */
export function isLiteral(pattern: Buffer): boolean {
  for (let i = 0; i < pattern.length; i++) {
    const c = pattern[i]
    if (c === 0x2a || c === 0x3f || c === 0x5b) return false
    if (c === 0x5c) {
      if (i + 1 >= pattern.length) return false
      i++
    }
  }
  return true
}

/** The smallest key greater than every key starting with `prefix`, or undefined when none exists (all 0xff). */
export function prefixEnd(prefix: Buffer): Buffer | undefined {
  const out = Buffer.from(prefix)
  for (let i = out.length - 1; i >= 0; i--) {
    if (out[i] < 0xff) {
      out[i]++
      return out.subarray(0, i + 1)
    }
  }
  return undefined
}

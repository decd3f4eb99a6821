/**
 * Redis glob patterns (KEYS, SCAN MATCH) over bytes: `*`, `?`, `[abc]`,
 * `[^a-z]`, and `\` escapes, as Redis's stringmatchlen. Also the literal
 * prefix of a pattern, which turns a pattern scan into a range scan.
 */

/** True when `subject` matches `pattern` (both bytes). */
export function globMatch(pattern: Buffer, subject: Buffer): boolean {
  return matchFrom(pattern, 0, subject, 0, { steps: 0 })
}

/** Work bound: pathological patterns (`*a*a*a*…b`) give up instead of taking exponential time. */
const MAX_STEPS = 1_000_000

function matchFrom(p: Buffer, pi: number, s: Buffer, si: number, budget: { steps: number }): boolean {
  while (pi < p.length) {
    if (++budget.steps > MAX_STEPS) return false
    const c = p[pi]
    if (c === 0x2a /* * */) {
      while (pi + 1 < p.length && p[pi + 1] === 0x2a) pi++
      if (pi + 1 === p.length) return true
      for (let k = si; k <= s.length; k++) {
        if (matchFrom(p, pi + 1, s, k, budget)) return true
        if (budget.steps > MAX_STEPS) return false
      }
      return false
    }
    if (si >= s.length) return false
    if (c === 0x3f /* ? */) {
      pi++
      si++
      continue
    }
    if (c === 0x5b /* [ */) {
      pi++
      const not = p[pi] === 0x5e /* ^ */
      if (not) pi++
      let matched = false
      for (;;) {
        if (pi >= p.length) {
          pi-- // unterminated class: like Redis, the last char closes it
          break
        }
        if (p[pi] === 0x5c /* \ */ && pi + 1 < p.length) {
          pi++
          if (p[pi] === s[si]) matched = true
        } else if (p[pi] === 0x5d /* ] */) {
          break
        } else if (pi + 2 < p.length && p[pi + 1] === 0x2d /* - */) {
          let lo = p[pi]
          let hi = p[pi + 2]
          if (lo > hi) [lo, hi] = [hi, lo]
          if (s[si] >= lo && s[si] <= hi) matched = true
          pi += 2
        } else if (p[pi] === s[si]) {
          matched = true
        }
        pi++
      }
      if (not) matched = !matched
      if (!matched) return false
      pi++
      si++
      continue
    }
    if (c === 0x5c /* \ */ && pi + 1 < p.length) pi++
    if (p[pi] !== s[si]) return false
    pi++
    si++
  }
  return si === s.length
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

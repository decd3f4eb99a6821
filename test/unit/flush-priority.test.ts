import { describe, expect, it } from 'vitest'
import { flushEnded, flushesDone, flushStarted } from '../../src/compaction/flush-priority.js'

describe('flush priority', () => {
  it('a compaction waiting at a chunk resumes only when every flush of its thread has ended', async () => {
    expect(flushesDone()).toBeUndefined()
    flushStarted()
    flushStarted()
    let resumed = false
    const waiting = flushesDone()!.then(() => (resumed = true))
    flushEnded()
    await new Promise((r) => setImmediate(r))
    expect(resumed).toBe(false)
    flushEnded()
    await waiting
    expect(resumed).toBe(true)
    expect(flushesDone()).toBeUndefined()
  })
})

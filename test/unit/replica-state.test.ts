import * as fs from 'node:fs'
import * as path from 'node:path'
import { afterEach, beforeAll, describe, expect, it } from 'vitest'
import { decodeReplicaState, encodeReplicaState, endOfEpoch, readReplicaState, writeReplicaState, type ReplicaState } from '../../src/engine/replica-state.js'
import { FaultInjectingFileSystem } from '../../src/vfs/fault-injecting-file-system.js'
import { nodeFileSystem } from '../../src/vfs/node-file-system.js'
import { ready, tempDir } from './helpers.js'

let cleanup = (): void => {}
afterEach(() => cleanup())

const state: ReplicaState = {
  nodeId: 'n1',
  promisedEpoch: 42,
  epochStarts: [
    { epoch: 0, startSequence: 1 },
    { epoch: 17, startSequence: 1050 },
    { epoch: 42, startSequence: 2000 },
  ],
}

describe('REPLICA file', () => {
  beforeAll(ready)

  it('round-trips, and its text is what docs/format.md shows', () => {
    const bytes = encodeReplicaState(state)
    expect(bytes.toString('latin1')).toMatch(/^stratadb replica state\nversion 1\nnode n1\npromised 42\nepoch 0 1\nepoch 17 1050\nepoch 42 2000\nxxh32 [0-9a-f]{8}\n$/)
    expect(decodeReplicaState(bytes, 'REPLICA')).toEqual(state)
  })

  it('every flipped byte is STRATA_CORRUPTION, never a different state', () => {
    const bytes = encodeReplicaState(state)
    for (let i = 0; i < bytes.length; i++) {
      const damaged = Buffer.from(bytes)
      damaged[i] ^= 0x01
      expect(() => decodeReplicaState(damaged, 'REPLICA'), `byte ${i}`).toThrow(expect.objectContaining({ code: 'STRATA_CORRUPTION' }))
    }
  })

  it('refuses states that cannot be: bad node ids, epochs out of order or above the promise', () => {
    const bad: ReplicaState[] = [
      { ...state, nodeId: '' },
      { ...state, nodeId: 'a/b' },
      { ...state, promisedEpoch: -1 },
      { ...state, epochStarts: [state.epochStarts[1], state.epochStarts[0]] },
      { ...state, epochStarts: [{ epoch: 1, startSequence: 10 }, { epoch: 2, startSequence: 5 }] },
      { ...state, promisedEpoch: 17 },
    ]
    for (const s of bad) expect(() => encodeReplicaState(s), JSON.stringify(s)).toThrow(expect.objectContaining({ code: 'STRATA_INVALID_ARGUMENT' }))
  })

  it('is written atomically: a crash at any step leaves the old state or the new one, never neither', () => {
    const t = tempDir()
    cleanup = t.cleanup
    expect(readReplicaState(nodeFileSystem, t.dir)).toBeUndefined()
    writeReplicaState(nodeFileSystem, t.dir, state)
    const next: ReplicaState = { ...state, promisedEpoch: 50 }
    // Count the calls of a clean write, then crash at each of them in turn.
    const probe = new FaultInjectingFileSystem(nodeFileSystem)
    writeReplicaState(probe, t.dir, state)
    const sites = [...probe.counts.entries()]
    expect(sites.length).toBeGreaterThan(3)
    for (const [site, calls] of sites) {
      const [op, fileClass] = site.split(':')
      for (let nth = 1; nth <= calls; nth++) {
        writeReplicaState(nodeFileSystem, t.dir, state)
        const faulty = new FaultInjectingFileSystem(nodeFileSystem).inject({ op: op as never, fileClass: fileClass as never, nth, fault: 'crash' })
        expect(() => writeReplicaState(faulty, t.dir, next)).toThrow()
        const after = readReplicaState(nodeFileSystem, t.dir)
        expect([state.promisedEpoch, next.promisedEpoch], `${site} #${nth}`).toContain(after?.promisedEpoch)
        fs.rmSync(path.join(t.dir, 'REPLICA.tmp'), { force: true })
      }
    }
  })

  it('endOfEpoch: the last sequence of an epoch in this log (truncation by epoch)', () => {
    expect(endOfEpoch(state, 0, 2500)).toBe(1049)
    expect(endOfEpoch(state, 17, 2500)).toBe(1999)
    expect(endOfEpoch(state, 42, 2500)).toBe(2500)
    // An epoch this log never had: the end of the newest epoch below it.
    expect(endOfEpoch(state, 20, 2500)).toBe(1999)
    expect(endOfEpoch(state, 99, 2500)).toBe(2500)
  })
})

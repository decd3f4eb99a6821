import * as fs from 'node:fs'
import * as path from 'node:path'
import { afterEach, describe, expect, it } from 'vitest'
import { FaultInjectingFileSystem, SimulatedCrash } from '../../src/vfs/fault-injecting-file-system.js'
import { fileClassOf, writeFully } from '../../src/vfs/file-system.js'
import { nodeFileSystem } from '../../src/vfs/node-file-system.js'
import { tempDir } from './helpers.js'

const srcDir = path.resolve(import.meta.dirname, '..', '..', 'src')

function sourceFiles(dir: string): string[] {
  return fs.readdirSync(dir, { withFileTypes: true }).flatMap((e) => {
    const p = path.join(dir, e.name)
    return e.isDirectory() ? sourceFiles(p) : p.endsWith('.ts') ? [p] : []
  })
}

describe('the file-system seam', () => {
  it('is the only engine module that imports node:fs (the network server and the CLI are not the engine)', () => {
    const importers = sourceFiles(srcDir)
      .filter((f) => !/[/\\]src[/\\](cli|server)[/\\]/.test(f))
      .filter((f) => /from ['"](node:)?fs(\/promises)?['"]|require\(['"](node:)?fs/.test(fs.readFileSync(f, 'utf8')))
      .map((f) => path.relative(srcDir, f))
    expect(importers).toEqual([path.join('vfs', 'node-file-system.ts')])
  })

  it('classifies files by name', () => {
    expect(fileClassOf('/d/000012.log')).toBe('wal')
    expect(fileClassOf('/d/000012.sst')).toBe('table')
    expect(fileClassOf('/d/MANIFEST-000003')).toBe('manifest')
    expect(fileClassOf('/d/CURRENT')).toBe('current')
    expect(fileClassOf('/d/CURRENT.4.tmp')).toBe('temp')
    expect(fileClassOf('/d/notes.txt')).toBe('other')
  })
})

describe('FaultInjectingFileSystem', () => {
  let t: ReturnType<typeof tempDir>
  afterEach(() => t.cleanup())

  it('counts calls per site and fails exactly the nth with the errno asked for', () => {
    t = tempDir()
    const f = new FaultInjectingFileSystem(nodeFileSystem).inject({ op: 'unlink', fileClass: 'wal', nth: 2, fault: 'EIO' })
    for (const n of [1, 2, 3]) fs.writeFileSync(path.join(t.dir, `00000${n}.log`), 'x')
    f.unlink(path.join(t.dir, '000001.log'))
    expect(() => f.unlink(path.join(t.dir, '000002.log'))).toThrow(expect.objectContaining({ code: 'EIO' }))
    f.unlink(path.join(t.dir, '000003.log'))
    expect(fs.readdirSync(t.dir)).toEqual(['000002.log'])
    expect(f.counts.get('unlink:wal')).toBe(3)
    expect(f.fired).toEqual([{ site: 'unlink:wal', call: 2, fault: 'EIO' }])
  })

  it('sticky faults fail every later call until heal()', () => {
    t = tempDir()
    const f = new FaultInjectingFileSystem(nodeFileSystem).inject({ op: 'readdir', fileClass: 'directory', nth: 2, fault: 'ENOSPC', sticky: true })
    f.readdir(t.dir)
    expect(() => f.readdir(t.dir)).toThrow(expect.objectContaining({ code: 'ENOSPC' }))
    expect(() => f.readdir(t.dir)).toThrow(expect.objectContaining({ code: 'ENOSPC' }))
    f.heal()
    expect(f.readdir(t.dir)).toEqual([])
  })

  it('a short write leaves the first half of the bytes in the file, then fails with ENOSPC', () => {
    t = tempDir()
    const f = new FaultInjectingFileSystem(nodeFileSystem).inject({ op: 'write', fileClass: 'wal', nth: 1, fault: 'short-write' })
    const file = f.open(path.join(t.dir, '000001.log'), 'wx')
    expect(() => writeFully(file, Buffer.from('0123456789'), null)).toThrow(expect.objectContaining({ code: 'ENOSPC' }))
    file.close()
    expect(fs.readFileSync(path.join(t.dir, '000001.log'), 'utf8')).toBe('01234')
  })

  it('after a crash no call reaches the disk', async () => {
    t = tempDir()
    const f = new FaultInjectingFileSystem(nodeFileSystem).inject({ op: 'sync', fileClass: 'wal', nth: 1, fault: 'crash' })
    const file = f.open(path.join(t.dir, '000001.log'), 'wx')
    writeFully(file, Buffer.from('abc'), null)
    await expect(file.datasync()).rejects.toBeInstanceOf(SimulatedCrash)
    expect(f.crashed).toBe(true)
    expect(() => writeFully(file, Buffer.from('def'), null)).toThrow(SimulatedCrash)
    expect(() => f.open(path.join(t.dir, '000002.log'), 'wx')).toThrow(SimulatedCrash)
    file.close()
    expect(fs.readdirSync(t.dir)).toEqual(['000001.log'])
    expect(fs.readFileSync(path.join(t.dir, '000001.log'), 'utf8')).toBe('abc')
  })

  it('refuses a short write on anything but a write', () => {
    expect(() => new FaultInjectingFileSystem(nodeFileSystem).inject({ op: 'sync', fileClass: 'wal', nth: 1, fault: 'short-write' })).toThrow(TypeError)
  })
})

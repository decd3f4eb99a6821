/**
 * The import graph of src/ has layers and no circles (issue #17).
 *
 * Every src/**\/*.ts file gets a layer from its folder (LAYERS below). An
 * import may point to its own layer or a lower one, never to a higher one; in
 * a layer of independent members, not to another member either; and no files
 * may import each other in a circle, within a layer either.
 * Type-only imports count like any other: a type that a lower layer needs
 * belongs in a lower module (e.g. src/base/entry.ts), or the arrow would come
 * back as soon as someone turned it into a value import.
 *
 * Imports are found with regular expressions (`import … from`, `export … from`,
 * `import '…'`, a literal `import('…')`), which is enough for this code base's
 * style; the file count and edge count are checked below so that a regex gone
 * blind fails instead of passing on an empty graph.
 *
 * LAYERS_SRC=<dir> points the check at another tree (e.g. an old commit's src/
 * exported to /tmp) to see what it reports there.
 */
import * as fs from 'node:fs'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { describe, expect, it } from 'vitest'

const SRC = process.env.LAYERS_SRC ?? fileURLToPath(new URL('../../src', import.meta.url))

/**
 * Layers, bottom first; a member is a folder of src/ (all it holds) or a file
 * of src/. `independent`: its members do not import each other. Also
 * documented in docs/design.md, "Module map".
 *  - base: vocabulary and seams everything uses: errors, coding, keys, the
 *    entry vocabulary (base/entry.ts: kinds, WriteOp, Found, KeyRange,
 *    internal-key order), the failure report, the file system. options.ts is
 *    here: compaction and the engine read ResolvedOptions, and it needs
 *    nothing above base.
 *  - log, iterators: the record framing and WAL codec; the internal iterator
 *    contract and the iterators over it.
 *  - memtable, tables, manifest: each on the log (the memtable keeps its
 *    entries in WAL records, the manifest uses the record framing) and the
 *    iterator contract, and none on another (tables take no entry vocabulary
 *    from the memtable or the WAL: it is in base). blob/ (blob files of
 *    separated values) is storage too: tables hold references to it only as
 *    bytes, resolved through base's BlobResolver.
 *  - compaction, engine: the moving parts over storage.
 *  - txn: optimistic transactions, on the engine.
 *  - api: the validated facade (db.ts) and the package entry (index.ts).
 *  - cluster: replication with failover (docs/replication.md). Today only
 *    its etcd client (cluster/etcd/), which imports nothing of src/ (base/ at
 *    most); the layer sits where the rest of src/cluster must: above the
 *    engine and the api (it drives and reopens the database), below the
 *    adapters (`strata serve --cluster` in server/ starts it).
 *  - adapters: StrataLevel and the server, each on the public entry only
 *    (inside the server, SERVER_LAYERS below).
 *  - cli: the program; it may start the server.
 */
interface Layer {
  name: string
  members: readonly string[]
  independent?: boolean
}

const LAYERS: readonly Layer[] = [
  { name: 'base', members: ['base/', 'vfs/', 'options.ts'] },
  { name: 'log+iterators', members: ['wal/', 'iterators/'], independent: true },
  { name: 'storage', members: ['memtable/', 'sstable/', 'blob/', 'manifest/'], independent: true },
  { name: 'compaction', members: ['compaction/'] },
  { name: 'engine', members: ['engine/'] },
  { name: 'txn', members: ['txn/'] },
  { name: 'api', members: ['db.ts', 'replicated-db.ts', 'index.ts'] },
  { name: 'cluster', members: ['cluster/'] },
  { name: 'adapters', members: ['level/', 'server/'], independent: true },
  { name: 'cli', members: ['cli/'] },
]

/**
 * Circles known and owned elsewhere, each as its sorted files. An entry here
 * is a debt, not a permission: the check fails once a listed circle is gone,
 * so that the entry is removed with it.
 */
const KNOWN_CYCLES: readonly (readonly string[])[] = []

/**
 * Inside src/server (all of it the server member of `adapters` above), the
 * same kind of layers, bottom first. Also documented in docs/server.md, "Layout".
 *  - shared: what both front ends use (options, context, errors, key locks,
 *    write gate, metrics, auth, addresses).
 *  - http/ and resp/: the two front ends, neither importing the other.
 *  - the files of src/server itself: the package entry (index.ts), startServer
 *    (start-server.ts, which wires both front ends) and `strata serve`.
 */
const SERVER_LAYERS: readonly Layer[] = [
  { name: 'server/shared', members: ['server/shared/'] },
  { name: 'server front ends', members: ['server/http/', 'server/resp/'], independent: true },
  { name: 'server entry', members: ['server/'] },
]

function memberOf(rel: string, layers: readonly Layer[] = LAYERS): { layer: number; member: string } | undefined {
  for (let layer = 0; layer < layers.length; layer++) {
    const member = layers[layer].members.find((m) => (m.endsWith('/') ? rel.startsWith(m) : rel === m))
    if (member !== undefined) return { layer, member }
  }
  return undefined
}

/** Layer index of a path relative to src/ (forward slashes), or -1 when no layer claims it. */
export function layerOf(rel: string): number {
  return memberOf(rel)?.layer ?? -1
}

export interface ImportGraph {
  /** Paths relative to src/, sorted. */
  files: string[]
  /** from → the files it imports (relative to src/). */
  edges: Map<string, Set<string>>
  /** Relative imports that name no file. */
  unresolved: string[]
}

const STATIC_IMPORT =
  /^\s*(?:import|export)\s+(?:type\s+)?(?:\*(?:\s+as\s+\w+)?|\{[^}]*\}|\w+(?:\s*,\s*(?:\{[^}]*\}|\*\s+as\s+\w+))?)\s+from\s*['"]([^'"]+)['"]/gm
const SIDE_EFFECT_IMPORT = /^\s*import\s*['"]([^'"]+)['"]/gm
const DYNAMIC_IMPORT = /\bimport\(\s*['"]([^'"]+)['"]\s*\)/g

/** The module specifiers `source` imports from (static, re-export, side-effect, literal dynamic). */
export function importSpecifiers(source: string): string[] {
  const out: string[] = []
  for (const m of source.matchAll(STATIC_IMPORT)) out.push(m[1])
  for (const m of source.matchAll(SIDE_EFFECT_IMPORT)) out.push(m[1])
  for (const line of source.split('\n')) {
    const t = line.trimStart()
    if (t.startsWith('*') || t.startsWith('//') || t.startsWith('/*')) continue
    for (const m of line.matchAll(DYNAMIC_IMPORT)) out.push(m[1])
  }
  return out
}

function listTs(dir: string, rel = ''): string[] {
  const out: string[] = []
  for (const e of fs.readdirSync(path.join(dir, rel), { withFileTypes: true })) {
    const r = rel === '' ? e.name : `${rel}/${e.name}`
    if (e.isDirectory()) out.push(...listTs(dir, r))
    else if (e.name.endsWith('.ts') && !e.name.endsWith('.d.ts')) out.push(r)
  }
  return out
}

/** Reads every .ts file under `srcDir` and resolves its relative imports. */
export function scanImports(srcDir: string): ImportGraph {
  const files = listTs(srcDir).sort()
  const known = new Set(files)
  const edges = new Map<string, Set<string>>()
  const unresolved: string[] = []
  for (const file of files) {
    const targets = new Set<string>()
    for (const spec of importSpecifiers(fs.readFileSync(path.join(srcDir, file), 'utf8'))) {
      if (!spec.startsWith('.')) continue
      const joined = path.posix.normalize(path.posix.join(path.posix.dirname(file), spec))
      const candidates = [joined.replace(/\.js$/, '.ts'), `${joined}.ts`, `${joined}/index.ts`]
      const target = candidates.find((c) => known.has(c))
      if (target === undefined) unresolved.push(`${file} -> ${spec}`)
      else targets.add(target)
    }
    edges.set(file, targets)
  }
  return { files, edges, unresolved }
}

/**
 * Imports that point from a lower layer to a higher one, or between members of
 * an independent layer, as "from (layer) -> to (layer)". Files no layer of
 * `layers` claims are left out (SERVER_LAYERS claims src/server only).
 */
export function upwardImports(graph: ImportGraph, layers: readonly Layer[] = LAYERS): string[] {
  const out: string[] = []
  for (const [from, targets] of graph.edges) {
    for (const to of targets) {
      const a = memberOf(from, layers)
      const b = memberOf(to, layers)
      if (a === undefined || b === undefined) continue
      const across = a.layer === b.layer && layers[a.layer].independent === true && a.member !== b.member
      if (b.layer > a.layer || across) out.push(`${from} (${layers[a.layer].name}) -> ${to} (${layers[b.layer].name})`)
    }
  }
  return out.sort()
}

/** Strongly connected components of more than one file (or a file importing itself): Tarjan's algorithm. */
export function importCycles(edges: ReadonlyMap<string, ReadonlySet<string>>): string[][] {
  let counter = 0
  const index = new Map<string, number>()
  const low = new Map<string, number>()
  const stack: string[] = []
  const onStack = new Set<string>()
  const out: string[][] = []
  const visit = (v: string): void => {
    index.set(v, counter)
    low.set(v, counter)
    counter++
    stack.push(v)
    onStack.add(v)
    for (const w of edges.get(v) ?? []) {
      if (!index.has(w)) {
        visit(w)
        low.set(v, Math.min(low.get(v)!, low.get(w)!))
      } else if (onStack.has(w)) {
        low.set(v, Math.min(low.get(v)!, index.get(w)!))
      }
    }
    if (low.get(v) !== index.get(v)) return
    const component: string[] = []
    let w: string
    do {
      w = stack.pop()!
      onStack.delete(w)
      component.push(w)
    } while (w !== v)
    if (component.length > 1 || edges.get(v)?.has(v) === true) out.push(component.sort())
  }
  for (const v of [...edges.keys()].sort()) if (!index.has(v)) visit(v)
  return out
}

/** A cycle's files with the imports among them, one line per import. */
function describeCycle(component: string[], edges: ReadonlyMap<string, ReadonlySet<string>>): string {
  const inside = new Set(component)
  const lines: string[] = []
  for (const from of component) for (const to of edges.get(from) ?? []) if (inside.has(to)) lines.push(`  ${from} -> ${to}`)
  return `cycle of ${component.length} files:\n${lines.join('\n')}`
}

describe('layers of src/', () => {
  const graph = scanImports(SRC)

  it('finds the source files and their imports (the regexes still see them)', () => {
    expect(graph.files.length).toBeGreaterThan(100)
    let n = 0
    for (const t of graph.edges.values()) n += t.size
    expect(n).toBeGreaterThan(300)
    expect(graph.unresolved).toEqual([])
  })

  it('gives every file a layer', () => {
    expect(graph.files.filter((f) => layerOf(f) < 0)).toEqual([])
  })

  it('has no import from a lower layer to a higher one', () => {
    const upward = upwardImports(graph)
    if (upward.length > 0) console.error(`imports against the layers:\n${upward.join('\n')}`)
    expect(upward).toEqual([])
  })

  it('keeps src/server in its layers: shared/ under http/ and resp/, which do not import each other', () => {
    expect(graph.files.filter((f) => f.startsWith('server/') && memberOf(f, SERVER_LAYERS) === undefined)).toEqual([])
    expect(graph.files.filter((f) => f.startsWith('server/shared/')).length).toBeGreaterThan(0)
    const upward = upwardImports(graph, SERVER_LAYERS)
    if (upward.length > 0) console.error(`imports against the server's layers:\n${upward.join('\n')}`)
    expect(upward).toEqual([])
  })

  it('has no circle of imports between files', () => {
    const known = new Set(KNOWN_CYCLES.map((c) => c.join(' ')))
    const cycles = importCycles(graph.edges)
      .filter((c) => !known.has(c.join(' ')))
      .map((c) => describeCycle(c, graph.edges))
    if (cycles.length > 0) console.error(cycles.join('\n'))
    expect(cycles).toEqual([])
  })

  it('still has each known circle (remove an entry of KNOWN_CYCLES once its circle is broken)', () => {
    const found = new Set(importCycles(graph.edges).map((c) => c.join(' ')))
    expect(KNOWN_CYCLES.map((c) => c.join(' ')).filter((c) => !found.has(c))).toEqual([])
  })
})

describe('the layer check itself', () => {
  it('parses the import forms this code base uses', () => {
    const source = [
      "import { a, type B } from './a.js'",
      'import type {',
      '  C,',
      "} from '../c.js'",
      "import * as d from './d.js'",
      "import e, { f } from './e.js'",
      "export { g } from './g.js'",
      "export type { H } from './h.js'",
      "export * from './i.js'",
      "import './j.js'",
      "const k = await import('./k.js')",
      " * import { x } from './not-code.js'",
      "// const y = await import('./not-code-either.js')",
      "import * as os from 'node:os'",
    ].join('\n')
    expect(importSpecifiers(source).sort()).toEqual(['../c.js', './a.js', './d.js', './e.js', './g.js', './h.js', './i.js', './j.js', './k.js', 'node:os'])
  })

  it('reports an upward import, an import between independent members, and a circle', () => {
    const edges = new Map<string, Set<string>>([
      ['base/a.ts', new Set(['engine/b.ts'])],
      ['engine/b.ts', new Set(['base/a.ts'])],
      ['wal/c.ts', new Set(['wal/d.ts'])],
      ['wal/d.ts', new Set(['wal/c.ts'])],
      ['db.ts', new Set(['engine/b.ts'])],
      ['sstable/e.ts', new Set(['memtable/f.ts', 'wal/c.ts', 'base/a.ts'])],
      ['memtable/f.ts', new Set(['wal/c.ts'])],
    ])
    const graph: ImportGraph = { files: [...edges.keys()], edges, unresolved: [] }
    expect(upwardImports(graph)).toEqual(['base/a.ts (base) -> engine/b.ts (engine)', 'sstable/e.ts (storage) -> memtable/f.ts (storage)'])
    const server = new Map<string, Set<string>>([
      ['server/shared/a.ts', new Set(['server/http/b.ts', 'base/a.ts'])],
      ['server/http/b.ts', new Set(['server/resp/c.ts', 'server/shared/a.ts'])],
      ['server/resp/c.ts', new Set(['server/shared/a.ts'])],
      ['server/index.ts', new Set(['server/resp/c.ts', 'server/http/b.ts'])],
    ])
    expect(upwardImports({ files: [...server.keys()], edges: server, unresolved: [] }, SERVER_LAYERS)).toEqual([
      'server/http/b.ts (server front ends) -> server/resp/c.ts (server front ends)',
      'server/shared/a.ts (server/shared) -> server/http/b.ts (server front ends)',
    ])
    expect(importCycles(edges)).toEqual([
      ['base/a.ts', 'engine/b.ts'],
      ['wal/c.ts', 'wal/d.ts'],
    ])
  })
})

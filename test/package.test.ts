/**
 * The package as users get it (issue #17): `npm pack`, installed into an
 * empty project with `npm install <tarball> --omit=dev`, must bring no package
 * with an install script (stratadb is pure TypeScript: the benchmark's native
 * peers, classic-level and lmdb, are development dependencies), and every
 * entry point of the exports map must load both with `import` and with
 * `require` (Node >= 20.19 loads ES modules with require(); no module of the
 * graph may use top-level await, or require() of it fails). `strata bench`
 * from that install runs stratadb and says how to add the missing peers.
 * Static checks of package.json and package-lock.json come first (offline).
 *
 * The install reads the npm cache first (--prefer-offline) and goes to the
 * registry only for what the cache lacks. When the registry cannot be reached,
 * the install tests are skipped on a developer machine and fail under CI=true.
 *
 * PACKAGE_ROOT=<dir> points the test at another tree holding package.json,
 * package-lock.json and a built dist/ (e.g. an old commit checked out in /tmp)
 * to see what it reports there.
 */
import { spawnSync, type SpawnSyncReturns } from 'node:child_process'
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { fileURLToPath } from 'node:url'
import { afterAll, beforeAll, describe, expect, it } from 'vitest'

const ROOT = process.env.PACKAGE_ROOT ?? fileURLToPath(new URL('..', import.meta.url))
const NPM = process.platform === 'win32' ? 'npm.cmd' : 'npm'
/** TypeScript's compiler, from this checkout (PACKAGE_ROOT may have no node_modules). */
const TSC = fileURLToPath(new URL('../node_modules/typescript/bin/tsc', import.meta.url))
/** The benchmark's peers, which ship native code and install scripts. */
const PEERS = ['classic-level', 'lmdb']

interface PackageJson {
  name: string
  version: string
  scripts?: Record<string, string>
  gypfile?: boolean
  exports?: Record<string, string | Record<string, string>>
  bin?: Record<string, string>
  dependencies?: Record<string, string>
  devDependencies?: Record<string, string>
  optionalDependencies?: Record<string, string>
  peerDependencies?: Record<string, string>
  [field: string]: unknown
}

const pkg = JSON.parse(fs.readFileSync(path.join(ROOT, 'package.json'), 'utf8')) as PackageJson

/** The exports map's entry points as import specifiers (`stratadb`, `stratadb/level`, ...), package.json aside. */
const ENTRY_POINTS = Object.keys(pkg.exports ?? {})
  .filter((key) => key !== './package.json')
  .map((key) => (key === '.' ? pkg.name : `${pkg.name}/${key.slice(2)}`))

/** A name each entry point must export (so an empty module does not pass). */
const EXPECTED_EXPORT: Record<string, string> = {
  stratadb: 'open',
  'stratadb/level': 'StrataLevel',
  'stratadb/server': 'startServer',
}

/**
 * Install scripts npm runs: the lifecycle scripts, and `node-gyp rebuild` implied by a binding.gyp.
 * `prepare` counts too for a package installed from a tarball, a directory or git (npm >= 11.x
 * lists it among the install scripts to approve): stratadb builds in `prepack` instead.
 */
const INSTALL_SCRIPTS = ['preinstall', 'install', 'postinstall']

function run(command: string, args: string[], cwd: string, timeoutMs = 60_000): SpawnSyncReturns<string> {
  return spawnSync(command, args, {
    cwd,
    encoding: 'utf8',
    timeout: timeoutMs,
    env: { ...process.env, npm_config_audit: 'false', npm_config_fund: 'false', npm_config_update_notifier: 'false' },
  })
}

function output(r: SpawnSyncReturns<string>): string {
  return `exit ${r.status}${r.signal !== null ? ` (${r.signal})` : ''}${r.error !== undefined ? ` ${r.error.message}` : ''}\n${r.stdout}\n${r.stderr}`
}

describe('package.json and package-lock.json', () => {
  it('keeps the native benchmark peers out of what npm installs for users', () => {
    for (const peer of PEERS) {
      expect(pkg.dependencies?.[peer], `${peer} in dependencies`).toBeUndefined()
      expect(pkg.optionalDependencies?.[peer], `${peer} in optionalDependencies`).toBeUndefined()
      expect(pkg.peerDependencies?.[peer], `${peer} in peerDependencies`).toBeUndefined()
      expect(pkg.devDependencies?.[peer], `${peer} in devDependencies`).toBeDefined()
    }
    expect(pkg.optionalDependencies ?? {}).toEqual({})
  })

  it('gives every entry point types, import and require conditions', () => {
    expect(ENTRY_POINTS).toEqual(expect.arrayContaining(Object.keys(EXPECTED_EXPORT)))
    for (const [key, target] of Object.entries(pkg.exports ?? {})) {
      if (key === './package.json') continue
      expect(typeof target, key).toBe('object')
      const conditions = target as Record<string, string>
      expect(Object.keys(conditions)[0], `${key}: "types" must come first`).toBe('types')
      expect(conditions.import, key).toBeDefined()
      expect(conditions.require, key).toBe(conditions.import)
    }
  })

  it('describes where the project lives', () => {
    expect(pkg.repository).toBeDefined()
    expect(pkg.homepage).toBeDefined()
    expect(pkg.bugs).toBeDefined()
    expect((pkg.keywords as string[] | undefined)?.length ?? 0).toBeGreaterThan(0)
  })

  it('has a lock written by npm: an integrity for every package, the manifest\'s dependencies, no runtime install script', () => {
    const lock = JSON.parse(fs.readFileSync(path.join(ROOT, 'package-lock.json'), 'utf8')) as {
      lockfileVersion: number
      packages: Record<string, { version?: string; integrity?: string; link?: boolean; dev?: boolean; hasInstallScript?: boolean } & Partial<PackageJson>>
    }
    expect(lock.lockfileVersion).toBeGreaterThanOrEqual(2)
    const root = lock.packages['']
    expect(root.dependencies ?? {}).toEqual(pkg.dependencies ?? {})
    expect(root.devDependencies ?? {}).toEqual(pkg.devDependencies ?? {})
    expect(root.optionalDependencies ?? {}).toEqual(pkg.optionalDependencies ?? {})
    const entries = Object.entries(lock.packages).filter(([key, entry]) => key !== '' && entry.link !== true)
    expect(entries.length).toBeGreaterThan(20)
    const withoutIntegrity = entries.filter(([, entry]) => typeof entry.integrity !== 'string' || !/^sha(512|384|256|1)-/.test(entry.integrity))
    expect(withoutIntegrity.map(([key]) => key)).toEqual([])
    const runtimeInstallScripts = entries.filter(([, entry]) => entry.dev !== true && entry.hasInstallScript === true)
    expect(runtimeInstallScripts.map(([key]) => key)).toEqual([])
  })
})

describe('the packed package installed into an empty project', () => {
  let tmp = ''
  let project = ''
  let files: string[] = []
  /** Why the install could not reach the registry, when it could not (developer machines only). */
  let offline: string | undefined
  /** What `npm install` printed on stderr (npm >= 11.x warns there about unapproved install scripts). */
  let installOutput = ''

  beforeAll(() => {
    tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-package-test-'))
    // What `npm pack` packs after its prepack script (remove dist/, build), staged apart so that
    // the working tree's dist/ is neither used (it may hold outputs of moved sources) nor rebuilt
    // under other processes' feet. The tree is copied whole: package.json's `files` picks.
    const stage = path.join(tmp, 'stage')
    for (const entry of fs.readdirSync(ROOT)) {
      if (['.git', 'node_modules', 'dist', 'tmp', 'bench-results'].includes(entry)) continue
      fs.cpSync(path.join(ROOT, entry), path.join(stage, entry), { recursive: true })
    }
    // The compiler finds @types/node through node_modules (npm pack leaves it out).
    fs.symlinkSync(fileURLToPath(new URL('../node_modules', import.meta.url)), path.join(stage, 'node_modules'), 'junction')
    const build = run(process.execPath, [TSC, '-p', path.join(stage, 'tsconfig.build.json')], stage)
    expect(build.status, output(build)).toBe(0)
    const pack = run(NPM, ['pack', '--ignore-scripts', '--json', '--pack-destination', tmp], stage)
    expect(pack.status, output(pack)).toBe(0)
    const packed = JSON.parse(pack.stdout) as Array<{ filename: string; files: Array<{ path: string }> }>
    files = packed[0].files.map((f) => f.path)
    const tarball = path.join(tmp, packed[0].filename)

    project = path.join(tmp, 'project')
    fs.mkdirSync(project)
    fs.writeFileSync(path.join(project, 'package.json'), JSON.stringify({ name: 'consumer', version: '1.0.0', private: true }))
    // As a user runs it (scripts allowed, so that npm reports any it would run); the walk below finds them too.
    const install = run(NPM, ['install', tarball, '--omit=dev', '--prefer-offline', '--no-audit', '--no-fund'], project, 90_000)
    if (install.status !== 0) {
      const network = /\b(ENOTFOUND|ENOTCACHED|EAI_AGAIN|ECONNREFUSED|ECONNRESET|ETIMEDOUT|ENETUNREACH|EHOSTUNREACH)\b/.exec(install.stderr)
      if (network !== null && process.env.CI !== 'true') {
        offline = `npm install could not reach the registry (${network[1]})`
        return
      }
    }
    expect(install.status, output(install)).toBe(0)
    installOutput = install.stderr
  }, 120_000)

  afterAll(() => {
    if (tmp !== '') fs.rmSync(tmp, { recursive: true, force: true })
  })

  it('ships the built entry points, types and docs, and no source maps, sources or tests', () => {
    expect(files).toContain('package.json')
    expect(files).toContain('README.md')
    expect(files).toContain('LICENSE')
    const targets = [
      ...Object.values(pkg.exports ?? {}).flatMap((t) => (typeof t === 'string' ? [t] : Object.values(t))),
      ...Object.values(pkg.bin ?? {}),
    ]
    for (const target of new Set(targets)) expect(files, target).toContain(path.posix.normalize(target))
    const unwanted = files.filter((f) => f.endsWith('.map') || /^(src|test|bench|node_modules|docs\/img)\//.test(f) || f.endsWith('.tgz'))
    expect(unwanted).toEqual([])
  })

  it('installs no package with an install script', (ctx) => {
    if (offline !== undefined) ctx.skip(offline)
    const installed = installedPackages(path.join(project, 'node_modules'))
    expect(installed.map((p) => p.name)).toContain(pkg.name)
    for (const dependency of Object.keys(pkg.dependencies ?? {})) expect(installed.map((p) => p.name)).toContain(dependency)
    for (const peer of PEERS) expect(installed.map((p) => p.name)).not.toContain(peer)
    const withScripts = installed
      .filter((p) => INSTALL_SCRIPTS.some((s) => p.json.scripts?.[s] !== undefined) || p.json.gypfile === true || fs.existsSync(path.join(p.dir, 'binding.gyp')))
      .map((p) => `${p.name}@${p.json.version} (${path.relative(project, p.dir)})`)
    expect(withScripts).toEqual([])
    const own = installed.find((p) => p.name === pkg.name)!
    expect(own.json.scripts?.prepare, 'stratadb\'s prepare script (an install script for tarball and git installs)').toBeUndefined()
    expect(installOutput).not.toMatch(/install.scripts/i)
  })

  it('loads every entry point with import and with require, and works through both', (ctx) => {
    if (offline !== undefined) ctx.skip(offline)
    const script = (kind: 'import' | 'require'): string => `
      const load = ${kind === 'import' ? '(s) => import(s)' : 'async (s) => require(s)'}
      const out = {}
      const dir = require('node:fs').mkdtempSync(require('node:path').join(require('node:os').tmpdir(), 'strata-package-db-'))
      ;(async () => {
        for (const spec of ${JSON.stringify(ENTRY_POINTS)}) out[spec] = Object.keys(await load(spec)).sort()
        const { open } = await load('stratadb')
        const db = await open(dir + '/native')
        await db.put('k', 'v')
        out.get = db.getSync('k')?.toString()
        await db.close()
        const { StrataLevel } = await load('stratadb/level')
        const level = new StrataLevel(dir + '/level')
        await level.put('a', 'b')
        out.level = await level.get('a')
        await level.close()
        require('node:fs').rmSync(dir, { recursive: true, force: true })
        console.log(JSON.stringify(out))
      })().catch((err) => { console.error(err); process.exit(1) })
    `
    fs.writeFileSync(path.join(project, 'check-import.mjs'), `import { createRequire } from 'node:module'\nconst require = createRequire(import.meta.url)\n${script('import')}`)
    fs.writeFileSync(path.join(project, 'check-require.cjs'), script('require'))
    const results: Record<string, Record<string, unknown>> = {}
    for (const file of ['check-import.mjs', 'check-require.cjs']) {
      const r = run(process.execPath, [file], project)
      expect(r.status, `${file}: ${output(r)}`).toBe(0)
      results[file] = JSON.parse(r.stdout) as Record<string, unknown>
    }
    for (const [file, out] of Object.entries(results)) {
      expect(out.get, file).toBe('v')
      expect(out.level, file).toBe('b')
      for (const [spec, name] of Object.entries(EXPECTED_EXPORT)) expect(out[spec], `${file}: ${spec}`).toContain(name)
    }
    for (const spec of ENTRY_POINTS) expect(results['check-require.cjs'][spec], spec).toEqual(results['check-import.mjs'][spec])
  })

  it('gives TypeScript the types of every entry point, from an ES module and from a CommonJS module', (ctx) => {
    if (offline !== undefined) ctx.skip(offline)
    const names = ENTRY_POINTS.map((_, i) => `m${i}`)
    const used = `export const used = [${ENTRY_POINTS.map((spec, i) => `${names[i]}.${EXPECTED_EXPORT[spec] ?? 'constructor'}`).join(', ')}]\n`
    fs.writeFileSync(path.join(project, 'types-esm.mts'), ENTRY_POINTS.map((spec, i) => `import * as ${names[i]} from '${spec}'\n`).join('') + used)
    fs.writeFileSync(path.join(project, 'types-cjs.cts'), ENTRY_POINTS.map((spec, i) => `import ${names[i]} = require('${spec}')\n`).join('') + used)
    const typeRoots = fileURLToPath(new URL('../node_modules/@types', import.meta.url))
    const args = ['--noEmit', '--strict', '--module', 'nodenext', '--moduleResolution', 'nodenext', '--target', 'es2022', '--typeRoots', typeRoots, '--types', 'node']
    const r = run(process.execPath, [TSC, ...args, 'types-esm.mts', 'types-cjs.cts'], project)
    expect(r.status, output(r)).toBe(0)
  })

  it('runs `strata bench` without the peers and names the npm command that adds them', (ctx) => {
    if (offline !== undefined) ctx.skip(offline)
    const out = path.join(tmp, 'bench.json')
    const strata = path.join(project, 'node_modules', '.bin', process.platform === 'win32' ? 'strata.cmd' : 'strata')
    const r = run(strata, ['bench', 'fillseq', '--num', '500', '--engines', ['stratadb', ...PEERS].join(','), '--no-progress', '--out', out], project)
    expect(r.status, output(r)).toBe(0)
    const command = `npm install --no-save ${PEERS.map((p) => `${p}@${pkg.devDependencies?.[p]}`).join(' ')}`
    for (const peer of PEERS) {
      const line = r.stdout.split('\n').find((l) => l.trimStart().startsWith(peer) && l.includes('NOT AVAILABLE'))
      expect(line, `${peer}: ${output(r)}`).toBeDefined()
      expect(line).toContain(`${peer} is not installed`)
      expect(line).toContain(command)
    }
    const report = JSON.parse(fs.readFileSync(out, 'utf8')) as { engines: Array<{ name: string; available: boolean }>; results: Array<{ engine: string; ok: boolean }> }
    expect(report.engines.map((e) => [e.name, e.available])).toEqual([['stratadb', true], ...PEERS.map((p) => [p, false])])
    expect(report.results.filter((x) => x.engine === 'stratadb' && x.ok)).toHaveLength(1)
  })
})

/** Every package under a node_modules tree (scoped and nested ones included). */
function installedPackages(nodeModules: string): Array<{ name: string; dir: string; json: PackageJson }> {
  const found: Array<{ name: string; dir: string; json: PackageJson }> = []
  const visitPackage = (dir: string): void => {
    const file = path.join(dir, 'package.json')
    if (fs.existsSync(file)) {
      const json = JSON.parse(fs.readFileSync(file, 'utf8')) as PackageJson
      found.push({ name: json.name, dir, json })
    }
    const nested = path.join(dir, 'node_modules')
    if (fs.existsSync(nested)) visitTree(nested)
  }
  const visitTree = (tree: string): void => {
    for (const entry of fs.readdirSync(tree, { withFileTypes: true })) {
      if (entry.name.startsWith('.')) continue
      const dir = path.join(tree, entry.name)
      if (!entry.isDirectory() && !entry.isSymbolicLink()) continue
      if (entry.name.startsWith('@')) {
        for (const scoped of fs.readdirSync(dir)) visitPackage(path.join(dir, scoped))
      } else {
        visitPackage(dir)
      }
    }
  }
  if (fs.existsSync(nodeModules)) visitTree(nodeModules)
  return found
}

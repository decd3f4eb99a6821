// Range reads of 100 entries from random keys, and whole scans, on one stratadb database in one
// process: `nextSync()` against `for await` (a promise per entry), 3 rounds. The database is a kept
// bench database of 1M keys:
//   node dist/cli/strata.js bench fillrandom --num 1000000 --engines stratadb --dir /tmp/sk
//   node bench/seek-sync-probe.mjs /tmp/sk/run-1/stratadb [seeks, default 50000]
import path from 'node:path'
const { open } = await import(path.resolve('dist/index.js'))
const { KeyFormat } = await import(path.resolve('dist/cli/bench/key-stream.js'))
if (process.argv[2] === undefined) throw new Error('usage: node bench/seek-sync-probe.mjs <stratadb database dir> [seeks]')
const S = Number(process.argv[3] ?? 50_000)
const db = await open(process.argv[2], { createIfMissing: false })
const keys = new KeyFormat(16)
const starts = Array.from({ length: S }, () => keys.encode(Math.floor(Math.random() * 1_000_000)))
const perSecond = (n, t) => Math.round(n / ((performance.now() - t) / 1000))
for (let round = 1; round <= 3; round++) {
  let t = performance.now()
  for (const s of starts) {
    const it = db.iterator({ gte: s, limit: 100 })
    for (let e = it.nextSync(); e !== undefined; e = it.nextSync());
  }
  const sync = perSecond(S, t)
  t = performance.now()
  for (const s of starts) for await (const _ of db.iterator({ gte: s, limit: 100 }));
  const awaited = perSecond(S, t)
  t = performance.now()
  let n = 0
  const it = db.iterator()
  for (let e = it.nextSync(); e !== undefined; e = it.nextSync()) n++
  const scanSync = perSecond(n, t)
  t = performance.now()
  let m = 0
  for await (const _ of db.iterator()) m++
  const scanAwaited = perSecond(m, t)
  console.log(`round ${round}: seeks/s nextSync ${sync}, for await ${awaited}; scan entries/s nextSync ${scanSync}, for await ${scanAwaited}`)
}
await db.close()

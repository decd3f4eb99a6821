// What the first touch of fresh anonymous memory costs on this machine: writes one byte per 4 KiB
// page of a new 100 MiB Buffer, then again (pages already mapped). Prints µs per page, 3 rounds.
//   node bench/first-touch-probe.mjs
const PAGE = 4096
for (let round = 0; round < 3; round++) {
  const b = Buffer.allocUnsafeSlow(100 << 20)
  const pages = b.length / PAGE
  let t = performance.now()
  for (let i = 0; i < b.length; i += PAGE) b[i] = 1
  const first = performance.now() - t
  t = performance.now()
  for (let i = 0; i < b.length; i += PAGE) b[i] = 2
  const second = performance.now() - t
  console.log(`first touch ${((first * 1000) / pages).toFixed(2)} µs per page, second ${((second * 1000) / pages).toFixed(3)} µs`)
}

#!/usr/bin/env node
/**
 * Renders the SVG chart of `strata bench --chart` with headless Chromium and
 * saves a PNG screenshot, to check that the chart really renders (not just
 * that the file was written).
 *
 *   node bench/render-chart.mjs chart.svg [chart.png]
 *
 * Needs playwright-core (a devDependency) and a Chromium binary: Debian's
 * `apt-get install chromium` (/usr/bin/chromium), or CHROMIUM_PATH. Exits
 * non-zero when the browser reports an SVG parse error or draws no line.
 */
import * as fs from 'node:fs'
import * as os from 'node:os'
import * as path from 'node:path'
import { pathToFileURL } from 'node:url'
import { chromium } from 'playwright-core'

const [svgArg, pngArg] = process.argv.slice(2)
if (svgArg === undefined) {
  console.error('usage: node bench/render-chart.mjs chart.svg [chart.png]')
  process.exit(2)
}
const svgPath = path.resolve(svgArg)
const pngPath = path.resolve(pngArg ?? svgPath.replace(/\.svg$/i, '') + '.png')
const executablePath = process.env.CHROMIUM_PATH ?? '/usr/bin/chromium'

const svg = fs.readFileSync(svgPath, 'utf8')
const width = Number(svg.match(/<svg[^>]*\bwidth="(\d+(?:\.\d+)?)"/)?.[1] ?? 1100)
const height = Number(svg.match(/<svg[^>]*\bheight="(\d+(?:\.\d+)?)"/)?.[1] ?? 800)

// A new, empty profile each time, removed afterwards.
const userDataDir = fs.mkdtempSync(path.join(os.tmpdir(), 'strata-chart-chromium-'))
const context = await chromium.launchPersistentContext(userDataDir, {
  executablePath,
  headless: true,
  viewport: { width: Math.ceil(width), height: Math.min(Math.ceil(height), 16384) },
  args: [
    '--headless',
    '--no-sandbox',
    '--disable-gpu',
    '--disable-quic',
    '--no-first-run',
    '--disable-background-networking',
    '--disable-component-update',
    '--disable-sync',
  ],
})
try {
  const page = context.pages()[0] ?? (await context.newPage())
  await page.goto(pathToFileURL(svgPath).href)
  const check = await page.evaluate(() => {
    const root = document.documentElement
    return {
      root: root.tagName,
      parseError: document.getElementsByTagName('parsererror').length > 0 ? (document.getElementsByTagName('parsererror')[0].textContent ?? 'parse error') : undefined,
      polylines: document.getElementsByTagName('polyline').length,
      circles: document.getElementsByTagName('circle').length,
      texts: document.getElementsByTagName('text').length,
      box: root.getBoundingClientRect ? { width: root.getBoundingClientRect().width, height: root.getBoundingClientRect().height } : undefined,
    }
  })
  // The viewport is the SVG's size: fullPage screenshots hang on an SVG document (no body to measure).
  await page.screenshot({ path: pngPath })
  console.log(`${pngPath}: ${check.root} ${check.box ? `${Math.round(check.box.width)}x${Math.round(check.box.height)}` : ''}, ${check.polylines} lines, ${check.circles} points, ${check.texts} labels`)
  if (check.parseError !== undefined) {
    console.error(`SVG parse error: ${check.parseError}`)
    process.exitCode = 1
  } else if (check.root.toLowerCase() !== 'svg' || check.polylines + check.circles === 0) {
    console.error('the chart draws no data')
    process.exitCode = 1
  }
} finally {
  await context.close()
  fs.rmSync(userDataDir, { recursive: true, force: true })
}

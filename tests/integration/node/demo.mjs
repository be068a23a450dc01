// demo.mjs: drives the /demo upload page in headless Chromium (Debian's, with playwright-core)
// for tests/integration/test_demo.py: opens url, picks the file, and waits until the page shows
// the thumbnail (want "thumbnail") or an error (want "error"); saves a screenshot; prints what
// the page shows as JSON.
import { chromium } from 'playwright-core'

const [url, file, screenshot, want] = process.argv.slice(2)
const browser = await chromium.launch({
  executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
  args: ['--no-sandbox'], // root in a container: Chromium's own sandbox cannot start
})
try {
  const page = await browser.newPage()
  const console_ = []
  page.on('console', (m) => console_.push(m.text()))
  await page.goto(url)
  await page.setInputFiles('#pick', file)
  if (want === 'thumbnail') {
    await page.waitForFunction(() => {
      const img = document.querySelector('img.thumb')
      return img && img.complete && img.naturalWidth > 0
    }, null, { timeout: 60000 })
  } else {
    await page.waitForSelector('.error', { timeout: 30000 })
  }
  const shown = await page.evaluate(() => ({
    thumbnail: document.querySelector('img.thumb')?.src ?? null,
    width: document.querySelector('img.thumb')?.naturalWidth ?? 0,
    error: document.querySelector('.error')?.textContent ?? null,
    progress: [...document.querySelectorAll('progress')].map((p) => p.value),
    status: document.getElementById('status').textContent,
  }))
  await page.screenshot({ path: screenshot, fullPage: true })
  process.stdout.write(JSON.stringify({ ...shown, console: console_ }))
} finally {
  await browser.close()
}

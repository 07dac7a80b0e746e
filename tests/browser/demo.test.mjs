// `tally serve --demo` in a real browser: the dashboard it prints opens with the key it prints,
// shows 30 days of the shop's traffic equal to the API's numbers, and moves with the live
// visits. Prints the time to first render of the demo dashboard and its transfer size.
//
// With TALLY_SCREENSHOT=FILE it also saves a screenshot of the dashboard there
// (`scripts/screenshot` makes the README's picture this way, from a release build).

import { test } from 'node:test';
import assert from 'node:assert/strict';
import { spawn } from 'node:child_process';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { TALLY_BIN, launchBrowser } from './harness.mjs';

/** Starts the demo on a fresh directory; resolves with its URL and key once it printed them. */
async function startDemo() {
  const dataDir = mkdtempSync(path.join(tmpdir(), 'tally-demo-'));
  const child = spawn(TALLY_BIN, ['serve', '--demo', '--listen', '127.0.0.1:0', '--data-dir', dataDir], {
    stdio: ['ignore', 'pipe', 'pipe'],
    env: { ...process.env, TALLY_LOG: 'warn' },
  });
  let log = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => (log = (log + chunk).slice(-16_384)));
  const stop = () => {
    child.kill('SIGKILL');
    rmSync(dataDir, { recursive: true, force: true });
  };
  process.on('exit', stop);
  const seen = {};
  const lines = createInterface({ input: child.stdout });
  await new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error(`the demo printed no key within 120 s:\n${log}`)), 120_000);
    child.once('exit', (code) => reject(new Error(`the demo exited (${code}):\n${log}`)));
    lines.on('line', (line) => {
      const [, name, value] = /^(listening on|demo dashboard:|demo key:) (\S+)$/.exec(line) || [];
      if (name) seen[name] = value;
      if (seen['demo key:']) {
        clearTimeout(timer);
        resolve();
      }
    });
  });
  return { url: seen['demo dashboard:'], key: seen['demo key:'], listening: seen['listening on'], stop };
}

test('the demo dashboard opens with the printed key, equals the API, and moves', { timeout: 180_000 }, async () => {
  const demo = await startDemo();
  const browser = await launchBrowser();
  try {
    assert.equal(demo.url, `${demo.listening}/`);
    const context = await browser.newContext({ viewport: { width: 1280, height: 1000 }, colorScheme: 'light' });
    const page = await context.newPage();
    const start = `${demo.url}?site=shop.example&period=30d`;
    await page.goto(start);
    await page.getByLabel('API key').fill(demo.key);
    await page.getByRole('button', { name: 'Sign in' }).click();
    await page.getByTestId('metric-visitors').waitFor();

    // The first load proper (the key already in the tab), timed in the browser.
    let bytes = 0;
    const cdp = await context.newCDPSession(page);
    await cdp.send('Network.enable');
    // A first load: nothing from the browser's cache (the files carry ETags).
    await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
    cdp.on('Network.loadingFinished', (e) => (bytes += e.encodedDataLength));
    await page.goto(start);
    await page.waitForFunction(() => performance.getEntriesByName('tally:first-metrics').length > 0, null, { timeout: 30_000 });
    const firstRender = await page.evaluate(() => performance.getEntriesByName('tally:first-metrics')[0].startTime);
    await page.waitForFunction(() => [...document.querySelectorAll('[data-testid^="panel-"]')]
      .every((p) => p.dataset.state && p.dataset.state !== 'loading'), null, { timeout: 30_000 });
    console.log(`demo dashboard: first render ${Math.round(firstRender)} ms, ${bytes} bytes on the wire for the whole first load`);

    // The shop's last 30 days as the API counts them.
    const api = await fetch(`${demo.listening}/api/v2/query`, {
      method: 'POST',
      headers: { authorization: `Bearer ${demo.key}`, 'content-type': 'application/json' },
      body: JSON.stringify({ site_id: 'shop.example', metrics: ['visitors', 'pageviews'], date_range: '30d' }),
    }).then((r) => r.json());
    const [visitors, pageviews] = api.results[0].metrics;
    assert.ok(visitors > 1000, `the demo has traffic: ${visitors}`);
    assert.equal(await page.getByTestId('metric-visitors').getAttribute('data-raw'), String(visitors));
    assert.equal(await page.getByTestId('metric-pageviews').getAttribute('data-raw'), String(pageviews));
    const sites = await page.getByTestId('site-switcher').locator('option').allTextContents();
    for (const site of ['shop.example', 'blog.example', 'docs.example']) {
      assert.ok(sites.some((s) => s.includes(site)), `the switcher offers ${site}: ${sites}`);
    }
    // The live visits reach the current-visitors count without a reload (it refreshes every 10 s).
    await page.waitForFunction(() => Number(document.querySelector('[data-testid=current-visitors]')?.dataset.raw) > 0,
      null, { timeout: 60_000 });
    if (process.env.TALLY_SCREENSHOT) {
      await page.screenshot({ path: process.env.TALLY_SCREENSHOT, fullPage: false });
      console.log(`screenshot saved to ${process.env.TALLY_SCREENSHOT}`);
    }
  } finally {
    await browser.close();
    demo.stop();
  }
});

// The merchant dashboard at `/` (core/src/http/dashboard/) in a real browser, against
// `tally serve`: every number it shows equals the Stats API's answer (the props panel lists the
// names of `POST /api/v2/props` and breaks the chosen one down, kept in the URL), a click on a row filters
// the whole page (and the URL, which reloads to the same view), Realtime's lists equal the API's answer
// for the last 30 minutes the page asked (its `data-from`/`data-to`), current visitors rise without a
// reload, a phone-width viewport does not scroll sideways, a wrong key gets the sign-in page, and
// the first load's size and time are printed.
//
// TALLY_DASHBOARD_DIR=core/src/http/dashboard serves the dashboard's files from that folder
// (through a small proxy in front of the server) instead of the binary's embedded copy, to try
// edits without a rebuild.

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { createServer, request } from 'node:http';
import { readFileSync, writeFileSync, existsSync } from 'node:fs';
import path from 'node:path';
import { startTally, launchBrowser, eventually, BROWSER_UA } from './harness.mjs';

const SITE = 'dash.example';
const PAGE = 10;
const TOP = ['visitors', 'visits', 'pageviews', 'views_per_visit', 'bounce_rate', 'visit_duration'];
// The panels compared, with the queries the dashboard asks.
const PANELS = {
  pages: { dim: 'event:page', metrics: ['visitors', 'pageviews'] },
  'entry-pages': { dim: 'visit:entry_page', metrics: ['visitors', 'visits'] },
  sources: { dim: 'visit:source', metrics: ['visitors', 'visits'] },
  countries: { dim: 'visit:country', metrics: ['visitors', 'percentage'] },
  devices: { dim: 'visit:device', metrics: ['visitors', 'percentage'] },
  browsers: { dim: 'visit:browser', metrics: ['visitors', 'percentage'] },
  os: { dim: 'visit:os', metrics: ['visitors', 'percentage'] },
};

let tally, browser, proxy, base, key;

/** A few hundred events over the last five days: several pages, sources, countries, devices. */
function history() {
  let seed = 7;
  const rnd = () => ((seed = (Math.imul(seed, 1103515245) + 12345) >>> 0) / 2 ** 32);
  const pick = (list) => list[Math.floor(rnd() ** 1.5 * list.length)];
  const pages = ['/', '/pricing', '/docs', '/blog', '/blog/launch', '/about', '/contact', '/checkout', '/signup', '/careers', '/legal', '/jobs'];
  const referrers = ['', 'https://www.google.com/', 'https://news.ycombinator.com/', 'https://twitter.com/', 'https://duckduckgo.com/', 'https://github.com/'];
  const agents = [
    BROWSER_UA,
    'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15',
    'Mozilla/5.0 (iPhone; CPU iPhone OS 17_2 like Mac OS X) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Mobile/15E148 Safari/604.1',
    'Mozilla/5.0 (Windows NT 10.0; Win64; x64; rv:121.0) Gecko/20100101 Firefox/121.0',
  ];
  const lines = [];
  const today = Date.UTC(new Date().getUTCFullYear(), new Date().getUTCMonth(), new Date().getUTCDate());
  for (let v = 0; v < 140; v++) {
    let t = today - (1 + Math.floor(rnd() * 5)) * 864e5 + (7 + rnd() * 12) * 36e5;
    const first = pick(pages);
    const utm = rnd() < 0.2 ? '?utm_source=newsletter&utm_medium=email' : '';
    const common = { domain: SITE, user_agent: pick(agents), visitor: `u${v}`, country: pick(['DE', 'US', 'FR', 'GB', 'JP', 'BR']) };
    const views = 1 + Math.floor(rnd() ** 2 * 4);
    for (let i = 0; i < views; i++) {
      const page = i ? pick(pages) : first;
      lines.push({ ...common, name: 'pageview', url: `https://${SITE}${page}${i ? '' : utm}`, referrer: i ? '' : pick(referrers), timestamp: new Date(t).toISOString() });
      // Every Signup has a plan; every third visitor's Signups have a coupon too.
      const coupon = v % 3 === 0 ? { coupon: pick(['WELCOME', 'SPRING']) } : {};
      if (rnd() < 0.15) lines.push({ ...common, name: 'Signup', url: `https://${SITE}${page}`, props: { plan: pick(['free', 'pro']), ...coupon }, timestamp: new Date(t + 2000).toISOString() });
      t += 20e3 + rnd() * 200e3;
    }
  }
  return lines.map((l) => JSON.stringify(l)).join('\n') + '\n';
}

/** Serves the dashboard's files from a folder and forwards everything else to tally. */
async function dashboardProxy(dir, target) {
  const types = { '.html': 'text/html; charset=utf-8', '.js': 'text/javascript', '.css': 'text/css', '.svg': 'image/svg+xml' };
  const server = createServer((req, res) => {
    const { pathname } = new URL(req.url, 'http://x');
    const name = pathname === '/' ? 'index.html' : pathname.startsWith('/dashboard/') ? pathname.slice(11) : null;
    if (name !== null) {
      const file = path.join(dir, path.basename(name));
      if (!existsSync(file)) return res.writeHead(404).end('not found');
      res.writeHead(200, { 'Content-Type': types[path.extname(file)] || 'application/octet-stream', 'Cache-Control': 'no-cache' });
      return res.end(readFileSync(file));
    }
    const { hostname, port } = new URL(target);
    const up = request({ hostname, port, path: req.url, method: req.method, headers: req.headers }, (r) => {
      res.writeHead(r.statusCode, r.headers);
      r.pipe(res);
    });
    up.on('error', () => res.writeHead(502).end());
    req.pipe(up);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return { url: `http://127.0.0.1:${server.address().port}`, close: () => new Promise((r) => { server.closeAllConnections(); server.close(r); }) };
}

before(async () => {
  tally = await startTally();
  tally.addSite(SITE);
  key = tally.createKey(SITE);
  await tally.waitForSite(key, SITE);
  const file = path.join(tally.dataDir, 'history.ndjson');
  writeFileSync(file, history());
  tally.cli(['import', file, '--no-progress']);
  base = tally.url;
  if (process.env.TALLY_DASHBOARD_DIR) {
    proxy = await dashboardProxy(path.resolve(process.env.TALLY_DASHBOARD_DIR), tally.url);
    base = proxy.url;
  }
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await proxy?.close();
  await tally?.stop();
});

const filtersOf = (filters) => filters.map(([d, v]) => ['is', d, [v]]);

/** The prop names `POST /api/v2/props` lists, most events first. */
async function propNames(range, filters) {
  const res = await tally.post('/api/v2/props', { site_id: SITE, date_range: range, filters: filtersOf(filters) }, { Authorization: `Bearer ${key}` });
  const text = await res.text();
  assert.equal(res.status, 200, `POST /api/v2/props: ${text}`);
  return JSON.parse(text).props.map((p) => p.name);
}

/** Checks the props panel against the API: the listed names, the chosen one, its rows. */
async function checkProps(page, range, filters, chosen) {
  const names = await propNames(range, filters);
  const panel = page.getByTestId('panel-props');
  assert.deepEqual(await panel.getByTestId('prop-tab').evaluateAll((os) => os.map((o) => o.dataset.value)), names, 'prop names');
  if (!names.length) {
    assert.match(await panel.getByTestId('note').textContent(), /No custom event properties/);
    assert.equal(await panel.getByTestId('prop-name').count(), 0);
    return names;
  }
  const name = names.includes(chosen) ? chosen : names[0];
  assert.equal(await panel.getByTestId('prop-name').inputValue(), name, 'the chosen prop');
  const api = await tally.query(key, {
    site_id: SITE, metrics: ['visitors', 'events'], date_range: range, dimensions: [`event:props:${name}`], filters: filtersOf(filters),
    pagination: { limit: PAGE, offset: 0 }, include: { total_rows: true },
  });
  const shown = await panel.getByTestId('row').evaluateAll((rows) => rows.map((r) => [
    r.dataset.value,
    r.querySelector('[data-testid=row-visitors]').dataset.raw,
    r.querySelector('[data-testid=row-events]').dataset.raw,
  ]));
  assert.ok(api.results.length > 0, `the API has rows for event:props:${name}`);
  assert.deepEqual(shown, api.results.map((r) => [r.dimensions[0], String(r.metrics[0]), String(r.metrics[1])]), `props panel (${name})`);
  assert.equal(await panel.getAttribute('data-total'), String(api.meta.total_rows), `total rows of event:props:${name}`);
  return names;
}

/** Waits until the overview and every panel have answered (none loading). */
async function settled(page) {
  await page.waitForFunction(() => {
    const boxes = [document.getElementById('metrics'), document.getElementById('chart'), ...document.querySelectorAll('[data-testid^="panel-"]')];
    return boxes.length > 3 && boxes.every((b) => b.dataset.state && b.dataset.state !== 'loading');
  }, null, { timeout: 15_000 });
}

/** Checks the top metrics and the compared panels against the API, under `filters`. */
async function checkNumbers(page, filters) {
  const noVpv = filters.some(([d]) => d === 'event:page');
  const metrics = TOP.filter((m) => !(noVpv && m === 'views_per_visit'));
  const answer = await tally.query(key, { site_id: SITE, metrics, date_range: '7d', filters: filtersOf(filters), include: { comparisons: { mode: 'previous_period' } } });
  const row = answer.results[0];
  for (const [i, m] of metrics.entries()) {
    const el = page.getByTestId(`metric-${m}`);
    assert.equal(await el.getAttribute('data-raw'), String(row.metrics[i] ?? ''), `metric ${m} (data-raw)`);
    if (m === 'visitors') assert.equal((await el.textContent()).replace(/,/g, ''), String(row.metrics[i]), 'visitors as shown');
    const change = row.comparison.change[i];
    if (change != null) assert.equal(await page.getByTestId(`change-${m}`).getAttribute('data-raw'), String(change), `change of ${m}`);
  }
  for (const [id, { dim, metrics: ms }] of Object.entries(PANELS)) {
    const api = await tally.query(key, {
      site_id: SITE, metrics: ms, date_range: '7d', dimensions: [dim], filters: filtersOf(filters),
      pagination: { limit: PAGE, offset: 0 }, include: { total_rows: true },
    });
    const panel = page.getByTestId(`panel-${id}`);
    const shown = await panel.getByTestId('row').evaluateAll((rows, m2) => rows.map((r) => [
      r.dataset.value,
      r.querySelector('[data-testid=row-visitors]').dataset.raw,
      r.querySelector(`[data-testid=row-${m2}]`).dataset.raw,
    ]), ms[1]);
    const expected = api.results.map((r) => [r.dimensions[0], String(r.metrics[0]), String(r.metrics[1] ?? '')]);
    assert.ok(expected.length > 0, `the API has rows for ${id}`);
    assert.deepEqual(shown, expected, `panel ${id}`);
    assert.equal(await panel.getAttribute('data-total'), String(api.meta.total_rows), `total rows of ${id}`);
  }
  const names = await checkProps(page, '7d', filters, new URL(page.url()).searchParams.get('prop'));
  if (!filters.length) assert.deepEqual(names, ['plan', 'coupon'], 'the history\'s props, most events first');
  return row;
}

async function signIn(page, withKey = key) {
  await page.getByLabel('API key').fill(withKey);
  await page.getByRole('button', { name: 'Sign in' }).click();
}

test('first load: numbers equal the API; a row filters every panel; the URL reloads to the same view', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  const page = await context.newPage();
  // The page runs under its Content-Security-Policy: nothing it does may be refused by it.
  const refused = [];
  page.on('console', (m) => /Content Security Policy/i.test(m.text()) && refused.push(m.text()));
  const start = `${base}/?site=${SITE}&period=7d`;
  await page.goto(start);
  await signIn(page);
  await settled(page);

  // The first load proper, with the key already in the tab's sessionStorage: bytes and time.
  const bodies = [];
  const onResponse = (r) => bodies.push(r.body().then((b) => ({ url: r.url(), bytes: b.length }), () => ({ url: r.url(), bytes: 0 })));
  page.on('response', onResponse);
  const cdp = await context.newCDPSession(page);
  await cdp.send('Network.enable');
  // A first load: nothing from the browser's cache (the files carry ETags).
  await cdp.send('Network.setCacheDisabled', { cacheDisabled: true });
  let wire = 0;
  cdp.on('Network.loadingFinished', (e) => (wire += e.encodedDataLength));
  await page.goto(start);
  await settled(page);
  const firstRender = await page.evaluate(() => performance.getEntriesByName('tally:first-metrics')[0]?.startTime);
  page.off('response', onResponse);
  const loaded = await Promise.all(bodies);
  const total = loaded.reduce((a, r) => a + r.bytes, 0);
  const assets = loaded.filter((r) => !new URL(r.url).pathname.startsWith('/api/')).reduce((a, r) => a + r.bytes, 0);
  console.log(`dashboard first load: ${total} bytes transferred, first render ${Math.round(firstRender)} ms` +
    ` (files ${assets} bytes, API answers ${total - assets} bytes, ${loaded.length} requests; ${wire} bytes on the wire with headers)`);
  assert.ok(firstRender > 0, 'the metrics were shown');
  assert.ok(assets < 80_000, `the dashboard's files are small (${assets} bytes)`);

  await checkNumbers(page, []);
  assert.deepEqual(refused, [], 'the Content-Security-Policy refused nothing');
  const { meta } = await tally.query(key, { site_id: SITE, metrics: ['visitors'], date_range: '7d' });
  const freshness = page.getByTestId('freshness');
  // Once everything is counted, the freshness follows the clock: what the page shows is no later
  // than what the API says now, and at most a minute older.
  const shownUntil = Date.parse(await freshness.getAttribute('data-raw'));
  const apiUntil = Date.parse(meta.data_complete_until);
  assert.ok(shownUntil <= apiUntil && apiUntil - shownUntil < 60_000, `freshness ${shownUntil} against ${apiUntil}`);
  assert.match(await freshness.textContent(), /^Complete up to \d\d:\d\d:\d\d, \d+ (s|min|h|days?) ago$/);
  const key0 = await page.evaluate(() => sessionStorage.getItem('tally.key'));
  assert.equal(key0, key);
  assert.ok(!page.url().includes(key), 'the key is not in the URL');

  // A click on the second source filters everything.
  const source = await page.getByTestId('panel-sources').getByTestId('row').nth(1).getAttribute('data-value');
  await page.getByTestId('panel-sources').getByTestId('row').nth(1).click();
  await page.waitForURL((u) => u.searchParams.getAll('f').includes(`visit:source|${source}`));
  await settled(page);
  const filters = [['visit:source', source]];
  const filtered = await checkNumbers(page, filters);
  const all = (await tally.query(key, { site_id: SITE, metrics: ['visitors'], date_range: '7d' })).results[0].metrics[0];
  assert.ok(filtered.metrics[0] < all, 'the filter narrows the numbers');
  assert.deepEqual(await page.getByTestId('filter-chip').evaluateAll((cs) => cs.map((c) => [c.dataset.dimension, c.dataset.value])), filters);
  assert.match(await page.getByTestId('panel-exit-pages').textContent(), /without filters/);

  // Reloading the URL (the key stays in the tab) shows the same view.
  await page.reload();
  await settled(page);
  assert.equal(await page.getByTestId('filter-chip').count(), 1);
  await checkNumbers(page, filters);

  // Back goes to the unfiltered view.
  await page.goBack();
  await page.waitForURL((u) => !u.searchParams.has('f'));
  await settled(page);
  assert.equal(await page.getByTestId('filter-chip').count(), 0);
  await checkNumbers(page, []);
  await context.close();
});

test('the props panel: the chosen name goes into the URL, an unlisted one falls back to the first', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addInitScript((k) => sessionStorage.setItem('tally.key', k), key);
  const page = await context.newPage();
  await page.goto(`${base}/?site=${SITE}&period=7d&prop=nope`);
  await settled(page);
  const panel = page.getByTestId('panel-props');
  assert.equal(await panel.getByTestId('prop-name').inputValue(), 'plan', 'an unlisted name falls back to the first');
  await checkProps(page, '7d', [], 'nope');

  // Choosing another name breaks it down and keeps it in the URL (a reload shows it again).
  await panel.getByTestId('prop-name').selectOption('coupon');
  await page.waitForURL((u) => u.searchParams.get('prop') === 'coupon');
  await settled(page);
  await checkProps(page, '7d', [], 'coupon');
  await page.reload();
  await settled(page);
  await checkProps(page, '7d', [], 'coupon');

  // A click on a value filters by it: the names are those of the events that pass.
  const value = await panel.getByTestId('row').first().getAttribute('data-value');
  await panel.getByTestId('row').first().click();
  await page.waitForURL((u) => u.searchParams.getAll('f').includes(`event:props:coupon|${value}`));
  await settled(page);
  await checkProps(page, '7d', [['event:props:coupon', value]], 'coupon');

  await context.close();
});

/** The range a panel's rows were asked for (`data-from`/`data-to`), with its rows, read at once. */
async function shownRows(page, id, m2) {
  return page.getByTestId(`panel-${id}`).evaluate((el, m) => ({
    state: el.dataset.state,
    range: [el.dataset.from, el.dataset.to],
    rows: [...el.querySelectorAll('[data-testid=row]')].map((r) => [
      r.dataset.value,
      r.querySelector('[data-testid=row-visitors]').dataset.raw,
      r.querySelector(`[data-testid=row-${m}]`).dataset.raw,
    ]),
  }), m2);
}

/** In Realtime, the pages panel and the props panel equal the API's answer for the range the page used. */
async function checkRealtimeLists(page, filters) {
  // The lists are asked again every 10 s: retry when a refresh came between the reads.
  await eventually(async () => {
    await settled(page);
    const { state, range, rows } = await shownRows(page, 'pages', 'pageviews');
    assert.equal(state, 'ready');
    assert.ok(range.every((t) => /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\dZ$/.test(t)), `the range ${range} is UTC to the second`);
    assert.equal(Date.parse(range[1]) - Date.parse(range[0]), 30 * 60e3, 'the last 30 minutes');
    assert.ok(Math.abs(Date.now() - Date.parse(range[1])) < 60e3, 'up to now');
    assert.deepEqual([await page.locator('#panels').getAttribute('data-from'), await page.locator('#panels').getAttribute('data-to')], range,
      'every list of a refresh has the same range');
    const api = await tally.query(key, {
      site_id: SITE, metrics: ['visitors', 'pageviews'], date_range: range, dimensions: ['event:page'], filters: filtersOf(filters),
      pagination: { limit: PAGE, offset: 0 }, include: { total_rows: true },
    });
    assert.ok(api.results.length > 0, 'the API has pages in the last 30 minutes');
    assert.deepEqual(rows, api.results.map((r) => [r.dimensions[0], String(r.metrics[0]), String(r.metrics[1])]), 'pages panel (realtime)');
    const props = page.getByTestId('panel-props');
    const propsRange = [await props.getAttribute('data-from'), await props.getAttribute('data-to')];
    assert.deepEqual(propsRange, range, 'the props panel used the same range');
    await checkProps(page, range, filters, 'coupon');
    const again = await shownRows(page, 'pages', 'pageviews');
    assert.deepEqual(again.range, range, 'no refresh between the reads');
  }, { timeout: 30_000, interval: 500 });
}

test('Realtime: the lists show the last 30 minutes, filtered, as the API answers that range', async () => {
  // A few fresh events (two visitors on one page, one with a prop), applied before the page asks.
  const sent = [
    { name: 'pageview', url: `https://${SITE}/realtime-page`, domain: SITE },
    { name: 'pageview', url: `https://${SITE}/realtime-page`, domain: SITE },
    { name: 'pageview', url: `https://${SITE}/realtime-other`, domain: SITE },
    { name: 'Signup', url: `https://${SITE}/realtime-page`, domain: SITE, props: { plan: 'pro' } },
  ];
  for (const [i, ev] of sent.entries()) {
    const res = await tally.post('/api/event', ev, { 'User-Agent': BROWSER_UA.replace('124.0', `124.${(i % 2) + 10}`) });
    assert.equal(res.status, 202);
  }
  await tally.waitForApplied((await tally.health()).log_head);

  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addInitScript((k) => sessionStorage.setItem('tally.key', k), key);
  const page = await context.newPage();
  await page.goto(`${base}/?site=${SITE}&period=realtime&prop=coupon`);
  await settled(page);
  await checkRealtimeLists(page, []);
  assert.match(await page.getByTestId('panel-exit-pages').getByTestId('note').textContent(), /not shown in Realtime/);
  assert.ok(await page.locator('#notice').isHidden(), 'no notice without filters');
  const shots = process.env.TALLY_SCREENSHOT_DIR;
  if (shots) await page.screenshot({ path: path.join(shots, 'realtime.png'), fullPage: true });

  // A click on a page filters the lists too; the notice says what is not filtered.
  const pages = page.getByTestId('panel-pages');
  await pages.locator('[data-testid=row][data-value="/realtime-page"]').click();
  await page.waitForURL((u) => u.searchParams.getAll('f').includes('event:page|/realtime-page'));
  await settled(page);
  await checkRealtimeLists(page, [['event:page', '/realtime-page']]);
  assert.deepEqual(await pages.getByTestId('row').evaluateAll((rs) => rs.map((r) => r.dataset.value)), ['/realtime-page']);
  assert.match(await page.locator('#notice').textContent(), /chart and current visitors are unfiltered/);
  if (shots) await page.screenshot({ path: path.join(shots, 'realtime-filtered.png'), fullPage: true });
  await context.close();
});

test('current visitors rise after new events, without a reload', async () => {
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addInitScript((k) => sessionStorage.setItem('tally.key', k), key);
  const page = await context.newPage();
  await page.goto(`${base}/?site=${SITE}&period=day`);
  const current = page.getByTestId('current-visitors');
  await eventually(async () => assert.notEqual(await current.getAttribute('data-raw'), ''), { timeout: 10_000 });
  const before = Number(await current.getAttribute('data-raw'));
  for (let i = 0; i < 3; i++) {
    const res = await tally.post('/api/event', { name: 'pageview', url: `https://${SITE}/live`, domain: SITE },
      { 'User-Agent': BROWSER_UA.replace('124.0', `124.${i + 1}`) });
    assert.equal(res.status, 202);
  }
  const navigations = [];
  page.on('framenavigated', (f) => f === page.mainFrame() && navigations.push(f.url()));
  // The page asks again every 10 s.
  await eventually(async () => assert.equal(Number(await current.getAttribute('data-raw')), before + 3), { timeout: 25_000, interval: 250 });
  const api = await tally.query(key, { site_id: SITE, metrics: ['visitors'], date_range: 'realtime' });
  assert.equal(Number(await current.getAttribute('data-raw')), api.results[0].metrics[0]);
  assert.deepEqual(navigations, [], 'no reload');
  await context.close();
});

test('a phone-width viewport does not scroll sideways', async () => {
  const context = await browser.newContext({ viewport: { width: 375, height: 800 }, isMobile: true, hasTouch: true });
  await context.addInitScript((k) => sessionStorage.setItem('tally.key', k), key);
  const page = await context.newPage();
  await page.goto(`${base}/?site=${SITE}&period=7d&f=visit:country|DE`);
  await settled(page);
  const [scrollWidth, innerWidth] = await page.evaluate(() => [document.documentElement.scrollWidth, innerWidth]);
  assert.ok(scrollWidth <= innerWidth, `scrollWidth ${scrollWidth} <= innerWidth ${innerWidth}`);
  await context.close();
});

test('a wrong key gets the sign-in page with the error', async () => {
  const context = await browser.newContext();
  const page = await context.newPage();
  await page.goto(`${base}/`);
  await signIn(page, 'tally_0000000000000000000000000000000000000000000000000000000000000000');
  const error = page.getByTestId('signin-error');
  await error.waitFor();
  assert.match(await error.textContent(), /not accepted/);
  assert.ok(await page.getByTestId('signin').isVisible());
  assert.equal(await page.evaluate(() => sessionStorage.getItem('tally.key')), null);

  // A key kept in the tab that stopped working (revoked) leads to the same page.
  await page.evaluate(() => sessionStorage.setItem('tally.key', 'tally_revoked'));
  await page.goto(`${base}/?site=${SITE}&period=7d`);
  await error.waitFor();
  assert.match(await error.textContent(), /not accepted/);
  await context.close();
});

test('names, pages and prop values that hold markup are shown as text, never run', async () => {
  const evil = '<img src=x onerror="window.__pwned=1">';
  const res = await tally.post('/api/event',
    { name: evil, url: `https://${SITE}/markup`, domain: SITE, props: { plan: `<script>window.__pwned=2</script>` } },
    { 'User-Agent': BROWSER_UA });
  assert.equal(res.status, 202);
  const context = await browser.newContext({ viewport: { width: 1280, height: 900 } });
  await context.addInitScript((k) => sessionStorage.setItem('tally.key', k), key);
  const page = await context.newPage();
  const dialogs = [];
  page.on('dialog', (d) => dialogs.push(d.message()) && d.dismiss());
  await page.goto(`${base}/?site=${SITE}&period=day`);
  const row = page.getByTestId('panel-events').locator(`[data-testid=row][data-value="${evil.replace(/"/g, '\\"')}"]`);
  await row.waitFor({ timeout: 15_000 });
  assert.ok((await row.textContent()).includes(evil), 'the name is shown as it was sent');
  assert.equal(await page.locator('img[src=x]').count(), 0, 'no element was made from it');
  assert.equal(await page.evaluate(() => window.__pwned), undefined, 'nothing ran');
  assert.deepEqual(dialogs, []);
  await context.close();
});

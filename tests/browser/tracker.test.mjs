// The tracking scripts in a real browser against `tally serve`: Tally's own tally.js
// (tracker/), Plausible's official npm tracker (@plausible-analytics/tracker) and its older one
// (plausible-tracker). Each drives a single-page app through the same visit and checks Tally's
// exact numbers through the Stats API.
//
//   npm ci --prefix tracker && npm ci --prefix tests/browser
//   TALLY_BIN=target/debug/tally node --test tests/browser/

import { test, before, after } from 'node:test';
import assert from 'node:assert/strict';
import { execFileSync } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { gzipSync } from 'node:zlib';
import {
  BROWSER_UA,
  REPO_ROOT,
  eventually,
  launchBrowser,
  rows,
  sleep,
  startPageServer,
  startTally,
} from './harness.mjs';

const TRACKER = path.join(REPO_ROOT, 'tracker');
const SERVED = path.join(TRACKER, 'tally.js');
const BUDGET_GZ = 1536;

/** The sites of this file, each registered before the browser sends anything. */
const SITES = {
  tally: 'shop.test', // the SPA with tally.js
  official: 'plausible.test', // the same SPA with @plausible-analytics/tracker
  classic: 'classic.test', // plausible-tracker
  quiet: 'quiet.test', // pages whose tracker must send nothing (localhost, tally_ignore)
  hash: 'hash.test', // tally.js with data-hash, sending to two sites at once …
  mirror: 'mirror.test', // … this one the second
};

let tally;
let key;
let pages;
let browser;
/** How the pages load tally.js: from Tally itself (/js/tally.js) or from the page server. */
let tallyScript;

before(async () => {
  tally = await startTally();
  for (const site of Object.values(SITES)) tally.addSite(site);
  // A revenue goal: grouped or filtered by it, revenue metrics count its events' EUR revenue.
  tally.addGoal(SITES.tally, { event: 'Purchase', currency: 'EUR' });
  tally.addGoal(SITES.official, { event: 'Purchase', currency: 'EUR' });
  key = tally.createKey(Object.values(SITES));
  for (const site of Object.values(SITES)) await tally.waitForSite(key, site);

  // The pages load tally.js from Tally (GET /js/tally.js, so its default endpoint, the
  // script's origin, is used) when the binary serves this tree's tracker/tally.js; otherwise
  // (a binary without the route, or built from an older tracker) from the page server, with
  // data-api, so that these tests always run the tracker of the working tree.
  const served = await fetch(`${tally.url}/js/tally.js`).catch(() => null);
  const body = served && served.ok ? await served.text() : null;
  tallyScript =
    body === readFileSync(SERVED, 'utf8')
      ? { src: `${tally.url}/js/tally.js`, api: '', body }
      : { src: '/tracker/tally.js', api: `data-api="${tally.url}/api/event"`, body };

  pages = await startPageServer({
    routes: {
      // The shop's app at / of its host: tally.js on shop.test, Plausible's tracker on
      // plausible.test (the app's other paths are reached with pushState only).
      '/': (req, url) => (url.hostname === SITES.official ? officialPage() : spaPage()),
      '/landing': '<!doctype html><title>Partner</title><p>The partner site.',
      '/quiet': quietPage(),
      '/classic': classicPage(),
      '/app': () => hashPage(),
      '/files/report.pdf': { body: '%PDF-1.4\n%%EOF\n', type: 'application/pdf' },
    },
    dirs: {
      '/tracker/': TRACKER,
      '/npm/': path.join(REPO_ROOT, 'tests/browser/node_modules'),
    },
  });
  browser = await launchBrowser();
});

after(async () => {
  await browser?.close();
  await pages?.close();
  await tally?.stop();
});

// ---------------------------------------------------------------------------------------------
// The served file: size and source.

test('tracker/tally.js fits in 1536 bytes gzipped', () => {
  const size = gzipSync(readFileSync(SERVED), { level: 9 }).length;
  assert.ok(size <= BUDGET_GZ, `tracker/tally.js is ${size} bytes gzipped; the budget is ${BUDGET_GZ}`);
});

test('tracker/tally.js is what tracker/build makes of tracker/src/tally.js', () => {
  const dir = mkdtempSync(path.join(tmpdir(), 'tally-build-'));
  try {
    const out = path.join(dir, 'tally.js');
    try {
      execFileSync(path.join(TRACKER, 'build'), [out], { stdio: ['ignore', 'pipe', 'pipe'] });
    } catch (error) {
      throw new Error(`tracker/build failed (run \`npm ci --prefix tracker\` first):\n${error.stderr}`);
    }
    assert.equal(
      readFileSync(out, 'utf8'),
      readFileSync(SERVED, 'utf8'),
      'tracker/tally.js is stale: run tracker/build and commit the result'
    );
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
});

test('Tally serves tracker/tally.js at /js/tally.js', () => {
  assert.ok(tallyScript.body != null, `GET ${tally.url}/js/tally.js failed`);
  assert.ok(
    tallyScript.body === readFileSync(SERVED, 'utf8'),
    'the tally binary serves another tally.js than tracker/tally.js: rebuild it (the other tests use the file)'
  );
});

// ---------------------------------------------------------------------------------------------
// The visit every full tracker goes through.

/**
 * The single-page app of the shop (every path answers it): a stub queue before the tracker,
 * a tall page (for the scroll depth), a link to another host and a link to a PDF.
 */
function spaPage() {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title>
<script>
  window.tally = window.tally || function () { (window.tally.q = window.tally.q || []).push(arguments) };
  tally('Queued');
</script>
<script defer data-domain="${SITES.tally}" ${tallyScript.api} data-outbound data-downloads src="${tallyScript.src}"></script>
</head>
${appBody()}
</html>`;
}

function appBody() {
  // Going back restores no scroll position (it could land in the frame of the test's own
  // scroll and hide it from the trackers).
  return `<body style="margin:0;min-height:3000px">
<script>history.scrollRestoration = 'manual';</script>
<a id="outbound" href="http://partner.test:${pages.port}/landing?ref=shop">Our partner</a>
<a id="download" href="/files/report.pdf?v=2" download>The report</a>
</body>`;
}

/** The same app with Plausible's official npm tracker. */
function officialPage() {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Shop</title>
<script>
  // Plausible's tracker sends nothing when navigator.webdriver is set (Playwright sets it),
  // unless the page sets this flag.
  window.__plausible = true;
</script>
<script type="module">
  import { init, track } from '/npm/@plausible-analytics/tracker/plausible.js';
  init({ domain: '${SITES.official}', endpoint: '${tally.url}/api/event', outboundLinks: true, fileDownloads: true });
  window.track = track;
  track('Queued');
</script>
</head>
${appBody()}
</html>`;
}

/**
 * Drives the visit: load /, push /products and /products/42, push /products/42 again and a
 * #fragment (no new page view: the path is the same), go back to /products, scroll to the
 * bottom, buy (props and revenue), download the PDF, and, at least 2.2 s after the first page
 * view, follow the outbound link, which leaves the page (its unload sends the engagement).
 *
 * `track(name, options)` runs in the page: tally() or Plausible's track().
 * Returns the times (ms, this process's clock) the browser sent the first page view and the
 * last counted event, and the scroll depth (%) of an unscrolled page.
 */
async function runVisit(page, url, trackFn) {
  const sent = [];
  page.on('request', (request) => {
    if (request.url().startsWith(`${tally.url}/api/event`)) sent.push(Date.now());
  });
  await page.goto(url);
  await eventually(() => assert.ok(sent.length >= 2, 'the first page view and the queued event'), { timeout: 5_000 });
  const first = sent[0];
  const unscrolled = await page.evaluate(() =>
    Math.round((window.innerHeight / document.documentElement.scrollHeight) * 100)
  );
  const go = (script) =>
    page.evaluate(script).then(() => page.evaluate(() => new Promise((r) => requestAnimationFrame(() => setTimeout(r, 20)))));
  await go(() => history.pushState({}, '', '/products'));
  await go(() => history.pushState({}, '', '/products/42'));
  await go(() => history.pushState({}, '', '/products/42'));
  await go(() => (location.hash = '#reviews'));
  await page.evaluate(
    () =>
      new Promise((resolve) => {
        addEventListener('popstate', () => setTimeout(resolve, 0), { once: true });
        history.go(-3);
      })
  );
  assert.equal(await page.evaluate(() => location.pathname), '/products');
  await go(() => window.scrollTo(0, document.documentElement.scrollHeight));
  assert.ok(await page.evaluate(() => window.scrollY + window.innerHeight >= document.documentElement.scrollHeight));
  await page.evaluate(trackFn, ['Purchase', { props: { plan: 'pro' }, revenue: { amount: 9.99, currency: 'EUR' } }]);
  await page.click('#download');
  await sleep(first + 2_200 - Date.now());
  const beforeOutbound = sent.length;
  await Promise.all([page.waitForURL(/partner\.test/), page.click('#outbound')]);
  await eventually(() => assert.ok(sent.length > beforeOutbound, 'the outbound click was sent'), { timeout: 5_000 });
  return { first, last: sent[beforeOutbound], unscrolled };
}

/** Whole seconds as Tally rounds a visit's duration; both neighbours when too close to call. */
function durations(ms) {
  const s = ms / 1000;
  const frac = s - Math.floor(s);
  return Math.abs(frac - 0.5) < 0.1 ? [Math.floor(s), Math.ceil(s)] : [Math.round(s)];
}

/**
 * The events one visit of runVisit makes Tally log: 4 page views, Queued, Purchase, File
 * Download and Outbound Link: Click, and an engagement event for each page left (3 SPA
 * navigations and the unload).
 */
const VISIT_EVENTS = 8 + 4;

/**
 * Checks what Tally counted of runVisit on `site`: the same for every tracker. `head` is the
 * log head before the visit; tests run one at a time, so the visit's events follow it.
 */
async function assertVisitCounted(site, origin, head, { first, last, unscrolled }) {
  const ask = (body) => tally.query(key, { site_id: site, date_range: 'day', ...body });
  // Wait until Tally applied every event of the visit (the unload's engagement event is sent
  // after the page is gone, so the browser cannot tell us it left), then make sure no more come.
  // Waiting on the log rather than polling answers also keeps the answer cache out of it.
  await tally.waitForApplied(head + VISIT_EVENTS);
  await sleep(300);
  assert.equal((await tally.health()).log_head, head + VISIT_EVENTS, 'the events the tracker sent');

  const expectedPages = [
    { page: '/products', pageviews: 2 },
    { page: '/', pageviews: 1 },
    { page: '/products/42', pageviews: 1 },
  ];
  const expectedNames = [
    { name: 'pageview', events: 4 },
    { name: 'File Download', events: 1 },
    { name: 'Outbound Link: Click', events: 1 },
    { name: 'Purchase', events: 1 },
    { name: 'Queued', events: 1 },
  ];
  const byPage = (answer) => rows(answer).sort((a, b) => b.pageviews - a.pageviews || (a.page < b.page ? -1 : 1));
  const byName = (answer) => rows(answer).sort((a, b) => b.events - a.events || (a.name < b.name ? -1 : 1));
  const [totals] = (
    await ask({ metrics: ['visitors', 'visits', 'pageviews', 'events', 'bounce_rate', 'visit_duration', 'views_per_visit'] })
  ).results;
  const [visitors, visits, pageviews, events, bounceRate, duration, viewsPerVisit] = totals.metrics;
  assert.deepEqual(
    { visitors, visits, pageviews, events, bounceRate, viewsPerVisit },
    { visitors: 1, visits: 1, pageviews: 4, events: 8, bounceRate: 0, viewsPerVisit: 4 }
  );
  // A visit's duration is the time from its first to its last counted event, as Tally received
  // them (engagement events add none); the browser sent them `last - first` ms apart.
  assert.ok(
    durations(last - first).includes(duration),
    `visit_duration ${duration} s; the browser sent the first page view and the outbound click ${last - first} ms apart`
  );
  assert.ok(duration >= 2, `visit_duration ${duration}`);

  assert.deepEqual(byPage(await ask({ metrics: ['pageviews'], dimensions: ['event:page'] })), expectedPages);
  assert.deepEqual(byName(await ask({ metrics: ['events'], dimensions: ['event:name'] })), expectedNames);
  assert.deepEqual(rows(await ask({ metrics: ['visitors', 'events'], dimensions: ['event:props:plan'] })), [
    { plan: 'pro', visitors: 1, events: 1 },
  ]);
  const urls = rows(await ask({ metrics: ['events'], dimensions: ['event:name', 'event:props:url'] }));
  assert.deepEqual(
    urls.sort((a, b) => (a.name < b.name ? -1 : 1)),
    [
      { name: 'File Download', url: `${origin}/files/report.pdf`, events: 1 },
      { name: 'Outbound Link: Click', url: `http://partner.test:${pages.port}/landing?ref=shop`, events: 1 },
    ]
  );
  // Entry and exit: the visit entered on / and left from /products.
  assert.deepEqual(rows(await ask({ metrics: ['visits'], dimensions: ['visit:entry_page'] })), [{ entry_page: '/', visits: 1 }]);
  assert.deepEqual(rows(await ask({ metrics: ['visits'], dimensions: ['visit:exit_page'] })), [
    { exit_page: '/products', visits: 1 },
  ]);

  // Revenue, through the revenue goal (filtered and grouped).
  const revenue = { value: 9.99, currency: 'EUR', by_currency: { EUR: 9.99 } };
  assert.deepEqual(
    rows(await ask({ metrics: ['visitors', 'events', 'total_revenue'], filters: [['is', 'event:goal', ['Purchase']]] })),
    [{ visitors: 1, events: 1, total_revenue: revenue }]
  );
  assert.deepEqual(rows(await ask({ metrics: ['events', 'total_revenue', 'average_revenue'], dimensions: ['event:goal'] })), [
    { goal: 'Purchase', events: 1, total_revenue: revenue, average_revenue: revenue },
  ]);

  // Engagement: what each page reported when it was left. The depth of a page left unscrolled
  // is the viewport's share of it; /products was scrolled to the bottom.
  const engagement = rows(await ask({ metrics: ['scroll_depth', 'time_on_page'], dimensions: ['event:page'] }));
  const depthOf = Object.fromEntries(engagement.map((r) => [r.page, r.scroll_depth]));
  assert.deepEqual(depthOf, { '/': unscrolled, '/products': 100, '/products/42': unscrolled });
  for (const row of engagement) assert.equal(typeof row.time_on_page, 'number', `time_on_page of ${row.page}`);
  const onProducts = engagement.find((r) => r.page === '/products').time_on_page;
  assert.ok(onProducts >= 1 && onProducts <= duration + 1, `time_on_page of /products: ${onProducts} s`);

  // Nothing was dropped (a headless User-Agent would be dropped as a bot).
  const drops = await fetch(`${tally.url}/api/v2/drops?site_id=${site}`, { headers: { Authorization: `Bearer ${key}` } });
  assert.deepEqual((await drops.json()).drops, {});
}

test('tally.js: a single-page visit is counted exactly', async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const origin = pages.url(SITES.tally, '').replace(/\/$/, '');
    const { log_head: head } = await tally.health();
    const times = await runVisit(page, `${origin}/`, ([name, options]) => window.tally(name, options));
    await assertVisitCounted(SITES.tally, origin, head, times);
  } finally {
    await context.close();
  }
});

test('@plausible-analytics/tracker: the same visit is counted the same, engagement included', async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const origin = pages.url(SITES.official, '').replace(/\/$/, '');
    const { log_head: head } = await tally.health();
    const times = await runVisit(page, `${origin}/`, ([name, options]) => window.track(name, options));
    await assertVisitCounted(SITES.official, origin, head, times);
  } finally {
    await context.close();
  }
});

// ---------------------------------------------------------------------------------------------
// tally.js options: hash-based routing, several sites, its own list of download extensions.

function hashPage() {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Hash app</title>
<script defer data-domain="${SITES.hash},${SITES.mirror}" ${tallyScript.api} data-hash data-downloads="zip, csv"
  src="${tallyScript.src}"></script>
</head><body>
<a id="zip" href="/files/all.zip" onclick="event.preventDefault()">zip</a>
<a id="pdf" href="/files/report.pdf" onclick="event.preventDefault()">pdf</a>
</body></html>`;
}

test('tally.js with data-hash, two sites in data-domain and data-downloads="zip, csv"', async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const origin = pages.url(SITES.hash, '').replace(/\/$/, '');
    await page.goto(`${origin}/app`);
    const hash = (fragment) =>
      page.evaluate(
        (fragment) =>
          new Promise((resolve) => {
            addEventListener('hashchange', () => setTimeout(resolve, 0), { once: true });
            location.hash = fragment;
          }),
        fragment
      );
    await hash('#/settings');
    await hash('#/billing');
    await page.evaluate(
      () =>
        new Promise((resolve) => {
          addEventListener('hashchange', () => setTimeout(resolve, 0), { once: true });
          history.back();
        })
    );
    assert.equal(await page.evaluate(() => location.hash), '#/settings');
    await page.click('#zip');
    await page.click('#pdf'); // not in the page's list: no event
    for (const site of [SITES.hash, SITES.mirror]) {
      const ask = (body) => tally.query(key, { site_id: site, date_range: 'day', ...body });
      await eventually(async () => {
        assert.deepEqual(
          rows(await ask({ metrics: ['pageviews'], dimensions: ['event:page'] })).sort((a, b) => (a.page < b.page ? -1 : 1)),
          [
            { page: '/app', pageviews: 1 },
            { page: '/app#/billing', pageviews: 1 },
            { page: '/app#/settings', pageviews: 2 },
          ]
        );
        assert.deepEqual(rows(await ask({ metrics: ['events'], dimensions: ['event:name', 'event:props:url'] })), [
          { name: 'File Download', url: `${origin}/files/all.zip`, events: 1 },
        ]);
      });
      const [totals] = (await ask({ metrics: ['visitors', 'visits', 'pageviews', 'events', 'bounce_rate'] })).results;
      assert.deepEqual(totals.metrics, [1, 1, 4, 5, 0], site);
    }
  } finally {
    await context.close();
  }
});

// ---------------------------------------------------------------------------------------------
// The older npm tracker: page views and a custom event with props.

function classicPage() {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Classic</title>
<script type="module">
  import Plausible from '/npm/plausible-tracker/build/module/index.js';
  const { enableAutoPageviews, trackEvent } = Plausible({ domain: '${SITES.classic}', apiHost: '${tally.url}' });
  enableAutoPageviews();
  window.trackEvent = trackEvent;
</script>
</head><body><p>Classic</p></body></html>`;
}

test('plausible-tracker: page views and a custom event with props', async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    let sent = 0;
    page.on('requestfinished', (request) => {
      if (request.url().startsWith(`${tally.url}/api/event`)) sent++;
    });
    await page.goto(pages.url(SITES.classic, '/classic'));
    await page.evaluate(() => history.pushState({}, '', '/classic/two'));
    await page.evaluate(() => window.trackEvent('Signup', { props: { plan: 'pro' } }));
    await eventually(() => assert.equal(sent, 3), { timeout: 5_000 });
    const ask = (body) => tally.query(key, { site_id: SITES.classic, date_range: 'day', ...body });
    await eventually(async () => {
      assert.deepEqual((await ask({ metrics: ['events'] })).results[0].metrics, [3]);
    });
    await sleep(300);
    const [totals] = (await ask({ metrics: ['visitors', 'visits', 'pageviews', 'events', 'bounce_rate'] })).results;
    assert.deepEqual(totals.metrics, [1, 1, 2, 3, 0]);
    assert.deepEqual(
      rows(await ask({ metrics: ['pageviews'], dimensions: ['event:page'] })).sort((a, b) => (a.page < b.page ? -1 : 1)),
      [
        { page: '/classic', pageviews: 1 },
        { page: '/classic/two', pageviews: 1 },
      ]
    );
    // Its props come as a JSON string, which Tally reads like an object.
    assert.deepEqual(rows(await ask({ metrics: ['events'], dimensions: ['event:props:plan'] })), [{ plan: 'pro', events: 1 }]);
    assert.deepEqual(rows(await ask({ metrics: ['events'], dimensions: ['event:name'] })), [
      { name: 'pageview', events: 2 },
      { name: 'Signup', events: 1 },
    ]);
  } finally {
    await context.close();
  }
});

// ---------------------------------------------------------------------------------------------
// What tally.js must not send.

function quietPage() {
  return `<!doctype html>
<html><head><meta charset="utf-8"><title>Quiet</title>
<script>
  if (location.hostname === 'ignored.test') localStorage.tally_ignore = 'true';
  window.tally = window.tally || function () { (window.tally.q = window.tally.q || []).push(arguments) };
  tally('Queued');
</script>
<script defer data-domain="${SITES.quiet}" data-api="${tally.url}/api/event" data-outbound data-downloads
  src="${tallyScript.src}"></script>
</head>
<body><a id="outbound" href="https://elsewhere.example/" onclick="event.preventDefault()">away</a>
<a id="download" href="/files/report.pdf" onclick="event.preventDefault()">pdf</a></body></html>`;
}

test('tally.js sends nothing on localhost, 127.0.0.1 or with localStorage.tally_ignore', async () => {
  const context = await browser.newContext();
  try {
    const page = await context.newPage();
    const { log_head: head } = await tally.health();
    const sent = [];
    page.on('request', (request) => {
      if (request.url().includes('/api/event')) sent.push(request.url());
    });
    for (const host of ['localhost', '127.0.0.1', 'ignored.test']) {
      await page.goto(pages.url(host, '/quiet'));
      await page.evaluate(() => history.pushState({}, '', '/quiet/two'));
      const called = await page.evaluate(
        () => new Promise((resolve) => window.tally('Signup', { props: { plan: 'pro' }, callback: () => resolve(true) }))
      );
      assert.equal(called, true, `the callback is called on ${host}`);
      await page.click('#outbound');
      await page.click('#download');
      await page.evaluate(() => window.scrollTo(0, 100));
    }
    await page.goto('about:blank'); // the pages' unload: no engagement either
    await sleep(300);
    assert.deepEqual(sent, []);
    // And Tally logged nothing at all (the other tests are done: they run one at a time).
    assert.equal((await tally.health()).log_head, head, 'events reached Tally');
  } finally {
    await context.close();
  }
});

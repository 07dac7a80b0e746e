// Shared helpers for Tally's real-browser tests (`node --test tests/browser/`).
//
// - startTally({args, env}): a `tally serve` on a free port over a fresh data directory, with
//   helpers for the CLI (sites, keys, goals) and the Stats API.
// - launchBrowser(): headless Chromium (Debian's /usr/bin/chromium, or $CHROMIUM) through
//   playwright-core, whose contexts send a normal desktop Chrome User-Agent (Tally drops
//   "HeadlessChrome" as a bot, model/src/agent.rs) and resolve every *.test host to 127.0.0.1.
// - startPageServer({routes, dirs}): a tiny static server on 127.0.0.1 for test pages and
//   tracker files, opened in the browser as http://shop.test:PORT/… so trackers do not treat
//   the page as localhost.
// - eventually(fn, {timeout}): retries an async assertion until it passes or time runs out.
//
// Every process and browser started here is stopped by the caller's `after` hook (call
// `stop()` / `close()`), and, should a test crash before that, when the test process exits.
//
// Environment: TALLY_BIN (the tally binary; default `${CARGO_TARGET_DIR:-target}/debug/tally`
// under the repository root), CHROMIUM (default /usr/bin/chromium), TALLY_KEEP_DATA=1 (keep the
// data directories for inspection; their paths are printed).

import { spawn, execFileSync } from 'node:child_process';
import { mkdtempSync, rmSync, readFileSync, existsSync, statSync } from 'node:fs';
import { createServer } from 'node:http';
import { tmpdir } from 'node:os';
import path from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { setTimeout as sleep } from 'node:timers/promises';

export { sleep };

/** The repository root (two levels above this file). */
export const REPO_ROOT = path.resolve(path.dirname(fileURLToPath(import.meta.url)), '../..');

/** The tally binary the tests run. */
export const TALLY_BIN =
  process.env.TALLY_BIN ||
  path.join(path.resolve(REPO_ROOT, process.env.CARGO_TARGET_DIR || 'target'), 'debug', 'tally');

/**
 * The User-Agent every browser context of `launchBrowser()` sends: an ordinary desktop Chrome.
 * Headless Chromium's own one says "HeadlessChrome", which Tally's bot filter drops.
 */
export const BROWSER_UA =
  'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';

// Everything to stop if the test process ends without its `after` hooks having run.
const cleanups = new Set();
process.on('exit', () => {
  for (const cleanup of cleanups) {
    try {
      cleanup();
    } catch {}
  }
});
for (const signal of ['SIGINT', 'SIGTERM']) {
  process.once(signal, () => process.exit(130));
}

function tempDir(prefix) {
  return mkdtempSync(path.join(tmpdir(), prefix));
}

/**
 * Starts `tally serve --listen 127.0.0.1:0 --data-dir DIR --flush-interval-ms 100` on a new
 * temporary data directory, and resolves once it printed `listening on http://ADDR`.
 *
 * @param {{args?: string[], env?: object, dataDir?: string}} [options] extra `serve` flags
 *   (`['--ingest-rate-per-client', '0']`), extra environment, an existing data directory.
 * @returns {Promise<{
 *   url: string,            // http://127.0.0.1:PORT
 *   dataDir: string,
 *   cli: (args: string[]) => string,                     // runs `tally ARGS --data-dir DIR`; stdout
 *   addSite: (domain: string, tz?: string) => string,
 *   createKey: (sites: string|string[], scope?: 'stats'|'admin') => string,
 *   addGoal: (site: string, goal: {event?: string, currency?: string, page?: string, scroll?: number}) => string,
 *   waitForSite: (key: string, site: string) => Promise<void>,   // the server sees site and key
 *   query: (key: string, body: object) => Promise<object>,       // POST /api/v2/query, JSON
 *   post: (route: string, body: any, headers?: object) => Promise<Response>,
 *   stderr: () => string,   // the server's log so far
 *   health: () => Promise<object>,                   // GET /api/health
 *   waitForApplied: (offset: number) => Promise<object>,  // until log_offset_applied >= offset
 *   stop: () => Promise<void>,
 * }>}
 */
export async function startTally({ args = [], env = {}, dataDir } = {}) {
  if (!existsSync(TALLY_BIN)) {
    throw new Error(`tally binary not found at ${TALLY_BIN}: build it (cargo build) or set TALLY_BIN`);
  }
  const ownDir = !dataDir;
  dataDir = dataDir || tempDir('tally-browser-');
  // Through a watchdog shell that stops tally (SIGTERM) once its stdin closes: when stop() ends
  // it, or when this process dies in any way, even by SIGKILL, so no server outlives its test.
  const child = spawn(
    'sh',
    [
      '-c',
      '"$@" </dev/null & pid=$!; cat >/dev/null; kill -TERM $pid 2>/dev/null; wait $pid',
      'tally-watchdog',
      TALLY_BIN,
      'serve',
      '--listen',
      '127.0.0.1:0',
      '--data-dir',
      dataDir,
      '--flush-interval-ms',
      '100',
      ...args,
    ],
    { stdio: ['pipe', 'pipe', 'pipe'], detached: true, env: { ...process.env, TALLY_LOG: 'warn', ...env } }
  );
  const killGroup = () => {
    try {
      process.kill(-child.pid, 'SIGKILL');
    } catch {}
  };
  cleanups.add(killGroup);
  const removeDir = () => {
    if (!ownDir) return;
    if (process.env.TALLY_KEEP_DATA) console.log(`kept tally data directory ${dataDir}`);
    else rmSync(dataDir, { recursive: true, force: true });
  };
  cleanups.add(removeDir);
  let log = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (chunk) => {
    log = (log + chunk).slice(-64 * 1024);
  });
  const exited = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
  const lines = createInterface({ input: child.stdout });
  const first = await Promise.race([
    new Promise((resolve) => lines.once('line', resolve)),
    exited.then(({ code, signal }) => {
      throw new Error(`tally serve exited (${code ?? signal}) before listening:\n${log}`);
    }),
    sleep(20_000, null, { ref: false }).then(() => {
      throw new Error(`tally serve printed nothing within 20 s:\n${log}`);
    }),
  ]);
  const match = /^listening on (http:\/\/\S+)$/.exec(first);
  if (!match) {
    killGroup();
    throw new Error(`unexpected first line from tally serve: ${first}`);
  }
  lines.on('line', () => {}); // keep draining stdout
  const url = match[1];

  const cli = (cliArgs) => {
    try {
      return execFileSync(TALLY_BIN, [...cliArgs, '--data-dir', dataDir], {
        encoding: 'utf8',
        stdio: ['ignore', 'pipe', 'pipe'],
        env: { ...process.env, TALLY_LOG: 'warn' },
      });
    } catch (error) {
      throw new Error(`tally ${cliArgs.join(' ')} failed (${error.status ?? error.signal}):\n${error.stderr}${error.stdout}`);
    }
  };

  const post = (route, body, headers = {}) =>
    fetch(url + route, {
      method: 'POST',
      headers: { 'Content-Type': 'application/json', ...headers },
      body: typeof body === 'string' ? body : JSON.stringify(body),
    });

  async function query(key, body) {
    const response = await post('/api/v2/query', body, { Authorization: `Bearer ${key}` });
    const text = await response.text();
    if (!response.ok) {
      const error = new Error(`POST /api/v2/query ${response.status}: ${text}\nquery: ${JSON.stringify(body)}`);
      error.status = response.status;
      throw error;
    }
    return JSON.parse(text);
  }

  const health = async () => (await fetch(url + '/api/health')).json();

  let stopped;
  return {
    url,
    dataDir,
    cli,
    post,
    query,
    stderr: () => log,
    addSite: (domain, tz = 'Etc/UTC') => cli(['site', 'add', domain, '--timezone', tz]),
    createKey: (sites, scope = 'stats') =>
      cli(['key', 'create', ...[sites].flat().flatMap((site) => ['--site', site]), '--scope', scope]).trim(),
    addGoal: (site, { event, currency, page, scroll }) =>
      cli([
        'goal',
        'add',
        '--site',
        site,
        ...(event ? ['--event', event] : []),
        ...(currency ? ['--currency', currency] : []),
        ...(page ? ['--page', page] : []),
        ...(scroll != null ? ['--scroll', String(scroll)] : []),
      ]),
    // The server re-reads registry.json at most every 250 ms: a site, key or goal added with
    // the CLI while it runs counts once a query with the key is answered (the ingest side reads
    // the same snapshot).
    waitForSite: (key, site) =>
      eventually(() => query(key, { site_id: site, metrics: ['visitors'], date_range: 'day' }), { timeout: 5_000 }),
    // tally's /api/health: log_head (events logged), log_offset_applied, lag_entries, …
    health,
    // Resolves once the aggregator applied the log up to `offset` (every event logged by then
    // is in the answers), with the health answer.
    async waitForApplied(offset, { timeout = 10_000 } = {}) {
      return eventually(
        async () => {
          const now = await health();
          if (!(now.log_offset_applied >= offset)) {
            throw new Error(`log applied up to ${now.log_offset_applied}, not yet ${offset} (head ${now.log_head})`);
          }
          return now;
        },
        { timeout }
      );
    },
    stop() {
      stopped ??= (async () => {
        if (child.exitCode === null && child.signalCode === null) {
          child.stdin.end(); // the watchdog stops tally with SIGTERM and waits for it
          const done = await Promise.race([exited, sleep(15_000, null, { ref: false }).then(() => null)]);
          if (!done) killGroup();
          await exited;
        }
        cleanups.delete(killGroup);
        removeDir();
        cleanups.delete(removeDir);
      })();
      return stopped;
    },
  };
}

/**
 * Launches headless Chromium through playwright-core (a fresh temporary profile per launch).
 * `--host-resolver-rules` sends every *.test host to 127.0.0.1, so pages of the page server
 * open as http://shop.test:PORT/.
 *
 * @returns {Promise<{browser: import('playwright-core').Browser,
 *   newContext: (options?: object) => Promise<import('playwright-core').BrowserContext>,
 *   newPage: (options?: object) => Promise<import('playwright-core').Page>,
 *   close: () => Promise<void>}>}
 *   newContext/newPage take Playwright's context options; `userAgent` defaults to BROWSER_UA.
 */
export async function launchBrowser() {
  const { chromium } = await import('playwright-core');
  const browser = await chromium.launch({
    executablePath: process.env.CHROMIUM || '/usr/bin/chromium',
    headless: true,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
      '--host-resolver-rules=MAP *.test 127.0.0.1',
      // The context option alone is not enough: a beacon or keepalive fetch sent while its page
      // unloads leaves with the browser's own User-Agent ("HeadlessChrome"), which Tally drops.
      `--user-agent=${BROWSER_UA}`,
    ],
  });
  const pid = browser.process?.()?.pid;
  const kill = () => {
    if (pid) {
      try {
        process.kill(pid, 'SIGKILL');
      } catch {}
    }
  };
  cleanups.add(kill);
  const newContext = (options = {}) => browser.newContext({ userAgent: BROWSER_UA, ...options });
  return {
    browser,
    newContext,
    async newPage(options) {
      const context = await newContext(options);
      return context.newPage();
    },
    async close() {
      await browser.close().catch(() => {});
      cleanups.delete(kill);
    },
  };
}

const TYPES = {
  '.html': 'text/html; charset=utf-8',
  '.js': 'text/javascript; charset=utf-8',
  '.mjs': 'text/javascript; charset=utf-8',
  '.json': 'application/json',
  '.css': 'text/css',
  '.pdf': 'application/pdf',
  '.txt': 'text/plain; charset=utf-8',
};

/**
 * A static server on 127.0.0.1 (a free port) for test pages.
 *
 * @param {{
 *   routes?: Record<string, string | {body: string|Buffer, type?: string} |
 *            ((req: import('node:http').IncomingMessage, url: URL) => ({body, type?, status?} | undefined))>,
 *   dirs?: Record<string, string>,   // URL prefix ('/tracker/') -> directory served under it
 *   fallback?: string,               // a route to answer for any other GET (an SPA's index)
 * }} options. Routes match the path exactly (a string body is served as HTML); files of `dirs`
 *   are served by extension (a path without one also tries `.js`, for ES modules that import
 *   './lib/tracker').
 * @returns {Promise<{port: number, url: (host: string, path?: string) => string,
 *   requests: {method: string, host: string, path: string}[], close: () => Promise<void>}>}
 *   `url('shop.test', '/app')` is `http://shop.test:PORT/app`.
 */
export async function startPageServer({ routes = {}, dirs = {}, fallback } = {}) {
  const requests = [];
  const answer = (res, status, body, type) => {
    res.writeHead(status, { 'Content-Type': type, 'Cache-Control': 'no-store', 'Access-Control-Allow-Origin': '*' });
    res.end(body);
  };
  const route = (req, url, name) => {
    const entry = routes[name];
    if (entry === undefined) return undefined;
    const value = typeof entry === 'function' ? entry(req, url) : entry;
    if (value === undefined) return undefined;
    return typeof value === 'string' ? { body: value, type: TYPES['.html'] } : value;
  };
  const server = createServer((req, res) => {
    const url = new URL(req.url, `http://${req.headers.host}`);
    requests.push({ method: req.method, host: req.headers.host, path: url.pathname + url.search });
    const found = route(req, url, url.pathname);
    if (found) return answer(res, found.status || 200, found.body, found.type || TYPES['.html']);
    for (const [prefix, dir] of Object.entries(dirs)) {
      if (!url.pathname.startsWith(prefix)) continue;
      const base = path.resolve(dir);
      const file = path.resolve(base, decodeURIComponent(url.pathname.slice(prefix.length)));
      if (file !== base && !file.startsWith(base + path.sep)) break;
      for (const candidate of [file, file + '.js']) {
        if (existsSync(candidate) && statSync(candidate).isFile()) {
          return answer(res, 200, readFileSync(candidate), TYPES[path.extname(candidate)] || 'application/octet-stream');
        }
      }
    }
    const spa = fallback && req.method === 'GET' && route(req, url, fallback);
    if (spa) return answer(res, spa.status || 200, spa.body, spa.type || TYPES['.html']);
    answer(res, 404, 'not found', TYPES['.txt']);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const port = server.address().port;
  const close = () => new Promise((resolve) => server.close(() => resolve()));
  cleanups.add(() => server.close());
  server.keepAliveTimeout = 1000;
  return {
    port,
    requests,
    url: (host, pathname = '/') => `http://${host}:${port}${pathname}`,
    close: async () => {
      server.closeAllConnections?.();
      await close();
    },
  };
}

/**
 * Calls `fn` until it resolves (a passing assertion), every `interval` ms, for at most
 * `timeout` ms; then throws the last failure. Resolves with what `fn` returned.
 */
export async function eventually(fn, { timeout = 10_000, interval = 100 } = {}) {
  const deadline = Date.now() + timeout;
  for (;;) {
    try {
      return await fn();
    } catch (error) {
      if (Date.now() > deadline) throw error;
    }
    await sleep(interval);
  }
}

/**
 * The rows of a Stats API answer as plain objects: `{page: '/', pageviews: 3}` for
 * `dimensions: ['event:page'], metrics: ['pageviews']` (each dimension under its name after the
 * last ':'; `event:props:plan` is `plan`).
 */
export function rows(answer) {
  const dims = answer.query.dimensions.map((d) => d.split(':').pop());
  const metrics = answer.query.metrics;
  return answer.results.map((row) => {
    const out = {};
    dims.forEach((d, i) => (out[d] = row.dimensions[i]));
    metrics.forEach((m, i) => (out[m] = row.metrics[i]));
    return out;
  });
}

#!/usr/bin/env node
// Replays the Worker's parked dead letters into its events queue, in pages, until none are left.
//
//   TALLY_ADMIN_TOKEN=... node edge/scripts/replay-dead-letters.mjs https://<your worker host>
//
// The token is the Worker's ADMIN_TOKEN secret. Prints progress after each page and exits
// non-zero on any error; it is safe to run again (a message is deleted only after it is sent).
const [url] = process.argv.slice(2);
const token = process.env.TALLY_ADMIN_TOKEN;
if (!url || !token) {
  console.error('usage: TALLY_ADMIN_TOKEN=<token> replay-dead-letters.mjs <worker url>');
  process.exit(2);
}
const base = url.replace(/\/+$/, '');
const headers = { authorization: `Bearer ${token}` };

async function call(method, path) {
  const response = await fetch(`${base}${path}`, { method, headers });
  const text = await response.text();
  if (!response.ok) throw new Error(`${method} ${path}: ${response.status} ${text}`);
  return JSON.parse(text);
}

try {
  const { parked } = await call('GET', '/admin/dead-letters');
  console.log(`${parked} dead letters parked`);
  let total = 0;
  for (;;) {
    const { replayed, more } = await call('POST', '/admin/dead-letters/replay?limit=100');
    total += replayed;
    console.log(`replayed ${total} of ${parked}`);
    if (!more || replayed === 0) break;
  }
  console.log(`done: replayed ${total}`);
} catch (error) {
  console.error(`replay failed: ${error.message}`);
  process.exit(1);
}

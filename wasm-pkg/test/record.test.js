// Records: what ingest packs unpacks to the request's events, with consecutive event ids, in the
// byte format the Rust model's snapshot tests fix.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const tally = require('./model');

const SALTS = { current: new Uint8Array(16).fill(3), previous: new Uint8Array(16).fill(4) };
const UA = 'Mozilla/5.0 (Macintosh; Intel Mac OS X 14_2) AppleWebKit/605.1.15 (KHTML, like Gecko) Version/17.2 Safari/605.1.15';
const IP = '2001:db8::42';

function ingest(events, overrides = {}) {
  const ctx = {
    contentType: 'text/plain',
    userAgent: UA,
    ip: IP,
    country: 'NL',
    region: 'NH',
    city: 'Amsterdam',
    receivedMs: 1_764_370_123_456,
    salts: SALTS,
    firstEventId: 7n,
    ...overrides,
  };
  return tally.ingest(Buffer.from(JSON.stringify(events)), ctx, ['shop.example'], 2);
}

function unpackAll(result) {
  return result.records.flatMap((record) => tally.unpackRecord(record.data));
}

test('a batch of 25 round-trips through pack and unpack with every field', () => {
  const sent = Array.from({ length: 25 }, (_, i) => ({
    n: i % 5 === 0 ? 'Signup' : 'pageview',
    u: `https://shop.example/item/${i}?utm_source=news`,
    d: 'shop.example',
    r: i % 2 ? `https://referrer.example/${i}` : undefined,
    p: i % 3 ? { plan: `p${i}`, seats: i } : undefined,
    $: i === 4 ? { amount: '12.50', currency: 'EUR' } : undefined,
    i: i !== 7,
  }));
  const result = ingest(sent);
  assert.deepEqual([result.status, result.accepted, result.dropped], [202, 25, []]);
  const current = tally.visitorId(SALTS.current, 'shop.example', IP, UA);
  const previous = tally.visitorId(SALTS.previous, 'shop.example', IP, UA);
  // One visitor: one partition key, one record.
  assert.deepEqual(result.records.map((r) => r.partitionKey), [`shop.example#${tally.route('shop.example', IP, UA) % 2n}`]);
  const got = unpackAll(result);
  const want = sent.map((e, i) => ({
    kind: 'event',
    id: 7n + BigInt(i),
    receivedMs: 1_764_370_123_456,
    site: 'shop.example',
    name: e.n,
    url: e.u,
    referrer: e.r ?? null,
    props: e.p ? [['plan', `p${i}`], ['seats', String(i)]] : [],
    revenue: e.$ ?? null,
    interactive: e.i,
    userAgent: UA,
    country: 'NL',
    visitor: { current, previous },
    region: 'NL-NH',
    city: 'Amsterdam',
    engagement: null,
    hashMode: false,
  }));
  assert.deepEqual(got, want);
});

test("an engagement event (Plausible's tracker) keeps its scroll depth and engaged time", () => {
  const result = ingest([
    { n: 'engagement', u: 'https://shop.example/item/1', d: 'shop.example', sd: 180, e: 4200 },
    { n: 'engagement', u: 'https://shop.example/item/1', d: 'shop.example', e: '900' },
    { n: 'engagement', u: 'https://shop.example/item/1', d: 'shop.example' },
  ]);
  assert.deepEqual([result.accepted, result.dropped], [2, ['missing_field']]);
  const got = unpackAll(result).filter((e) => e.kind === 'event').map((e) => [e.name, e.engagement]);
  assert.deepEqual(got, [
    ['engagement', { scrollDepth: 100, engagedMs: 4200 }],
    ['engagement', { scrollDepth: null, engagedMs: 900 }],
  ]);
});

test('event ids are consecutive from firstEventId in body order, drops included', () => {
  const ok = { name: 'pageview', url: 'https://shop.example/', domain: 'shop.example' };
  const batch = [ok, { name: 'pageview', domain: 'shop.example' }, ok, { ...ok, domain: 'x.example' }, ok];
  // 16 random bytes are read little-endian, as the native server reads its own.
  const bytes = Uint8Array.from({ length: 16 }, (_, i) => (i * 37 + 11) & 0xff);
  const first = BigInt(`0x${Buffer.from(bytes).reverse().toString('hex')}`);
  for (const firstEventId of [bytes, first]) {
    const result = ingest(batch, { firstEventId });
    assert.deepEqual([result.accepted, result.dropped], [3, ['missing_field', 'unknown_site']]);
    const ids = unpackAll(result).map((e) => e.id).sort((a, b) => (a < b ? -1 : 1));
    assert.deepEqual(ids, [first, first + 1n, first + 2n, first + 3n, first + 4n]);
  }
  // Ids wrap at 2^128, as the model's wrapping_add does.
  const top = (1n << 128n) - 2n;
  const ids = unpackAll(ingest([ok, ok, ok], { firstEventId: top })).map((e) => e.id);
  assert.deepEqual(ids, [top, top + 1n, 0n]);
});

test('the record bytes are version 1 with entries of codec version 3, as the Rust snapshots fix them', () => {
  // model/src/record.rs version_1_snapshot: a bot drop with id 7 naming no site, at 1 ms.
  assert.deepEqual(tally.unpackRecord(Uint8Array.of(1, 1, 7, 3, 1, 1, 7, 0, 0, 2)), [
    { kind: 'drop', id: 7n, site: null, reason: 'bot', receivedMs: 1 },
  ]);
  // Entries of codec version 2 (no region or city) are still read.
  assert.deepEqual(tally.unpackRecord(Uint8Array.of(1, 1, 7, 2, 1, 1, 7, 0, 0, 2)), [
    { kind: 'drop', id: 7n, site: null, reason: 'bot', receivedMs: 1 },
  ]);
  // An entry of codec version 1 (drops had no id) is still read.
  assert.deepEqual(tally.unpackRecord(Uint8Array.of(1, 1, 5, 1, 1, 0, 0, 2)), [
    { kind: 'drop', id: null, site: null, reason: 'bot', receivedMs: 1 },
  ]);
  const result = ingest({ name: 'pageview', url: 'https://x.example/', domain: 'x.example' }, { receivedMs: 1 });
  assert.deepEqual(result.records.map((r) => [r.partitionKey, [...r.data]]), [['#0', [1, 1, 7, 3, 1, 1, 7, 0, 1, 2]]]);
  assert.ok(result.records[0].data instanceof Uint8Array);
});

test('unpackRecord refuses what is not a record', () => {
  assert.throws(() => tally.unpackRecord(new Uint8Array()), /empty record/);
  assert.throws(() => tally.unpackRecord(Uint8Array.of(2, 0)), /unknown record version 2/);
  assert.throws(() => tally.unpackRecord(Uint8Array.of(1, 5)), /malformed record framing/);
  assert.throws(() => tally.unpackRecord(Uint8Array.of(1, 1, 1, 9)), /entry 0/);
});

test('formatInfo names the versions and limits of this build', () => {
  assert.deepEqual(tally.formatInfo(), {
    recordVersion: 1,
    entryVersion: 3,
    maxRecordBytes: 1_000_000,
    maxBodyBytes: 65_536,
    maxBatchEvents: 25,
  });
});

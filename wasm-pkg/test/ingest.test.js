// ingest(): the shared bad-input vectors give the native server's answers, and the request's
// context (sites, country, sub-partitions, size limit) is applied as the server applies it.
'use strict';

const { describe, test } = require('node:test');
const assert = require('node:assert/strict');
const tally = require('./model');
const { loadVectors } = require('./vectors');

const SALTS = { current: new Uint8Array(16).fill(1), previous: new Uint8Array(16).fill(2) };
const UA = 'Mozilla/5.0 (Windows NT 10.0; Win64; x64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';

function context(overrides = {}) {
  return {
    contentType: 'application/json',
    userAgent: UA,
    ip: '203.0.113.7',
    country: null,
    receivedMs: 1_764_370_000_000,
    salts: SALTS,
    firstEventId: 1000n,
    ...overrides,
  };
}

function body(value) {
  return Buffer.from(typeof value === 'string' ? value : JSON.stringify(value));
}

function entriesOf(result) {
  return result.records.flatMap((record) => tally.unpackRecord(record.data));
}

const sorted = (list) => [...list].sort();

describe('the shared bad-input vectors', () => {
  const { site, vectors } = loadVectors();

  test('cover every answer the server gives', () => {
    const statuses = new Set(vectors.map((v) => v.expect.status));
    assert.deepEqual([...statuses].sort(), [202, 400, 413, 415]);
    assert.ok(vectors.length >= 50, `only ${vectors.length} vectors`);
  });

  vectors.forEach((v, i) => {
    test(`${v.name}: ${v.about}`, () => {
      const ctx = context({
        contentType: v.headers['content-type'] ?? null,
        userAgent: v.headers['user-agent'] ?? '',
        ip: `198.51.100.${i % 250}`,
        firstEventId: BigInt(i) << 64n,
      });
      const result = tally.ingest(v.body, ctx, [site], 1);
      if (v.expect.status !== 202) {
        assert.deepEqual(result, { status: v.expect.status, error: v.expect.error, accepted: 0, dropped: [], records: [] });
        return;
      }
      assert.deepEqual(
        { status: result.status, error: result.error, accepted: result.accepted, dropped: result.dropped },
        { status: 202, error: undefined, accepted: v.expect.accepted, dropped: v.expect.dropped },
      );
      // Every event of the body is in the records, accepted or dropped; the drops naming the
      // site are the ones the core counts for it (`site_drops`).
      const entries = entriesOf(result);
      const events = entries.filter((e) => e.kind === 'event');
      const drops = entries.filter((e) => e.kind === 'drop');
      assert.equal(events.length, v.expect.accepted);
      assert.deepEqual(sorted(drops.map((d) => d.reason)), sorted(v.expect.dropped));
      assert.deepEqual(sorted(drops.filter((d) => d.site === site).map((d) => d.reason)), sorted(v.expect.site_drops));
      assert.ok(events.every((e) => e.site === site));
    });
  });
});

describe('ingest', () => {
  const event = { name: 'pageview', url: 'https://a.example/p', domain: 'a.example' };

  test('refuses a body over 64 KiB before looking at its type, as the server does', () => {
    const big = Buffer.alloc(65_537, ' ');
    const result = tally.ingest(big, context({ contentType: 'application/xml' }), ['a.example'], 1);
    assert.deepEqual([result.status, result.error], [413, 'body_too_large']);
    assert.equal(tally.ingest(Buffer.alloc(10, ' '), context({ contentType: 'application/xml' }), [], 1).status, 415);
  });

  test('takes a body without Content-Type', () => {
    const result = tally.ingest(body(event), context({ contentType: undefined }), ['a.example'], 1);
    assert.deepEqual([result.status, result.accepted], [202, 1]);
  });

  test('packs drops for unregistered sites without their domain, under partition key #0', () => {
    const result = tally.ingest(body({ ...event, domain: 'stranger.example' }), context(), ['a.example'], 1);
    assert.deepEqual(result.dropped, ['unknown_site']);
    assert.equal(result.records.length, 1);
    assert.equal(result.records[0].partitionKey, '#0');
    assert.deepEqual(tally.unpackRecord(result.records[0].data), [
      { kind: 'drop', id: 1000n, site: null, reason: 'unknown_site', receivedMs: 1_764_370_000_000 },
    ]);
  });

  test('normalises the registered domains and asks a predicate with normalised site ids', () => {
    const list = tally.ingest(body({ ...event, domain: 'www.A.Example' }), context(), ['WWW.a.example.'], 1);
    assert.equal(list.accepted, 1);
    const asked = [];
    const predicate = (site) => {
      asked.push(site);
      return site === 'a.example';
    };
    const batch = [{ ...event, domain: 'WWW.A.EXAMPLE' }, { ...event, domain: 'b.example' }];
    const result = tally.ingest(body(batch), context(), predicate, 1);
    assert.deepEqual([result.accepted, result.dropped], [1, ['unknown_site']]);
    assert.deepEqual(asked, ['a.example', 'b.example']);
  });

  test('rethrows what a sites predicate throws, and refuses malformed arguments', () => {
    const boom = new Error('registry down');
    assert.throws(() => tally.ingest(body(event), context(), () => { throw boom; }, 1), (e) => e === boom);
    assert.throws(() => tally.ingest(body(event), context(), ['not a domain'], 1), /invalid domain/);
    assert.throws(() => tally.ingest(body(event), context(), 'a.example', 1), /string\[\] or a function/);
    const shortSalt = { current: new Uint8Array(15), previous: new Uint8Array(16) };
    assert.throws(() => tally.ingest(body(event), context({ salts: shortSalt }), [], 1), /salts.current.*16 bytes/);
    assert.throws(() => tally.ingest(body(event), context({ ip: 'nowhere' }), [], 1), /not an IP address/);
    assert.throws(() => tally.ingest(body(event), context({ receivedMs: 1.5 }), [], 1), /receivedMs/);
    assert.throws(() => tally.ingest(body(event), context({ firstEventId: -1n }), [], 1), /firstEventId/);
    assert.throws(() => tally.ingest(body(event), context(), [], 0), /subPartitions/);
  });

  test('keeps a two-letter country, upper-cased, and drops unknown ones', () => {
    const country = (value) => entriesOf(tally.ingest(body(event), context({ country: value }), ['a.example'], 1))[0].country;
    assert.equal(country('de'), 'DE');
    assert.equal(country(' FR '), 'FR');
    assert.equal(country('XX'), null);
    assert.equal(country('T1'), null);
    assert.equal(country(null), null);
  });

  test('keeps a region as an ISO 3166-2 code and a city, both only with a country', () => {
    const geo = (ctx) => {
      const [e] = entriesOf(tally.ingest(body(event), context(ctx), ['a.example'], 1));
      return [e.region, e.city];
    };
    assert.deepEqual(geo({ country: 'us', region: 'tx', city: ' Austin ' }), ['US-TX', 'Austin']);
    assert.deepEqual(geo({ country: 'US', region: 'US-TX' }), ['US-TX', null]);
    assert.deepEqual(geo({ country: 'US', region: 'DE-BE' }), [null, null]);
    assert.deepEqual(geo({ country: 'US', region: 'Texas' }), [null, null]);
    assert.deepEqual(geo({ country: null, region: 'TX', city: 'Austin' }), [null, null]);
  });

  test('routes each visitor to its sub-partition of the site, by a route that does not change at midnight', () => {
    const subPartitions = 4;
    const keys = new Set();
    for (let i = 0; i < 40; i += 1) {
      const ip = `192.0.2.${i}`;
      const result = tally.ingest(body(event), context({ ip }), ['a.example'], subPartitions);
      const [record] = result.records;
      const [entry] = tally.unpackRecord(record.data);
      const route = tally.route('a.example', ip, entry.userAgent);
      assert.equal(record.partitionKey, `a.example#${route % BigInt(subPartitions)}`);
      keys.add(record.partitionKey);
    }
    assert.equal(keys.size, subPartitions, `40 visitors used only ${[...keys]}`);
  });
});

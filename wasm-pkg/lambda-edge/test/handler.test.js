// The Lambda@Edge handler against kinesalite and dynalite on loopback: what it answers, and that
// exactly the accepted events and the drops reach the stream, once each.
'use strict';

const { after, before, describe, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { GetItemCommand } = require('@aws-sdk/client-dynamodb');
const { createHandler } = require('../src/handler');
const { loadConfig } = require('../src/config');
const { dayKey, dayOf } = require('../src/salts');
const tally = require('../src/model');
const { REGION, createSaltTable, createStream, readStream, startDynamo, startKinesis } = require('./support/standins');
const { responseHeader, viewerRequest } = require('./support/viewer-request');
const { closedPort, startProxy } = require('./support/proxy');

const BROWSER = 'Mozilla/5.0 (X11; Linux x86_64) AppleWebKit/537.36 (KHTML, like Gecko) Chrome/124.0.0.0 Safari/537.36';
const BOT = 'Mozilla/5.0 (compatible; Googlebot/2.1; +http://www.google.com/bot.html)';
const SITES = ['shop.example', 'blog.example'];
const SALT_TABLE = 'tally-edge-salts';

let kinesis;
let dynamo;
let dir;
let streams = 0;

before(async () => {
  [kinesis, dynamo] = await Promise.all([startKinesis(), startDynamo()]);
  await createSaltTable(dynamo.client, SALT_TABLE);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tally-edge-test-'));
});

after(async () => {
  await Promise.all([kinesis.close(), dynamo.close()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

/** A new stream with `shards` shards, and a handler writing to it through config.json. */
async function setup({ shards = 3, config = {}, deps = {} } = {}) {
  streams += 1;
  const stream = `events-${streams}`;
  await createStream(kinesis.client, stream, shards);
  const file = path.join(dir, `config-${streams}.json`);
  const settings = {
    region: REGION,
    stream,
    saltTable: SALT_TABLE,
    sites: SITES,
    subPartitions: 4,
    deadlineMs: 2000,
    kinesisEndpoint: kinesis.endpoint,
    dynamodbEndpoint: dynamo.endpoint,
    standInCredentials: true,
    ...config,
  };
  fs.writeFileSync(file, JSON.stringify(settings));
  return { stream, handle: createHandler(loadConfig(file), deps) };
}

/** Event ids the test can predict: request k's events start at k << 32. */
function countingIds() {
  let next = 0n;
  return () => {
    next += 1n;
    return next << 32n;
  };
}

function post(body, { ip = '203.0.113.10', ua = BROWSER, type = 'application/json', country, region, city } = {}) {
  const headers = { 'Content-Type': type, 'User-Agent': ua };
  if (country) headers['CloudFront-Viewer-Country'] = country;
  if (region) headers['CloudFront-Viewer-Country-Region'] = region;
  if (city) headers['CloudFront-Viewer-City'] = city;
  return viewerRequest({ clientIp: ip, headers, body: typeof body === 'string' ? body : JSON.stringify(body) });
}

const page = (site, p, extra = {}) => ({ name: 'pageview', url: `https://${site}${p}`, domain: site, ...extra });

async function decoded(stream) {
  const { shards, records } = await readStream(kinesis.client, stream);
  const entries = records.flatMap((r) => tally.unpackRecord(r.data).map((entry) => ({ ...entry, partitionKey: r.partitionKey })));
  return { shards, records, entries };
}

async function saltOf(day) {
  const key = { day: { S: dayKey(day) } };
  const { Item } = await dynamo.client.send(new GetItemCommand({ TableName: SALT_TABLE, Key: key, ConsistentRead: true }));
  return Item.salt.B;
}

describe('POST /api/event', () => {
  test('writes exactly the accepted events and the drops to the stream, once each', async () => {
    const firsts = [];
    const ids = countingIds();
    const randomId = () => {
      firsts.push(ids());
      return firsts.at(-1);
    };
    const { stream, handle } = await setup({ deps: { randomId } });
    // Each request: its body, who sends it, and which body positions are accepted.
    const requests = [];
    const add = (body, options, acceptedAt, dropped) => requests.push({ body, options, acceptedAt, dropped });
    add(page('shop.example', '/'), { ip: '198.51.100.1', country: 'de', region: 'by', city: 'Munich' }, [0], []);
    add(Array.from({ length: 25 }, (_, i) => page('shop.example', `/p/${i}`)), { ip: '198.51.100.2' }, [...Array(25).keys()], []);
    const mixed = Array.from({ length: 25 }, (_, i) => {
      if (i % 5 === 1) return { name: 'pageview', domain: 'blog.example' };
      if (i % 5 === 3) return page('stranger.example', '/');
      return page('blog.example', `/post/${i}`, { props: { author: `a${i % 3}` } });
    });
    add(
      mixed,
      { ip: '2001:db8::7' },
      mixed.map((_, i) => i).filter((i) => i % 5 !== 1 && i % 5 !== 3),
      mixed.flatMap((_, i) => (i % 5 === 1 ? ['missing_field'] : i % 5 === 3 ? ['unknown_site'] : [])),
    );
    add(page('shop.example', '/'), { ip: '198.51.100.4', ua: BOT }, [], ['bot']);
    add([page('blog.example', '/a'), page('blog.example', '/b'), { n: 'Signup', u: 'https://blog.example/b', d: 'blog.example' }], { ip: '198.51.100.5', type: 'text/plain' }, [0, 1, 2], []);
    for (let v = 0; v < 12; v += 1) add(page(SITES[v % 2], `/v/${v}`), { ip: `192.0.2.${v + 1}` }, [0], []);

    const wantIds = [];
    const wantDrops = [];
    for (const r of requests) {
      const answer = await handle(post(r.body, r.options));
      assert.equal(answer.status, '202', JSON.stringify(answer));
      assert.equal(answer.body, 'ok');
      assert.equal(responseHeader(answer, 'x-tally-accepted'), String(r.acceptedAt.length));
      assert.equal(responseHeader(answer, 'x-tally-dropped'), r.dropped.length ? r.dropped.join(', ') : undefined);
      assert.equal(responseHeader(answer, 'access-control-allow-origin'), '*');
      wantIds.push(...r.acceptedAt.map((i) => firsts.at(-1) + BigInt(i)));
      wantDrops.push(...r.dropped);
    }
    // Bad bodies are refused and write nothing.
    const bad = await handle(post('{"name":'));
    assert.deepEqual([bad.status, JSON.parse(bad.body)], ['400', { error: 'invalid_json' }]);
    assert.equal(responseHeader(bad, 'content-type'), 'application/json');
    const form = await handle(post(page('shop.example', '/'), { type: 'application/x-www-form-urlencoded' }));
    assert.deepEqual([form.status, JSON.parse(form.body)], ['415', { error: 'unsupported_content_type' }]);

    const { shards, records, entries } = await decoded(stream);
    assert.equal(shards, 3);
    const events = entries.filter((e) => e.kind === 'event');
    const got = events.map((e) => e.id).sort((a, b) => (a < b ? -1 : a > b ? 1 : 0));
    assert.equal(got.length, wantIds.length, 'every accepted event once');
    assert.deepEqual(got, [...wantIds].sort((a, b) => (a < b ? -1 : a > b ? 1 : 0)));
    assert.deepEqual(entries.filter((e) => e.kind === 'drop').map((e) => e.reason).sort(), [...wantDrops].sort());
    // Routing: events by site and the sub-partition of their route (site, IP, user agent: one
    // key per visitor, unchanged at midnight), drops by site in sub-partition 0.
    const keyOf = new Map();
    for (const e of entries) {
      if (e.kind !== 'event') {
        assert.equal(e.partitionKey, `${e.site ?? ''}#0`);
        continue;
      }
      assert.match(e.partitionKey, new RegExp(`^${e.site.replace('.', '\\.')}#[0-3]$`));
      const visitor = `${e.site} ${e.visitor.current}`;
      assert.equal(keyOf.get(visitor) ?? e.partitionKey, e.partitionKey, 'one key per visitor');
      keyOf.set(visitor, e.partitionKey);
    }
    assert.ok(records.length < entries.length, 'entries are packed several to a record');
    // Visitor ids come from the day's shared salts in the table.
    const today = dayOf(Date.now());
    const [current, previous] = [await saltOf(today), await saltOf(today - 1)];
    const first = events.find((e) => e.id === firsts[0]);
    assert.deepEqual([first.country, first.region, first.city], ['DE', 'DE-BY', 'Munich']);
    assert.equal(first.visitor.current, tally.visitorId(current, 'shop.example', '198.51.100.1', BROWSER));
    assert.equal(first.visitor.previous, tally.visitorId(previous, 'shop.example', '198.51.100.1', BROWSER));
    assert.equal(first.partitionKey, `shop.example#${tally.route('shop.example', '198.51.100.1', BROWSER) % 4n}`);
  });

  test('answers 413 for a body CloudFront truncated, and 400 for no body', async () => {
    const { handle } = await setup({ shards: 1 });
    const cut = viewerRequest({ headers: { 'Content-Type': 'application/json' }, body: '{"name":"pagev', truncated: true });
    const answer = await handle(cut);
    assert.deepEqual([answer.status, JSON.parse(answer.body)], ['413', { error: 'body_too_large' }]);
    const empty = await handle(viewerRequest({ headers: { 'User-Agent': BROWSER } }));
    assert.deepEqual([empty.status, JSON.parse(empty.body)], ['400', { error: 'empty_body' }]);
  });
});

describe('other requests', () => {
  test('OPTIONS is the CORS preflight; other methods get 405; other paths go to the origin unchanged', async () => {
    const { handle } = await setup({ shards: 1 });
    const preflight = await handle(
      viewerRequest({ method: 'OPTIONS', headers: { 'Access-Control-Request-Headers': 'content-type' } }),
    );
    assert.equal(preflight.status, '204');
    assert.equal(responseHeader(preflight, 'access-control-allow-origin'), '*');
    assert.equal(responseHeader(preflight, 'access-control-allow-methods'), 'POST, OPTIONS');
    assert.equal(responseHeader(preflight, 'access-control-allow-headers'), 'content-type');
    const get = await handle(viewerRequest({ method: 'GET' }));
    assert.deepEqual([get.status, responseHeader(get, 'allow')], ['405', 'POST, OPTIONS']);
    const elsewhere = [viewerRequest({ method: 'GET', uri: '/' }), viewerRequest({ uri: '/api/other', body: 'x' })];
    for (const event of elsewhere) {
      const request = event.Records[0].cf.request;
      const snapshot = JSON.parse(JSON.stringify(request));
      const out = await handle(event);
      assert.equal(out, request);
      assert.deepEqual(JSON.parse(JSON.stringify(out)), snapshot);
    }
  });
});

describe('when Kinesis fails', () => {
  test('retries only the failed entries of a partial failure', async () => {
    // The first PutRecords: only the even entries reach kinesalite, the odd ones are "throttled".
    const proxy = await startProxy(kinesis.endpoint, (call, request) => {
      if (call > 1) return { forward: request };
      const kept = request.Records.filter((_, i) => i % 2 === 0);
      return {
        forward: { ...request, Records: kept },
        rewrite: (response) => {
          const results = request.Records.map((_, i) =>
            i % 2 === 0
              ? response.Records[i / 2]
              : { ErrorCode: 'ProvisionedThroughputExceededException', ErrorMessage: 'Rate exceeded for shard' },
          );
          return { ...response, FailedRecordCount: results.filter((r) => r.ErrorCode).length, Records: results };
        },
      };
    });
    try {
      const sites = [...SITES, 'docs.example'];
      const { stream, handle } = await setup({ config: { kinesisEndpoint: proxy.endpoint, sites } });
      // Events of two sites, a drop of a third and one of an unknown site: four partition keys
      // (shop.example#k, blog.example#k', docs.example#0, #0), so four records in one call.
      const body = [page('shop.example', '/1'), page('blog.example', '/2'), page('x.example', '/'), { name: 'n', domain: 'docs.example' }];
      const answer = await handle(post(body, { ip: '198.51.100.77' }));
      assert.equal(answer.status, '202', JSON.stringify(answer));
      assert.equal(proxy.calls.length, 2);
      assert.equal(proxy.calls[0].Records.length, 4);
      assert.equal(proxy.calls[1].Records.length, 2, 'the retry carries only the two failed records');
      assert.deepEqual(
        proxy.calls[1].Records.map((r) => r.PartitionKey),
        proxy.calls[0].Records.filter((_, i) => i % 2 === 1).map((r) => r.PartitionKey),
      );
      const { records, entries } = await decoded(stream);
      assert.equal(records.length, 4, 'each record once');
      assert.deepEqual(entries.map((e) => e.kind).sort(), ['drop', 'drop', 'event', 'event']);
    } finally {
      await proxy.close();
    }
  });

  test('answers 503, not 202, when Kinesis keeps failing until the deadline', async () => {
    const proxy = await startProxy(kinesis.endpoint, () => ({ status: 500, body: { __type: 'InternalFailure', message: 'down' } }));
    try {
      const { stream, handle } = await setup({ config: { kinesisEndpoint: proxy.endpoint, deadlineMs: 600 } });
      const started = Date.now();
      const answer = await handle(post(page('shop.example', '/'), { ip: '198.51.100.78' }));
      const took = Date.now() - started;
      assert.deepEqual([answer.status, JSON.parse(answer.body)], ['503', { error: 'event stream unavailable' }]);
      assert.equal(responseHeader(answer, 'retry-after'), '1');
      assert.ok(proxy.calls.length >= 2, `retried: ${proxy.calls.length} calls`);
      assert.ok(took < 600 + 1500, `answered soon after the deadline: ${took} ms`);
      assert.equal((await decoded(stream)).records.length, 0);
    } finally {
      await proxy.close();
    }
  });

  test('answers 503 when nothing listens at the Kinesis endpoint', async () => {
    const port = await closedPort();
    const { handle } = await setup({ config: { kinesisEndpoint: `http://127.0.0.1:${port}`, deadlineMs: 500 } });
    const started = Date.now();
    const answer = await handle(post(page('shop.example', '/'), { ip: '198.51.100.79' }));
    assert.deepEqual([answer.status, JSON.parse(answer.body)], ['503', { error: 'event stream unavailable' }]);
    assert.ok(Date.now() - started < 500 + 1500);
  });

  test('answers 503 at once for a stream that does not exist', async () => {
    const proxy = await startProxy(kinesis.endpoint, (_, request) => ({ forward: request }));
    try {
      const config = { stream: 'no-such-stream', kinesisEndpoint: proxy.endpoint, deadlineMs: 3000 };
      const { handle } = await setup({ shards: 1, config });
      const answer = await handle(post(page('shop.example', '/'), { ip: '198.51.100.80' }));
      assert.deepEqual([answer.status, JSON.parse(answer.body)], ['503', { error: 'event stream unavailable' }]);
      assert.equal(proxy.calls.length, 1, 'a permanent error is not retried');
    } finally {
      await proxy.close();
    }
  });

  test('answers 503 when the salt table cannot be reached', async () => {
    const port = await closedPort();
    const { handle } = await setup({ shards: 1, config: { dynamodbEndpoint: `http://127.0.0.1:${port}`, deadlineMs: 500 } });
    const answer = await handle(post(page('shop.example', '/'), { ip: '198.51.100.81' }));
    assert.deepEqual([answer.status, JSON.parse(answer.body)], ['503', { error: 'salts unavailable' }]);
  });
});

// The deployable bundle (scripts/bundle.js: index.js, src/, pkg/, config.json) runs as Lambda
// would run it: index.handler reads config.json beside it. The AWS SDK comes from outside the
// bundle, as the Lambda runtime provides it (here: a link to this package's node_modules).
'use strict';

const { after, before, test } = require('node:test');
const assert = require('node:assert/strict');
const fs = require('node:fs');
const os = require('node:os');
const path = require('node:path');
const { stage } = require('../../scripts/bundle');
const tally = require('../src/model');
const { REGION, createSaltTable, createStream, readStream, startDynamo, startKinesis } = require('./support/standins');
const { responseHeader, viewerRequest } = require('./support/viewer-request');

let kinesis;
let dynamo;
let dir;

before(async () => {
  [kinesis, dynamo] = await Promise.all([startKinesis(), startDynamo()]);
  await Promise.all([createStream(kinesis.client, 'bundle-events', 2), createSaltTable(dynamo.client, 'bundle-salts')]);
  dir = fs.mkdtempSync(path.join(os.tmpdir(), 'tally-edge-bundle-'));
});

after(async () => {
  await Promise.all([kinesis.close(), dynamo.close()]);
  fs.rmSync(dir, { recursive: true, force: true });
});

test('index.handler of the staged bundle takes an event into the stream', async () => {
  const config = path.join(dir, 'source-config.json');
  fs.writeFileSync(
    config,
    JSON.stringify({
      region: REGION,
      stream: 'bundle-events',
      saltTable: 'bundle-salts',
      sites: ['shop.example'],
      kinesisEndpoint: kinesis.endpoint,
      dynamodbEndpoint: dynamo.endpoint,
      standInCredentials: true,
    }),
  );
  const bundle = path.join(dir, 'bundle');
  stage(bundle, config);
  fs.symlinkSync(path.join(__dirname, '..', 'node_modules'), path.join(bundle, 'node_modules'), 'dir');
  const { handler } = require(path.join(bundle, 'index.js'));

  const passed = viewerRequest({ method: 'GET', uri: '/pricing' });
  assert.equal(await handler(passed), passed.Records[0].cf.request);
  const body = JSON.stringify({ name: 'pageview', url: 'https://shop.example/', domain: 'shop.example' });
  const headers = { 'Content-Type': 'text/plain', 'User-Agent': 'Mozilla/5.0 (X11; Linux x86_64; rv:126.0) Gecko/20100101 Firefox/126.0' };
  const answer = await handler(viewerRequest({ headers, body }));
  assert.equal(answer.status, '202', JSON.stringify(answer));
  assert.equal(responseHeader(answer, 'x-tally-accepted'), '1');
  const { records } = await readStream(kinesis.client, 'bundle-events');
  const entries = records.flatMap((r) => tally.unpackRecord(r.data));
  assert.deepEqual(entries.map((e) => [e.kind, e.site, e.url]), [['event', 'shop.example', 'https://shop.example/']]);
});

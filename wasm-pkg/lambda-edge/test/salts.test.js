// The shared daily salts against dynalite: every location agrees on a day's salt, the previous
// day's is kept, the one before is deleted, and a container asks the table once a day.
'use strict';

const { after, before, test } = require('node:test');
const assert = require('node:assert/strict');
const { DynamoDBClient, GetItemCommand, PutItemCommand, ScanCommand } = require('@aws-sdk/client-dynamodb');
const { DAY_MS, DailySalts, DynamoSaltStore, dayKey } = require('../src/salts');
const { REGION, createSaltTable, startDynamo } = require('./support/standins');

const DAY = 20_000; // 2024-10-04
const NOON = DAY * DAY_MS + DAY_MS / 2;

let dynamo;
let tables = 0;

before(async () => {
  dynamo = await startDynamo();
});

after(async () => {
  await dynamo.close();
});

async function newTable() {
  tables += 1;
  const name = `salts-${tables}`;
  await createSaltTable(dynamo.client, name);
  return name;
}

/** A separate client per "edge location", counting the calls it makes. */
function location(table, options) {
  const client = new DynamoDBClient({
    endpoint: dynamo.endpoint,
    region: REGION,
    credentials: { accessKeyId: 'stand-in', secretAccessKey: 'stand-in' },
  });
  const counted = { calls: [], send: (command, opts) => (counted.calls.push(command.constructor.name), client.send(command, opts)) };
  return { counted, client, salts: new DailySalts(new DynamoSaltStore(counted, table, options)) };
}

async function items(table) {
  const { Items } = await dynamo.client.send(new ScanCommand({ TableName: table, ConsistentRead: true }));
  return Object.fromEntries(Items.map((i) => [i.day.S, { salt: Buffer.from(i.salt.B).toString('hex'), expiresAt: Number(i.expiresAt.N) }]));
}

const hex = (bytes) => Buffer.from(bytes).toString('hex');

test('every location gets the same salts for a day, however they race', async () => {
  const table = await newTable();
  const locations = Array.from({ length: 6 }, () => location(table));
  const got = await Promise.all(locations.map((l) => l.salts.at(NOON)));
  const stored = await items(table);
  assert.deepEqual(Object.keys(stored).sort(), [dayKey(DAY - 1), dayKey(DAY)]);
  for (const salts of got) {
    assert.equal(hex(salts.current), stored[dayKey(DAY)].salt);
    assert.equal(hex(salts.previous), stored[dayKey(DAY - 1)].salt);
  }
  assert.notEqual(stored[dayKey(DAY)].salt, stored[dayKey(DAY - 1)].salt);
  // Deleted by TTL at the end of the day after: while it is "previous", it is still needed.
  assert.equal(stored[dayKey(DAY)].expiresAt, ((DAY + 2) * DAY_MS) / 1000);
  for (const l of locations) l.client.destroy();
});

test('a location that loses the creation race uses the winner\'s salt', async () => {
  const table = await newTable();
  const winner = location(table);
  const won = await new DynamoSaltStore(winner.counted, table).salt(DAY, undefined);
  // The loser read "no salt yet" just before the winner wrote: its conditional put fails.
  const loser = location(table, { randomBytes: () => Buffer.alloc(16, 0xee) });
  let hidden = false;
  const racing = {
    send: (command, opts) => {
      if (!hidden && command instanceof GetItemCommand) {
        hidden = true;
        return Promise.resolve({});
      }
      return loser.counted.send(command, opts);
    },
  };
  const got = await new DynamoSaltStore(racing, table, { randomBytes: () => Buffer.alloc(16, 0xee) }).salt(DAY, undefined);
  assert.equal(hex(got), hex(won));
  assert.deepEqual(loser.counted.calls, ['PutItemCommand', 'GetItemCommand']);
  winner.client.destroy();
  loser.client.destroy();
});

test('rotates at UTC midnight: today becomes previous, the day before yesterday is deleted', async () => {
  const table = await newTable();
  const edge = location(table);
  const first = await edge.salts.at(NOON);
  edge.counted.calls.length = 0;
  // The same day again: from the container's cache, no call at all.
  assert.equal(await edge.salts.at(NOON + 3 * 3_600_000), first);
  assert.deepEqual(edge.counted.calls, []);
  const next = await edge.salts.at((DAY + 1) * DAY_MS);
  assert.equal(hex(next.previous), hex(first.current));
  assert.notEqual(hex(next.current), hex(first.current));
  assert.deepEqual(Object.keys(await items(table)).sort(), [dayKey(DAY), dayKey(DAY + 1)], `${dayKey(DAY - 1)} is deleted`);
  // Yesterday's salt came from the cache: one read and one write for the new day, one delete.
  assert.deepEqual(edge.counted.calls.sort(), ['DeleteItemCommand', 'GetItemCommand', 'PutItemCommand']);
  edge.client.destroy();
});

test('a salt that is not 16 bytes is an error, not a salt', async () => {
  const table = await newTable();
  const edge = location(table, { randomBytes: () => Buffer.alloc(15) });
  await assert.rejects(edge.salts.at(NOON), /must be 16 bytes, not 15/);
  const item = { day: { S: dayKey(DAY) }, salt: { B: new Uint8Array(15) }, expiresAt: { N: '0' } };
  await dynamo.client.send(new PutItemCommand({ TableName: table, Item: item }));
  await assert.rejects(new DailySalts(new DynamoSaltStore(dynamo.client, table)).at(NOON), /is not 16 bytes/);
  edge.client.destroy();
});

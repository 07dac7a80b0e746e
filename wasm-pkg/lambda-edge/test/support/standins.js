// Loopback stand-ins for the handler's tests: kinesalite (Kinesis) and dynalite (DynamoDB), each
// on 127.0.0.1 and a port the system picks, in memory; plus SDK clients for them.
'use strict';

const kinesalite = require('kinesalite');
const dynalite = require('dynalite');
const {
  CreateStreamCommand,
  DescribeStreamSummaryCommand,
  GetRecordsCommand,
  GetShardIteratorCommand,
  KinesisClient,
  ListShardsCommand,
} = require('@aws-sdk/client-kinesis');
const { CreateTableCommand, DescribeTableCommand, DynamoDBClient } = require('@aws-sdk/client-dynamodb');
const { NodeHttpHandler } = require('@smithy/node-http-handler');

const REGION = 'us-east-1';
const CREDENTIALS = { accessKeyId: 'stand-in', secretAccessKey: 'stand-in' };

function listen(server) {
  return new Promise((resolve, reject) => {
    server.once('error', reject);
    server.listen(0, '127.0.0.1', () => resolve(`http://127.0.0.1:${server.address().port}`));
  });
}

function closer(server) {
  return () =>
    new Promise((resolve) => {
      server.close(() => resolve());
      if (server.closeAllConnections) server.closeAllConnections();
    });
}

/** Starts kinesalite; returns `{ endpoint, client, close }`. */
async function startKinesis() {
  const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 });
  const endpoint = await listen(server);
  const client = new KinesisClient({ endpoint, region: REGION, credentials: CREDENTIALS, requestHandler: new NodeHttpHandler() });
  const stop = closer(server);
  return { endpoint, client, close: () => (client.destroy(), stop()) };
}

/** Starts dynalite; returns `{ endpoint, client, close }`. */
async function startDynamo() {
  const server = dynalite({ createTableMs: 0, deleteTableMs: 0, updateTableMs: 0 });
  const endpoint = await listen(server);
  const client = new DynamoDBClient({ endpoint, region: REGION, credentials: CREDENTIALS });
  const stop = closer(server);
  return { endpoint, client, close: () => (client.destroy(), stop()) };
}

async function until(what, check) {
  const deadline = Date.now() + 10_000;
  while (!(await check())) {
    if (Date.now() > deadline) throw new Error(`timed out waiting for ${what}`);
    await new Promise((resolve) => setTimeout(resolve, 20));
  }
}

/** Creates a stream with `shards` shards and waits until it is active. */
async function createStream(client, name, shards) {
  await client.send(new CreateStreamCommand({ StreamName: name, ShardCount: shards }));
  await until(`stream ${name}`, async () => {
    const { StreamDescriptionSummary: s } = await client.send(new DescribeStreamSummaryCommand({ StreamName: name }));
    return s.StreamStatus === 'ACTIVE';
  });
}

/** Creates the salt table as the README describes it and waits until it is active. */
async function createSaltTable(client, name) {
  await client.send(
    new CreateTableCommand({
      TableName: name,
      AttributeDefinitions: [{ AttributeName: 'day', AttributeType: 'S' }],
      KeySchema: [{ AttributeName: 'day', KeyType: 'HASH' }],
      BillingMode: 'PAY_PER_REQUEST',
    }),
  );
  await until(`table ${name}`, async () => {
    const { Table } = await client.send(new DescribeTableCommand({ TableName: name }));
    return Table.TableStatus === 'ACTIVE';
  });
}

/** Every record of every shard of a stream: `{ shardId, partitionKey, data }`. */
async function readStream(client, name) {
  const { Shards } = await client.send(new ListShardsCommand({ StreamName: name }));
  const out = [];
  for (const { ShardId } of Shards) {
    const iterator = await client.send(
      new GetShardIteratorCommand({ StreamName: name, ShardId, ShardIteratorType: 'TRIM_HORIZON' }),
    );
    let next = iterator.ShardIterator;
    for (;;) {
      const page = await client.send(new GetRecordsCommand({ ShardIterator: next, Limit: 1000 }));
      for (const r of page.Records) out.push({ shardId: ShardId, partitionKey: r.PartitionKey, data: r.Data });
      if (page.Records.length === 0 || !page.NextShardIterator) break;
      next = page.NextShardIterator;
    }
  }
  return { shards: Shards.length, records: out };
}

module.exports = { REGION, createSaltTable, createStream, readStream, startDynamo, startKinesis };

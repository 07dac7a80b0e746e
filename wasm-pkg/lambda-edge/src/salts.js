// Daily visitor-id salts shared by every edge location: one random 16-byte salt per UTC day in
// a DynamoDB table. The first location to need a day's salt creates it with a conditional put;
// every other one reads it. The previous day's salt is kept for visits across midnight; older
// ones are deleted (explicitly on rotation, and by the table's TTL), so past visitor ids cannot
// be tied back to IP addresses. A container caches the salts until the UTC day changes.
'use strict';

const crypto = require('node:crypto');
const { DeleteItemCommand, GetItemCommand, PutItemCommand } = require('@aws-sdk/client-dynamodb');

const DAY_MS = 86_400_000;
const SALT_BYTES = 16;

/** The UTC day number (days since 1970-01-01) of an instant in ms. */
function dayOf(ms) {
  return Math.floor(ms / DAY_MS);
}

/** A day's key in the table: its date, `YYYY-MM-DD`. */
function dayKey(day) {
  return new Date(day * DAY_MS).toISOString().slice(0, 10);
}

/** The salt table: `day` (S, the key), `salt` (B, 16 bytes), `expiresAt` (N, TTL in epoch s). */
class DynamoSaltStore {
  constructor(client, table, { randomBytes = crypto.randomBytes } = {}) {
    this.client = client;
    this.table = table;
    this.randomBytes = randomBytes;
  }

  /** The salt of `day`, created if no location has created it yet. */
  async salt(day, signal) {
    const existing = await this.read(day, signal);
    if (existing) return existing;
    const salt = new Uint8Array(this.randomBytes(SALT_BYTES));
    if (salt.length !== SALT_BYTES) throw new Error(`a new salt must be ${SALT_BYTES} bytes, not ${salt.length}`);
    const item = {
      day: { S: dayKey(day) },
      salt: { B: salt },
      // Needed until the end of the next day; TTL deletion may lag, hence `forget` too.
      expiresAt: { N: String((day + 2) * (DAY_MS / 1000)) },
    };
    const put = new PutItemCommand({
      TableName: this.table,
      Item: item,
      ConditionExpression: 'attribute_not_exists(#day)',
      ExpressionAttributeNames: { '#day': 'day' },
    });
    try {
      await this.client.send(put, { abortSignal: signal });
      return salt;
    } catch (error) {
      if (error.name !== 'ConditionalCheckFailedException') throw error;
    }
    // Another location created it first: everyone uses the winner's salt.
    const winner = await this.read(day, signal);
    if (!winner) throw new Error(`salt of ${dayKey(day)} vanished after its creation`);
    return winner;
  }

  /** Deletes the salt of `day` (idempotent). */
  async forget(day, signal) {
    const command = new DeleteItemCommand({ TableName: this.table, Key: { day: { S: dayKey(day) } } });
    await this.client.send(command, { abortSignal: signal });
  }

  async read(day, signal) {
    const get = new GetItemCommand({ TableName: this.table, Key: { day: { S: dayKey(day) } }, ConsistentRead: true });
    const { Item } = await this.client.send(get, { abortSignal: signal });
    if (!Item) return null;
    const salt = Item.salt && Item.salt.B;
    if (!(salt instanceof Uint8Array) || salt.length !== SALT_BYTES) {
      throw new Error(`salt of ${dayKey(day)} is not ${SALT_BYTES} bytes`);
    }
    return salt;
  }
}

/** The salts in force at an instant, cached for the rest of the UTC day. */
class DailySalts {
  constructor(store) {
    this.store = store;
    this.cached = null;
  }

  /** `{ current, previous }` at `ms`. */
  async at(ms, signal) {
    const day = dayOf(ms);
    if (this.cached && this.cached.day === day) return this.cached.salts;
    const known = this.cached && this.cached.day === day - 1 ? this.cached.salts.current : null;
    const [current, previous] = await Promise.all([
      this.store.salt(day, signal),
      known || this.store.salt(day - 1, signal),
      // Best effort: the table's TTL deletes it as well, only later.
      this.store.forget(day - 2, signal).catch((error) => console.error(`tally-edge: old salt not deleted: ${error.name}`)),
    ]);
    this.cached = { day, salts: { current, previous } };
    return this.cached.salts;
  }
}

module.exports = { DAY_MS, DailySalts, DynamoSaltStore, dayKey, dayOf };

// config.json: the example is valid, defaults are filled in, and mistakes are refused by name.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const path = require('node:path');
const { checkConfig, loadConfig } = require('../src/config');

const MINIMAL = { region: 'eu-west-1', stream: 's', saltTable: 't', sites: ['example.com'] };

test('config.example.json is valid', () => {
  const config = loadConfig(path.join(__dirname, '..', 'config.example.json'));
  assert.equal(config.stream, 'tally-events');
  assert.equal(config.path, '/api/event');
});

test('fills in the defaults', () => {
  assert.deepEqual(
    { ...checkConfig(MINIMAL) },
    { ...MINIMAL, path: '/api/event', subPartitions: 1, deadlineMs: 3000, kinesisEndpoint: null, dynamodbEndpoint: null, standInCredentials: false },
  );
});

test('refuses mistakes by name', () => {
  const bad = [
    [{ ...MINIMAL, stream: undefined }, /"stream" must be/],
    [{ region: 'r', stream: 's', saltTable: 't' }, /"sites" is required/],
    [{ ...MINIMAL, streem: 'x' }, /unknown field "streem"/],
    [{ ...MINIMAL, sites: 'example.com' }, /"sites" must be a list/],
    [{ ...MINIMAL, subPartitions: 0 }, /subPartitions/],
    [{ ...MINIMAL, deadlineMs: 5000 }, /deadlineMs/],
    [{ ...MINIMAL, standInCredentials: 'yes' }, /standInCredentials/],
    [[], /not an object/],
  ];
  for (const [raw, message] of bad) assert.throws(() => checkConfig(raw), message, JSON.stringify(raw));
});

// The handler's configuration: Lambda@Edge has no environment variables, so it is a config.json
// bundled beside index.js (see config.example.json and the README).
'use strict';

const fs = require('node:fs');

const DEFAULTS = {
  path: '/api/event',
  subPartitions: 1,
  deadlineMs: 3000,
  kinesisEndpoint: null,
  dynamodbEndpoint: null,
  standInCredentials: false,
};

const REQUIRED = ['region', 'stream', 'saltTable', 'sites'];
const KNOWN = new Set([...REQUIRED, ...Object.keys(DEFAULTS)]);

/** Checks a parsed config object and fills in the defaults; throws on any mistake. */
function checkConfig(raw) {
  if (raw === null || typeof raw !== 'object' || Array.isArray(raw)) throw new Error('config: not an object');
  for (const key of Object.keys(raw)) {
    if (!KNOWN.has(key)) throw new Error(`config: unknown field "${key}"`);
  }
  for (const key of REQUIRED) {
    if (!(key in raw)) throw new Error(`config: "${key}" is required`);
  }
  const config = { ...DEFAULTS, ...raw };
  for (const key of ['region', 'stream', 'saltTable', 'path']) {
    if (typeof config[key] !== 'string' || config[key] === '') throw new Error(`config: "${key}" must be a non-empty string`);
  }
  if (!Array.isArray(config.sites) || !config.sites.every((s) => typeof s === 'string')) {
    throw new Error('config: "sites" must be a list of domains');
  }
  if (!Number.isInteger(config.subPartitions) || config.subPartitions < 1 || config.subPartitions > 65535) {
    throw new Error('config: "subPartitions" must be an integer in 1..65535');
  }
  // A viewer-request trigger is stopped after 5 s; leave room for the salts and the answer.
  if (!Number.isInteger(config.deadlineMs) || config.deadlineMs < 100 || config.deadlineMs > 4000) {
    throw new Error('config: "deadlineMs" must be an integer in 100..4000');
  }
  for (const key of ['kinesisEndpoint', 'dynamodbEndpoint']) {
    if (config[key] !== null && typeof config[key] !== 'string') throw new Error(`config: "${key}" must be a URL or null`);
  }
  if (typeof config.standInCredentials !== 'boolean') throw new Error('config: "standInCredentials" must be a boolean');
  return Object.freeze(config);
}

/** Reads and checks a config file. */
function loadConfig(file) {
  return checkConfig(JSON.parse(fs.readFileSync(file, 'utf8')));
}

module.exports = { checkConfig, loadConfig };

// Lambda@Edge entry point (viewer request, Node.js 20 or later): Tally's ingest edge for
// CloudFront. Configuration comes from config.json beside this file (Lambda@Edge has no
// environment variables); credentials from the function's execution role.
'use strict';

const path = require('node:path');
const { loadConfig } = require('./src/config');
const { createHandler } = require('./src/handler');

let handle = null;

exports.handler = async (event) => {
  // Built on the first request of a container, then reused: the wasm module, the SDK clients
  // and the cached salts live as long as the container.
  handle = handle || createHandler(loadConfig(path.join(__dirname, 'config.json')));
  return handle(event);
};

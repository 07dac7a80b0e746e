// The built package (pkg/, written by `wasm-pack build`), with a clear message when it is missing.
'use strict';

const path = require('node:path');

const PKG = path.join(__dirname, '..', 'pkg', 'tally_wasm.js');

try {
  module.exports = require(PKG);
} catch (error) {
  if (error.code !== 'MODULE_NOT_FOUND') throw error;
  throw new Error(`${PKG} is not built: run wasm-pkg/scripts/build (or scripts/test) first`);
}

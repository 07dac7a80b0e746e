// The tally-wasm package: scripts/build copies wasm-pack's pkg/ here, so that the deployed
// bundle (index.js, src/, pkg/, config.json) is self-contained.
'use strict';

module.exports = require('../pkg/tally_wasm.js');

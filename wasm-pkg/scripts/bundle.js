#!/usr/bin/env node
// Stages the deployable Lambda@Edge bundle (index.js, src/, pkg/, config.json) and zips it;
// prints the .wasm size raw and gzipped and the zip's size, and fails if the zip exceeds
// Lambda@Edge's 1 MB limit for viewer triggers. The AWS SDK v3 is not bundled: the Lambda
// Node.js runtime provides it.
//
// Usage: node scripts/bundle.js [config.json]   (default: lambda-edge/config.example.json)
'use strict';

const fs = require('node:fs');
const path = require('node:path');
const zlib = require('node:zlib');
const { zipSync } = require('fflate');

const ROOT = path.join(__dirname, '..');
const EDGE = path.join(ROOT, 'lambda-edge');
const WASM = path.join(ROOT, 'pkg', 'tally_wasm_bg.wasm');
const LIMIT = 1_048_576;

/** The bundle's files, `[{ name, data }]`, with `config` as its config.json. */
function bundleFiles(configFile) {
  const files = [{ name: 'index.js', data: fs.readFileSync(path.join(EDGE, 'index.js')) }];
  for (const name of fs.readdirSync(path.join(EDGE, 'src')).sort()) {
    if (name.endsWith('.js')) files.push({ name: `src/${name}`, data: fs.readFileSync(path.join(EDGE, 'src', name)) });
  }
  for (const name of ['tally_wasm.js', 'tally_wasm_bg.wasm']) {
    const file = path.join(ROOT, 'pkg', name);
    if (!fs.existsSync(file)) throw new Error(`${file} is missing: run scripts/build first`);
    files.push({ name: `pkg/${name}`, data: fs.readFileSync(file) });
  }
  files.push({ name: 'config.json', data: fs.readFileSync(configFile) });
  return files;
}

/** Writes the bundle's files under `dir` (for tests that run it as deployed). */
function stage(dir, configFile) {
  for (const { name, data } of bundleFiles(configFile)) {
    fs.mkdirSync(path.dirname(path.join(dir, name)), { recursive: true });
    fs.writeFileSync(path.join(dir, name), data);
  }
}

function main() {
  const configFile = path.resolve(process.argv[2] || path.join(EDGE, 'config.example.json'));
  const wasm = fs.readFileSync(WASM);
  // Fixed times, so the archive's bytes do not depend on the clock.
  const entries = Object.fromEntries(
    bundleFiles(configFile).map(({ name, data }) => [name, [new Uint8Array(data), { level: 9, mtime: new Date('1980-01-01T00:00:00Z') }]]),
  );
  const archive = Buffer.from(zipSync(entries));
  const out = path.join(ROOT, 'dist', 'tally-lambda-edge.zip');
  fs.mkdirSync(path.dirname(out), { recursive: true });
  fs.writeFileSync(out, archive);
  const gzipped = zlib.gzipSync(wasm, { level: 9 }).length;
  console.log(`tally_wasm_bg.wasm: ${wasm.length} bytes raw, ${gzipped} bytes gzipped`);
  console.log(`${path.relative(process.cwd(), out)}: ${archive.length} bytes (Lambda@Edge viewer-trigger limit ${LIMIT})`);
  if (archive.length > LIMIT) {
    console.error(`the Lambda@Edge bundle is ${archive.length - LIMIT} bytes over the limit`);
    process.exit(1);
  }
}

if (require.main === module) main();

module.exports = { bundleFiles, stage, LIMIT };

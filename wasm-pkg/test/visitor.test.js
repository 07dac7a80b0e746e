// visitorId(): the same keyed hash as the Rust model, to the bit.
'use strict';

const { test } = require('node:test');
const assert = require('node:assert/strict');
const tally = require('./model');

const SALT = new Uint8Array(16).fill(7);

test('is the fixed point of the Rust model (model/src/visitor.rs)', () => {
  assert.equal(tally.visitorId(SALT, 'a.com', '1.2.3.4', 'UA'), 0x93d3_74a4_acf6_e6e0n);
});

test('depends on every input, and an IPv4 address equals its mapped IPv6 form', () => {
  const base = tally.visitorId(SALT, 'a.com', '1.2.3.4', 'UA');
  assert.notEqual(tally.visitorId(new Uint8Array(16).fill(8), 'a.com', '1.2.3.4', 'UA'), base);
  assert.notEqual(tally.visitorId(SALT, 'b.com', '1.2.3.4', 'UA'), base);
  assert.notEqual(tally.visitorId(SALT, 'a.com', '1.2.3.5', 'UA'), base);
  assert.notEqual(tally.visitorId(SALT, 'a.com', '1.2.3.4', 'UB'), base);
  assert.equal(tally.visitorId(SALT, 'a.com', '::ffff:1.2.3.4', 'UA'), base);
});

test('refuses a salt that is not 16 bytes and an address that is not an IP', () => {
  assert.throws(() => tally.visitorId(new Uint8Array(8), 'a.com', '1.2.3.4', 'UA'), /16 bytes/);
  assert.throws(() => tally.visitorId(SALT, 'a.com', 'localhost', 'UA'), /not an IP address/);
});

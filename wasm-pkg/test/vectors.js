// Loads the shared bad-input vectors (tests/e2e/vectors/bad_input.json, also read by the core's
// end-to-end tests) and builds each vector's body and headers as its "about" section says.
'use strict';

const fs = require('node:fs');
const path = require('node:path');

const FILE = path.join(__dirname, '..', '..', 'tests', 'e2e', 'vectors', 'bad_input.json');

/** The vectors file, parsed. */
function loadVectors() {
  const doc = JSON.parse(fs.readFileSync(FILE, 'utf8'));
  return { site: doc.site, vectors: doc.vectors.map((v) => vector(v, doc.default_headers)) };
}

/** One vector: name, lower-cased headers (a null value removes a header), body bytes, expect. */
function vector(v, defaults) {
  const headers = {};
  for (const [name, value] of Object.entries({ ...defaults, ...(v.headers || {}) })) {
    if (value !== null) headers[name.toLowerCase()] = value;
  }
  return { name: v.name, about: v.about || '', headers, body: bodyOf(v), expect: v.expect };
}

function bodyOf(v) {
  if ('body' in v) return Buffer.from(v.body, 'utf8');
  if ('body_hex' in v) return Buffer.from(v.body_hex, 'hex');
  if ('body_json' in v) return Buffer.from(JSON.stringify(v.body_json), 'utf8');
  if ('body_gen' in v) return generate(v.body_gen, v.name);
  throw new Error(`vector ${v.name} has no body`);
}

/** Pads `s` on the right with `x` up to `chars` characters (code points, as Rust counts them). */
function padWithX(s, chars) {
  const have = [...s].length;
  return have >= chars ? s : s + 'x'.repeat(chars - have);
}

/** The generators named in the vectors file's "generators" section. */
function generate(g, name) {
  switch (g.kind) {
    case 'pad': {
      const json = Buffer.from(JSON.stringify(g.json), 'utf8');
      if (json.length > g.size) throw new Error(`vector ${name}: its JSON is longer than ${g.size} bytes`);
      return Buffer.concat([json, Buffer.alloc(g.size - json.length, ' ')]);
    }
    case 'nest':
      return Buffer.from(g.open.repeat(g.depth) + g.inner + g.close.repeat(g.depth), 'utf8');
    case 'repeat':
      return Buffer.from(JSON.stringify(Array.from({ length: g.count }, () => g.item)), 'utf8');
    case 'props': {
      const props = {};
      for (let i = 0; i < g.count; i += 1) props[padWithX(`p${i}`, g.name_len)] = 'v'.repeat(g.value_len);
      return Buffer.from(JSON.stringify({ ...g.event, props }), 'utf8');
    }
    case 'long_field':
      return Buffer.from(JSON.stringify({ ...g.event, [g.field]: padWithX(g.prefix, g.chars) }), 'utf8');
    default:
      throw new Error(`vector ${name}: unknown generator ${g.kind}`);
  }
}

module.exports = { loadVectors };

// The viewer-request handler: POST /api/event → tally-wasm's ingest → Kinesis → 202, or the
// server's 4xx, or 503 when Kinesis (or the salt table) cannot be reached within the deadline.
// OPTIONS on the path is the CORS preflight; every other request goes on to the origin as is.
'use strict';

const crypto = require('node:crypto');
const { dynamoClient, kinesisClient } = require('./aws');
const { bodyOf, header, requestOf } = require('./cloudfront');
const { putAll } = require('./kinesis');
const { accepted, failed, methodNotAllowed, preflight } = require('./responses');
const { DailySalts, DynamoSaltStore } = require('./salts');

/**
 * A handler for `config` (see config.js). `deps` replaces parts for tests: `model` (tally-wasm),
 * `kinesis` (a KinesisClient), `salts` (`{ at(ms, signal) }`), `now`, `randomId`, `random`.
 */
function createHandler(config, deps = {}) {
  const model = deps.model || require('./model');
  const kinesis = deps.kinesis || kinesisClient(config);
  const salts = deps.salts || new DailySalts(new DynamoSaltStore(dynamoClient(config), config.saltTable));
  const now = deps.now || Date.now;
  const randomId = deps.randomId || (() => crypto.randomBytes(16));
  const random = deps.random || Math.random;

  async function ingestRequest(request) {
    const body = bodyOf(request);
    // CloudFront cut the body: it is larger than any body we take.
    if (body.truncated) return failed(413, 'body_too_large');
    if (!body.included && request.method === 'POST') {
      console.error('tally-edge: POST without a body: is "Include body" on for this trigger?');
    }
    const receivedMs = now();
    const deadlineAt = receivedMs + config.deadlineMs;
    const signal = AbortSignal.timeout(config.deadlineMs);
    let inForce;
    try {
      inForce = await salts.at(receivedMs, signal);
    } catch (error) {
      console.error(`tally-edge: salts unavailable: ${error.name}: ${error.message}`);
      return failed(503, 'salts unavailable');
    }
    const ctx = {
      contentType: header(request, 'content-type'),
      userAgent: header(request, 'user-agent') || '',
      ip: request.clientIp,
      country: header(request, 'cloudfront-viewer-country'),
      region: header(request, 'cloudfront-viewer-country-region'),
      city: header(request, 'cloudfront-viewer-city'),
      receivedMs,
      salts: inForce,
      firstEventId: randomId(),
    };
    const result = model.ingest(body.bytes, ctx, config.sites, config.subPartitions);
    if (result.status !== 202) return failed(result.status, result.error);
    const sent = await putAll(kinesis, config.stream, result.records, { deadlineAt, signal, now, random });
    if (!sent.ok) {
      const reason = sent.error ? `${sent.error.name}: ${sent.error.message}` : 'unknown';
      console.error(`tally-edge: ${result.records.length} records not written after ${sent.attempts} attempts: ${reason}`);
      return failed(503, 'event stream unavailable');
    }
    return accepted(result.accepted, result.dropped);
  }

  return async function handle(event) {
    const request = requestOf(event);
    if (request.uri !== config.path) return request;
    if (request.method === 'OPTIONS') return preflight(header(request, 'access-control-request-headers'));
    if (request.method !== 'POST') return methodNotAllowed();
    try {
      return await ingestRequest(request);
    } catch (error) {
      // A bug, not bad input (the model answers that): never let it pass as accepted.
      console.error(`tally-edge: ingest failed: ${error.stack || error}`);
      return failed(500, 'internal error');
    }
  };
}

module.exports = { createHandler };

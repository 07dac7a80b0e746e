// The answers of POST /api/event, as the native server gives them: 202 "ok" with
// X-Tally-Accepted and X-Tally-Dropped, 4xx/5xx as {"error": reason}; all with CORS headers.
'use strict';

const { response } = require('./cloudfront');

const CORS = { 'Access-Control-Allow-Origin': '*' };
const NO_STORE = { 'Cache-Control': 'no-store' };

const DESCRIPTIONS = {
  202: 'Accepted',
  204: 'No Content',
  400: 'Bad Request',
  405: 'Method Not Allowed',
  413: 'Payload Too Large',
  415: 'Unsupported Media Type',
  500: 'Internal Server Error',
  503: 'Service Unavailable',
};

/** 202: every event of the body is in Kinesis. */
function accepted(count, dropped) {
  const headers = { ...CORS, ...NO_STORE, 'Content-Type': 'text/plain; charset=utf-8', 'X-Tally-Accepted': count };
  if (dropped.length > 0) headers['X-Tally-Dropped'] = dropped.join(', ');
  return response(202, DESCRIPTIONS[202], headers, 'ok');
}

/** A refusal or failure with a JSON reason; 503 asks the sender to retry. */
function failed(status, reason) {
  const headers = { ...CORS, ...NO_STORE, 'Content-Type': 'application/json' };
  if (status === 503) headers['Retry-After'] = 1;
  return response(status, DESCRIPTIONS[status] || 'Error', headers, JSON.stringify({ error: reason }));
}

/** 204: the CORS preflight of a cross-origin POST. */
function preflight(requestedHeaders) {
  return response(204, DESCRIPTIONS[204], {
    ...CORS,
    'Access-Control-Allow-Methods': 'POST, OPTIONS',
    'Access-Control-Allow-Headers': requestedHeaders || '*',
    'Access-Control-Max-Age': 86400,
  });
}

/** 405 for other methods on the ingest path. */
function methodNotAllowed() {
  return response(405, DESCRIPTIONS[405], { ...CORS, Allow: 'POST, OPTIONS' });
}

module.exports = { accepted, failed, methodNotAllowed, preflight };

// The CloudFront side of Lambda@Edge: reading a viewer-request event and writing the responses
// a viewer-request trigger may generate (status as a string, headers as lists of {key, value}).
'use strict';

/** The request of a viewer-request event. */
function requestOf(event) {
  return event.Records[0].cf.request;
}

/** The first value of a request header (CloudFront lower-cases the names), or null. */
function header(request, name) {
  const values = request.headers && request.headers[name];
  return values && values.length > 0 ? values[0].value : null;
}

/**
 * The request body as bytes, or `{ truncated: true }` when CloudFront cut it (it exposes at
 * most 40 KB of a body to a viewer-request trigger). A request without a body (or a trigger
 * without "Include body") gives an empty body.
 */
function bodyOf(request) {
  const body = request.body;
  if (!body) return { bytes: Buffer.alloc(0), included: false };
  if (body.inputTruncated) return { truncated: true };
  const bytes = Buffer.from(body.data || '', body.encoding === 'text' ? 'utf8' : 'base64');
  return { bytes, included: true };
}

/** A generated response. `headers` maps header names to values. */
function response(status, description, headers, body) {
  const out = {};
  for (const [key, value] of Object.entries(headers)) out[key.toLowerCase()] = [{ key, value: String(value) }];
  const generated = { status: String(status), statusDescription: description, headers: out };
  if (body !== undefined) {
    generated.body = body;
    generated.bodyEncoding = 'text';
  }
  return generated;
}

module.exports = { bodyOf, header, requestOf, response };

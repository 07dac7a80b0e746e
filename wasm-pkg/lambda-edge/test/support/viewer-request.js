// CloudFront viewer-request events as Lambda@Edge receives them with "Include body" on.
'use strict';

/**
 * An event for `method uri` from `clientIp`, with `headers` (name → value) and `body` (a string
 * or bytes, sent base64 as CloudFront does; `truncated` marks a body CloudFront cut).
 */
function viewerRequest({ method = 'POST', uri = '/api/event', clientIp = '203.0.113.10', headers = {}, body, truncated = false }) {
  const cfHeaders = { host: [{ key: 'Host', value: 'd111111abcdef8.cloudfront.net' }] };
  for (const [key, value] of Object.entries(headers)) cfHeaders[key.toLowerCase()] = [{ key, value }];
  const request = { clientIp, headers: cfHeaders, method, querystring: '', uri };
  if (body !== undefined) {
    const data = Buffer.from(body).toString('base64');
    request.body = { action: 'read-only', data, encoding: 'base64', inputTruncated: truncated };
  }
  return {
    Records: [{ cf: { config: { distributionId: 'EDFDVBD6EXAMPLE', eventType: 'viewer-request', requestId: 'test' }, request } }],
  };
}

/** The first value of a generated response's header, or undefined. */
function responseHeader(response, name) {
  const values = response.headers && response.headers[name.toLowerCase()];
  return values ? values[0].value : undefined;
}

module.exports = { responseHeader, viewerRequest };

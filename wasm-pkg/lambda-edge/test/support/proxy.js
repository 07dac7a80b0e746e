// A fault-injecting proxy in front of kinesalite, for faults the stand-in cannot produce: it
// counts PutRecords calls and lets a test rewrite or refuse them. Loopback, port 0.
'use strict';

const http = require('node:http');

/**
 * Starts a proxy to `target`. `onPutRecords(call, request)` gets the call number (1, 2, …) and
 * the parsed request; it returns `{ forward: request' , rewrite(response) }` to pass a
 * (possibly changed) request on, or `{ status, body }` to answer itself.
 */
async function startProxy(target, onPutRecords) {
  const calls = [];
  const server = http.createServer(async (req, res) => {
    const chunks = [];
    for await (const chunk of req) chunks.push(chunk);
    let body = Buffer.concat(chunks);
    const isPut = req.headers['x-amz-target'] === 'Kinesis_20131202.PutRecords';
    let rewrite = (b) => b;
    if (isPut) {
      const parsed = JSON.parse(body.toString('utf8'));
      calls.push(parsed);
      const verdict = onPutRecords(calls.length, parsed);
      if (verdict.status) {
        res.writeHead(verdict.status, { 'content-type': 'application/x-amz-json-1.1' });
        res.end(JSON.stringify(verdict.body));
        return;
      }
      body = Buffer.from(JSON.stringify(verdict.forward));
      rewrite = verdict.rewrite || rewrite;
    }
    const headers = { ...req.headers, 'content-length': String(body.length) };
    const upstream = http.request(`${target}${req.url}`, { method: req.method, headers }, async (up) => {
      const parts = [];
      for await (const part of up) parts.push(part);
      const answer = isPut ? Buffer.from(JSON.stringify(rewrite(JSON.parse(Buffer.concat(parts).toString('utf8'))))) : Buffer.concat(parts);
      res.writeHead(up.statusCode, { 'content-type': up.headers['content-type'], 'content-length': String(answer.length) });
      res.end(answer);
    });
    upstream.on('error', () => res.destroy());
    upstream.end(body);
  });
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  return {
    endpoint: `http://127.0.0.1:${server.address().port}`,
    calls,
    close: () =>
      new Promise((resolve) => {
        server.close(() => resolve());
        server.closeAllConnections();
      }),
  };
}

/** A port on 127.0.0.1 where nothing listens (bound, then closed). */
async function closedPort() {
  const server = http.createServer();
  await new Promise((resolve) => server.listen(0, '127.0.0.1', resolve));
  const { port } = server.address();
  await new Promise((resolve) => server.close(resolve));
  return port;
}

module.exports = { closedPort, startProxy };

// Starts kinesalite (a Kinesis stand-in) on 127.0.0.1 and a free port (or the port given as the
// first argument), in memory, and prints "listening on http://127.0.0.1:PORT" once it is ready.
// With a second argument, also creates that stream (2 shards, or the third argument) first:
//   node kinesalite.js 4567 tally-events
const http = require('http');
const kinesalite = require('kinesalite');
const [port = 0, stream, shards = 2] = process.argv.slice(2);
const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 });

// Kinesalite checks that a request is signed, not the signature.
function createStream(address, name, count, done) {
  const body = JSON.stringify({ StreamName: name, ShardCount: Number(count) });
  const request = http.request({
    host: '127.0.0.1', port: address.port, method: 'POST', path: '/',
    headers: {
      'content-type': 'application/x-amz-json-1.1',
      'x-amz-target': 'Kinesis_20131202.CreateStream',
      'x-amz-date': '20260101T000000Z',
      authorization: 'AWS4-HMAC-SHA256 Credential=local/20260101/us-east-1/kinesis/aws4_request, SignedHeaders=host, Signature=0',
    },
  }, (response) => {
    response.resume();
    response.on('end', () => (response.statusCode === 200 ? done() : (console.error(`CreateStream: ${response.statusCode}`), process.exit(1))));
  });
  request.end(body);
}

server.listen(Number(port), '127.0.0.1', () => {
  const address = server.address();
  const ready = () => console.log(`listening on http://127.0.0.1:${address.port}`);
  if (stream) createStream(address, stream, shards, ready); else ready();
});

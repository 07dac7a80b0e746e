// Starts kinesalite (a Kinesis stand-in) on 127.0.0.1 and a free port (or the port given as the
// first argument), in memory, and prints "listening on http://127.0.0.1:PORT" once it is ready.
const kinesalite = require('kinesalite');
const port = Number(process.argv[2] || 0);
const server = kinesalite({ createStreamMs: 0, deleteStreamMs: 0, updateStreamMs: 0, shardLimit: 100 });
server.listen(port, '127.0.0.1', () => {
  console.log(`listening on http://127.0.0.1:${server.address().port}`);
});

// The PeerJS server (npm `peer`) as its README starts it, on loopback, with its limit of 5,000
// concurrent clients raised so that it is measured, not its default refusing.
// Usage: node peerjs_server.js PORT   (prints "pid N" when listening; SIGTERM stops it)
'use strict';
const { PeerServer } = require('peer');

const port = Number(process.argv[2] || 9000);
PeerServer({ host: '127.0.0.1', port, path: '/', key: 'peerjs', concurrent_limit: 1000000 }, () =>
  console.log(`pid ${process.pid}`),
);
process.on('SIGTERM', () => process.exit(0));

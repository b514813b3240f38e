// The minimal Node `ws` relay that anteroom-signal is compared with: connections are paired in
// accept order and every message goes to the other member of the pair, as ws_server.c does.
// Usage: node relay.js PORT
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 19002);
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  perMessageDeflate: false,
  handleProtocols: (protocols) => (protocols.has('anteroom.v1') ? 'anteroom.v1' : false),
});
let waiting = null;
wss.on('connection', (ws) => {
  ws.on('error', () => {});
  if (waiting) {
    ws.peer = waiting;
    waiting.peer = ws;
    waiting = null;
  } else {
    waiting = ws;
  }
  ws.on('message', (data, isBinary) => {
    if (ws.peer) ws.peer.send(data, { binary: isBinary });
  });
  ws.on('close', () => {
    if (waiting === ws) waiting = null;
    if (ws.peer) ws.peer.peer = null;
  });
});
wss.on('listening', () => console.log(`pid ${process.pid}`));
process.on('SIGTERM', () => process.exit(0));

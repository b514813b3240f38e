// The minimal Node `ws` signalling relay anteroom-signal is compared with in the full benchmark
// (full.sh): a client names its room in the URL (/?room=R) and every message goes to the other
// members of that room, unread. No authentication, no protocol: the least a Node relay can do.
// Usage: node room_relay.js PORT   (prints "pid N" when listening; SIGTERM stops it)
'use strict';
const { WebSocketServer } = require('ws');

const port = Number(process.argv[2] || 19002);
const rooms = new Map();
const wss = new WebSocketServer({
  host: '127.0.0.1',
  port,
  perMessageDeflate: false,
  maxPayload: 65536,
  handleProtocols: (protocols) => (protocols.has('anteroom.v1') ? 'anteroom.v1' : false),
});
wss.on('connection', (ws, req) => {
  ws.on('error', () => {});
  const room = new URL(req.url, 'http://x').searchParams.get('room') || '';
  let members = rooms.get(room);
  if (!members) rooms.set(room, (members = new Set()));
  members.add(ws);
  ws.on('message', (data, isBinary) => {
    for (const m of members) if (m !== ws) m.send(data, { binary: isBinary });
  });
  ws.on('close', () => {
    members.delete(ws);
    if (members.size === 0) rooms.delete(room);
  });
});
wss.on('listening', () => console.log(`pid ${process.pid}`));
process.on('SIGTERM', () => process.exit(0));

// One patient reaches the signalling node `anteroom up` runs: wss verified against the state's
// own certificate, the subprotocol anteroom.v1, the app's Origin, and a hello carrying the token
// the app minted (docs/protocol.md); the node must answer welcome with role "patient".
// Usage: node signal_hello.cjs <ws module dir> <wss URL> <origin> <CA file> <entry JSON file>
// Prints "welcome <role>" and exits 0, or prints why and exits 1; gives up after 10 s.
'use strict';
const fs = require('node:fs');
const [wsDir, url, origin, caFile, entryFile] = process.argv.slice(2);
const WebSocket = require(wsDir);
const entry = JSON.parse(fs.readFileSync(entryFile, 'utf8'));

const timer = setTimeout(() => {
  console.log('no welcome within 10 s');
  process.exit(1);
}, 10000);
const ws = new WebSocket(url, 'anteroom.v1', { origin, ca: fs.readFileSync(caFile) });
ws.on('open', () => {
  if (ws.protocol !== 'anteroom.v1') {
    console.log(`subprotocol '${ws.protocol}', want anteroom.v1`);
    process.exit(1);
  }
  ws.send(JSON.stringify({ v: 1, type: 'hello', id: 1, token: entry.token }));
});
ws.on('message', (data) => {
  const m = JSON.parse(data.toString());
  if (m.type !== 'welcome') {
    console.log(`first frame ${m.type}: ${data}`);
    process.exit(1);
  }
  console.log(`welcome ${m.role}`);
  clearTimeout(timer);
  ws.close(1000);
});
ws.on('close', (code) => process.exit(code === 1000 || code === 1005 ? 0 : 1));
ws.on('error', (e) => {
  console.log(`error: ${e.message}`);
  process.exit(1);
});

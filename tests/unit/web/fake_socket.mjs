// A stand-in for the browser's WebSocket, installed as globalThis.WebSocket, for the node:test
// files of web/js/signal.js and the pages built on it: it opens at once, records what the client
// sends (parsed) and the code it closes with (closeCode), and deliver() feeds the client a frame
// as the server would.
export class FakeSocket {
  static OPEN = 1;
  static CLOSED = 3;
  static last = null;
  constructor(url, proto) {
    this.url = url;
    this.proto = proto;
    this.readyState = FakeSocket.OPEN;
    this.sent = [];
    FakeSocket.last = this;
    queueMicrotask(() => this.onopen?.());
  }
  send(s) {
    this.sent.push(JSON.parse(s));
  }
  close(code) {
    if (this.closeCode === undefined) this.closeCode = code;
    this.readyState = FakeSocket.CLOSED;
  }
  deliver(frame) {
    this.onmessage({ data: JSON.stringify(frame) });
  }
}
globalThis.WebSocket = FakeSocket;

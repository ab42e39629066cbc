// Sends MB megabytes to 127.0.0.1:PORT as fast as the connection takes them and prints
// the throughput in MB/s once the receiver has closed after reading everything; exits 1
// (printing nothing) when the connection fails or is closed before all was sent.
// usage: node bench/tcp-send.js PORT MB
const net = require('node:net');
const [port, mb] = process.argv.slice(2).map(Number);
const chunk = Buffer.alloc(1 << 20);
const sock = net.connect(port, '127.0.0.1');
let sent = 0;
const start = process.hrtime.bigint();
const pump = () => {
  while (sent < mb) {
    sent++;
    if (!sock.write(chunk)) return sock.once('drain', pump);
  }
  sock.end();
};
sock.on('connect', pump);
sock.on('error', (e) => { console.error(e.message); process.exit(1); });
let finished = false;
sock.on('finish', () => { finished = true; });
sock.on('close', () => {
  if (!finished || sent < mb) process.exit(1);
  const s = Number(process.hrtime.bigint() - start) / 1e9;
  console.log((mb / s).toFixed(1));
});
sock.resume();

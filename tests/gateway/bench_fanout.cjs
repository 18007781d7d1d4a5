// The gateway's WebSocket fan-out: CLIENTS combined clients of the 4 streams below on a running
// `klinefeed run --http`; prints the messages/s they received and the daemon's CPU.
// usage: node bench_fanout.cjs NPM_DIR PORT CLIENTS SECONDS DAEMON_PID (docs/cli.md, gateway)
const WebSocket = require(require('path').join(process.argv[2], 'node_modules', 'ws'));
const fs = require('fs');
const [port, nc, secs, pid] = process.argv.slice(3).map(Number);
let msgs = 0, closed = 0, open = 0;
const streams = 'btcusdt@kline_1m/btcusdt@kline_5m/ethusdt@kline_1m/ethusdt@kline_5m';
for (let i = 0; i < nc; i++) {
  const w = new WebSocket(`ws://127.0.0.1:${port}/market/stream?streams=${streams}`);
  w.on('open', () => open++);
  w.on('message', () => msgs++);
  w.on('close', () => closed++);
}
const cpu = () => { const f = fs.readFileSync(`/proc/${pid}/stat`, 'utf8').split(') ')[1].split(' '); return (+f[11] + +f[12]) / 100; };
setTimeout(() => {
  const m0 = msgs, c0 = cpu(), t0 = Date.now();
  setTimeout(() => {
    const dt = (Date.now() - t0) / 1000;
    console.log(`clients=${nc} open=${open} closed=${closed} msgs/s=${Math.round((msgs - m0) / dt)} daemon_cpu=${((cpu() - c0) / dt * 100).toFixed(0)}%`);
    process.exit(0);
  }, secs * 1000);
}, 2000);

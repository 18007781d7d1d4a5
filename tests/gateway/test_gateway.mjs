// test_gateway: a real third-party Binance USDT-M client (ccxt's binanceusdm, pinned by
// package-lock.json) pointed at klinefeed's gateway (`klinefeed run --http`), the collector
// fed by klinefeed-sim at 60x. Its candles must equal the store's rows; Binance's
// startTime/endTime/limit semantics and error replies are checked on the raw wire. ccxt pro's
// watchOHLCV (ccxt's own Binance WebSocket client) on the gateway's /market/ws: every candle it
// saw close equals the store's row.
// Usage: node test_gateway.mjs KLINEFEED KLINEFEED_SIM NPM_DIR
import { spawn, execFileSync } from 'node:child_process';
import net from 'node:net';
import { createRequire } from 'node:module';
import fs from 'node:fs';
import os from 'node:os';
import path from 'node:path';

const [cli, simBin, npmDir] = process.argv.slice(2);
const require = createRequire(path.join(npmDir, 'package.json'));
const ccxt = require('ccxt');

let failures = 0;
function check(cond, what) {
  if (cond) {
    console.log(`ok   ${what}`);
  } else {
    failures++;
    console.log(`FAIL ${what}`);
  }
}
const sleep = (ms) => new Promise((r) => setTimeout(r, ms));

const tmp = fs.mkdtempSync(path.join(os.tmpdir(), 'kf-gateway-'));
const db = path.join(tmp, 'klines.db');
const children = [];
function cleanup() {
  for (const ch of children) if (ch.exitCode === null) ch.kill('SIGTERM');
}
process.on('exit', cleanup);

// a child whose stdout/stderr go to a file; resolves the first match of re in it
function startLogged(bin, args, log) {
  const fd = fs.openSync(log, 'w');
  const ch = spawn(bin, args, { stdio: ['ignore', fd, fd] });
  children.push(ch);
  return ch;
}
async function waitFor(log, re, ms) {
  const end = Date.now() + ms;
  while (Date.now() < end) {
    const m = fs.existsSync(log) && fs.readFileSync(log, 'utf8').match(re);
    if (m) return m;
    await sleep(100);
  }
  throw new Error(`no ${re} in ${log}: ${fs.existsSync(log) ? fs.readFileSync(log, 'utf8') : ''}`);
}

// the store's closed rows of a stream, as Binance's 12-field arrays of text
function storeRows(sym, iv) {
  const out = execFileSync('sqlite3', ['-readonly', '-separator', '|', db,
    `SELECT open_time, open, high, low, close, volume, close_time, quote_volume, trades, ` +
    `taker_buy_base, taker_buy_quote FROM klines WHERE symbol='${sym}' AND interval='${iv}' ` +
    `AND closed=1 ORDER BY open_time`], { encoding: 'utf8' });
  return out.split('\n').filter((l) => l).map((l) => {
    const f = l.split('|');
    return [Number(f[0]), f[1], f[2], f[3], f[4], f[5], Number(f[6]), f[7], Number(f[8]), f[9],
      f[10], '0'];
  });
}

async function main() {
  const simLog = path.join(tmp, 'sim.log');
  startLogged(simBin, ['--speed', '60'], simLog);
  const simPort = (await waitFor(simLog, /port=(\d+)/, 10000))[1];
  const dlog = path.join(tmp, 'daemon.log');
  startLogged(cli, ['run', '--symbols', 'BTCUSDT,ETHUSDT', '--intervals', '1m,5m',
    '--ws-url', `ws://127.0.0.1:${simPort}/market`, '--rest-url', `http://127.0.0.1:${simPort}`,
    '--sink', `sqlite:${db}`, '--state-dir', 'none', '--http', '127.0.0.1:0'], dlog);
  const port = (await waitFor(dlog, /http listening.* port=(\d+)/, 20000))[1];
  const base = `http://127.0.0.1:${port}`;

  // at 60x a 1m candle closes every second: wait for 5 closed rows in the store
  let rows = [];
  for (let i = 0; i < 300 && rows.length < 5; i++) {
    await sleep(100);
    if (fs.existsSync(db)) try { rows = storeRows('BTCUSDT', '1m'); } catch { /* busy */ }
  }
  check(rows.length >= 5, `the store has ${rows.length} closed BTCUSDT 1m candles (>= 5)`);

  const ex = new ccxt.binanceusdm({ enableRateLimit: false, timeout: 10000 });
  for (const k of Object.keys(ex.urls.api)) {
    if (typeof ex.urls.api[k] === 'string' && ex.urls.api[k].startsWith('https://fapi.binance.com'))
      ex.urls.api[k] = ex.urls.api[k].replace('https://fapi.binance.com', base);
  }
  const markets = await ex.loadMarkets();
  check(markets['BTC/USDT:USDT'] && markets['ETH/USDT:USDT'],
    `ccxt loadMarkets (exchangeInfo): ${Object.keys(markets).join(' ')}`);
  check(Object.keys(markets).length === 2, 'exchangeInfo lists the collected symbols only');
  check(markets['BTC/USDT:USDT'].precision.price === 0.01,
    `BTCUSDT price precision from the stored decimals: ${markets['BTC/USDT:USDT'].precision.price}`);

  // closed candles: since the first stored one, as many as stored: exactly the store's rows
  const n = rows.length;
  const ohlcv = await ex.fetchOHLCV('BTC/USDT:USDT', '1m', rows[0][0], n);
  const raw = JSON.parse(ex.last_http_response);
  check(JSON.stringify(raw) === JSON.stringify(rows),
    `fetchOHLCV(since first stored, limit ${n}): the wire rows equal the store's, text for text`);
  const want = rows.map((r) => [r[0], +r[1], +r[2], +r[3], +r[4], +r[5]]);
  check(JSON.stringify(ohlcv) === JSON.stringify(want),
    `fetchOHLCV's ${ohlcv.length} candles equal the store's ${want.length}`);

  // the latest: the store's rows then the open candle, as Binance answers. At 60x a candle
  // closes every second, so the open candle is judged against the store read before the
  // request: newer than every candle stored closed then (the store alone could not serve it)
  const before = storeRows('BTCUSDT', '1m');
  const latest = await ex.fetchOHLCV('BTC/USDT:USDT', '1m');
  const lraw = JSON.parse(ex.last_http_response);
  const after = storeRows('BTCUSDT', '1m');
  const byT = new Map(after.map((r) => [r[0], JSON.stringify(r)]));
  const last = lraw[lraw.length - 1];
  check(lraw.length === latest.length && lraw.length >= n + 1,
    `fetchOHLCV() without since: ${lraw.length} candles`);
  check(lraw.slice(0, -2).every((r) => byT.get(r[0]) === JSON.stringify(r)),
    'every candle but the newest two is the store\'s row');
  check(last[0] > before[before.length - 1][0] && last[0] >= after[after.length - 1][0],
    `the newest is the open candle (open time ${last[0]}; stored closed before: ` +
    `${before[before.length - 1][0]}, after: ${after[after.length - 1][0]})`);
  for (let i = 1; i < lraw.length; i++)
    if (lraw[i][0] !== lraw[i - 1][0] + 60000) {
      check(false, `no gap: ${lraw[i - 1][0]} then ${lraw[i][0]}`);
      break;
    }

  // Binance's semantics on the raw wire
  const get = async (q) => {
    const r = await fetch(`${base}/fapi/v1/klines?${q}`);
    return { status: r.status, body: await r.json() };
  };
  const t0 = rows[0][0], t2 = rows[2][0];
  let r = await get(`symbol=BTCUSDT&interval=1m&startTime=${t0 + 1}&limit=2`);
  check(r.status === 200 && r.body.length === 2 && r.body[0][0] === rows[1][0],
    'startTime inside a candle: the first row is the next candle; limit 2 rows');
  r = await get(`symbol=BTCUSDT&interval=1m&startTime=${t0}&endTime=${t2}`);
  check(r.status === 200 && JSON.stringify(r.body) === JSON.stringify(rows.slice(0, 3)),
    'startTime..endTime: open times in [startTime, endTime]');
  r = await get(`symbol=BTCUSDT&interval=1m&endTime=${t2}&limit=2`);
  check(r.status === 200 && JSON.stringify(r.body) === JSON.stringify(rows.slice(1, 3)),
    'endTime alone: the last `limit` candles opening at or before it');
  r = await get('symbol=BTCUSDT&interval=1m');
  check(r.status === 200 && r.body.length <= 500, 'limit defaults to 500');
  const errs = [
    ['symbol=NOPEUSDT&interval=1m', 400, -1121, 'Invalid symbol.'],
    ['symbol=BTCUSDT&interval=7m', 400, -1120, 'Invalid interval.'],
    ['symbol=BTCUSDT&interval=1m&limit=1501', 400, -1130, null],
    ['symbol=BTCUSDT&interval=1m&limit=0', 400, -1130, null],
    ['interval=1m', 400, -1102, null],
    ['symbol=BTCUSDT', 400, -1102, null],
    ['symbol=BTCUSDT&interval=1m&startTime=x1', 400, -1100, null],
    [`symbol=BTCUSDT&interval=1m&startTime=${t2}&endTime=${t0}`, 400, -1023, null],
  ];
  for (const [q, status, code, msg] of errs) {
    r = await get(q);
    check(r.status === status && r.body.code === code && (!msg || r.body.msg === msg),
      `${q}: ${r.status} ${JSON.stringify(r.body)}`);
  }
  // ccxt maps Binance's error codes to its exceptions: the format is Binance's
  try {
    await ex.fapiPublicGetKlines({ symbol: 'NOPEUSDT', interval: '1m' });
    check(false, 'ccxt: -1121 raised');
  } catch (e) {
    check(e instanceof ccxt.BadSymbol, `ccxt raises BadSymbol for -1121 (${e.constructor.name})`);
  }
  const t = await ex.fetchTime();
  check(Math.abs(t - Date.now()) < 5000, `fetchTime (GET /fapi/v1/time): ${t}`);
  const p = await fetch(`${base}/fapi/v1/ping`);
  check(p.status === 200 && (await p.text()) === '{}', 'GET /fapi/v1/ping: 200 {}');

  // ccxt pro's watchOHLCV (its own Binance WebSocket client: /market/ws/<n> and a SUBSCRIBE)
  // pointed at the gateway: every candle it saw close equals the store's row
  const pro = new ccxt.pro.binanceusdm({ enableRateLimit: false, timeout: 10000 });
  for (const k of Object.keys(pro.urls.api)) {
    if (typeof pro.urls.api[k] === 'string' && pro.urls.api[k].startsWith('https://fapi.binance.com'))
      pro.urls.api[k] = pro.urls.api[k].replace('https://fapi.binance.com', base);
  }
  pro.urls.api.ws.future = base.replace('http://', 'ws://') + '/ws'; // ccxt adds /market
  await pro.loadHttpProxyAgent(); // what ccxt asks for before a ws:// (not wss://) URL
  await pro.loadMarkets();
  const seen = new Map(); // open time -> the newest candle ccxt holds for it
  let firstT = 0;
  for (const end = Date.now() + 30000; Date.now() < end;) {
    const cs = await pro.watchOHLCV('ETH/USDT:USDT', '1m');
    for (const c of cs) seen.set(c[0], c);
    if (!firstT) firstT = Math.max(...seen.keys());
    const newest = Math.max(...seen.keys());
    if (newest >= firstT + 4 * 60000) break; // 4 candles closed since the first event
  }
  await pro.close();
  const newestSeen = Math.max(...seen.keys());
  const eth = new Map(storeRows('ETHUSDT', '1m').map((r) => [r[0], r]));
  let watched = 0;
  for (const [t, c] of seen) {
    if (t < firstT || t >= newestSeen) continue; // the first may be partial; the newest is open
    const r = eth.get(t);
    check(r && JSON.stringify(c) === JSON.stringify([r[0], +r[1], +r[2], +r[3], +r[4], +r[5]]),
      `watchOHLCV candle ${t} ${JSON.stringify(c)} equals the store's ${JSON.stringify(r)}`);
    watched++;
  }
  check(watched >= 3, `ccxt pro watchOHLCV saw ${watched} candles close (>= 3; it held ` +
    `${seen.size} candles, ${firstT}..${newestSeen})`);
  console.log(`ccxt pro watchOHLCV: ${watched} closed candles equal the store's`);

  // WebSocket: the live events, combined (/market/stream?streams=) and raw (/market/ws with a
  // live SUBSCRIBE), in Binance's format; every closed candle equals the store's row
  const WebSocket = require('ws');
  const wsBase = `ws://127.0.0.1:${port}`;
  const comb = new WebSocket(`${wsBase}/market/stream?streams=btcusdt@kline_1m/ethusdt@kline_5m`);
  const rawWs = new WebSocket(`${wsBase}/market/ws`);
  const combined = [], rawMsgs = [];
  comb.on('message', (m) => combined.push(JSON.parse(m.toString())));
  rawWs.on('message', (m) => rawMsgs.push(JSON.parse(m.toString())));
  await new Promise((res, rej) => { rawWs.on('open', res); rawWs.on('error', rej); });
  rawWs.send(JSON.stringify({ method: 'SUBSCRIBE', params: ['ethusdt@kline_1m', 'btcusdt@kline_5m'], id: 1 }));
  rawWs.send(JSON.stringify({ method: 'UNSUBSCRIBE', params: ['btcusdt@kline_5m'], id: 2 }));
  rawWs.send(JSON.stringify({ method: 'LIST_SUBSCRIPTIONS', id: 3 }));
  await sleep(4000); // 4 candles of 1m at 60x
  comb.close();
  const replies = rawMsgs.filter((m) => 'id' in m);
  check(JSON.stringify(replies) === JSON.stringify([{ result: null, id: 1 }, { result: null, id: 2 },
    { result: ['ethusdt@kline_1m'], id: 3 }]),
  `SUBSCRIBE, UNSUBSCRIBE, LIST_SUBSCRIPTIONS: Binance's replies ${JSON.stringify(replies)}`);
  // (btcusdt@kline_5m may have events between the SUBSCRIBE and the UNSUBSCRIBE, as on Binance)
  const afterUnsub = rawMsgs.slice(rawMsgs.findIndex((m) => m.id === 2) + 1);
  const rawEv = afterUnsub.filter((m) => m.e === 'kline');
  const others = rawEv.filter((m) => !(m.s === 'ETHUSDT' && m.k.i === '1m'));
  check(rawEv.length > 10 && others.length === 0,
    `/market/ws: ${rawEv.length} raw events after the UNSUBSCRIBE, all of the one stream left ` +
    `(others: ${JSON.stringify(others.slice(0, 2))})`);
  const streams = new Set(combined.map((m) => m.stream));
  check(combined.length > 10 && streams.size === 2 && streams.has('btcusdt@kline_1m') &&
    combined.every((m) => m.data.e === 'kline' &&
      m.stream === `${m.data.s.toLowerCase()}@kline_${m.data.k.i}`),
  `/market/stream: ${combined.length} combined events of ${[...streams].join(', ')}`);
  const closedEv = combined.filter((m) => m.stream === 'btcusdt@kline_1m' && m.data.k.x);
  await sleep(500); // their rows reach the store
  const stored = new Map(storeRows('BTCUSDT', '1m').map((r) => [r[0], JSON.stringify(r)]));
  const asRow = (k) => JSON.stringify([k.t, k.o, k.h, k.l, k.c, k.v, k.T, k.q, k.n, k.V, k.Q, '0']);
  check(closedEv.length >= 2 && closedEv.every((m) => stored.get(m.data.k.t) === asRow(m.data.k)),
    `the ${closedEv.length} closed candles streamed equal the store's rows`);
  const btc = combined.filter((m) => m.stream === 'btcusdt@kline_1m');
  let ordered = true;
  for (let i = 1; i < btc.length; i++) ordered &&= btc[i].data.E >= btc[i - 1].data.E;
  check(ordered, `a stream's ${btc.length} event times never go back`);
  const rawClosed = new Promise((res) => rawWs.on('close', (code) => res(code)));

  // a client that does not read is dropped (its queue fills), not the collector nor the others
  const slow = net.connect(Number(port), '127.0.0.1');
  await new Promise((res) => slow.on('connect', res));
  slow.write('GET /market/stream?streams=btcusdt@kline_1m/btcusdt@kline_5m/ethusdt@kline_1m/' +
    'ethusdt@kline_5m HTTP/1.1\r\nHost: x\r\nUpgrade: websocket\r\nConnection: Upgrade\r\n' +
    'Sec-WebSocket-Key: dGhlIHNhbXBsZSBub25jZQ==\r\nSec-WebSocket-Version: 13\r\n\r\n');
  slow.pause();
  const dropped = await waitFor(dlog, /gateway client dropped/, 90000).then(() => true, () => false);
  let slowBytes = 0;
  const slowEnd = new Promise((res) => { slow.on('end', () => res(true)); slow.on('error', () => res(true)); });
  slow.on('data', (d) => { slowBytes += d.length; });
  slow.resume();
  const ended = await Promise.race([slowEnd, sleep(10000).then(() => false)]);
  check(dropped && ended, `a client that does not read is dropped and closed (${slowBytes} bytes had reached it)`);
  const before2 = rawMsgs.length;
  await sleep(1000);
  check(rawMsgs.length > before2, 'the other client still receives');

  // the daemon stops cleanly (in the sanitizer build: no report, no leak)
  const daemon = children[1];
  const exited = new Promise((res) => daemon.on('exit', (code, sig) => res([code, sig])));
  daemon.kill('SIGTERM');
  const [code, sig] = await Promise.race([exited, sleep(30000).then(() => ['timeout', null])]);
  const closeCode = await Promise.race([rawClosed, sleep(5000).then(() => 'none')]);
  check(closeCode === 1001, `a WebSocket client is closed 1001 (going away) at the stop: ${closeCode}`);
  const text = fs.readFileSync(dlog, 'utf8');
  check(code === 0 && !/Sanitizer|runtime error/.test(text),
    `the daemon exits 0 on SIGTERM (exit ${code}, signal ${sig})`);

  await limits(simPort);
}

// Binance's pings and limits on the gateway's clients, against a second daemon whose times and
// streams per connection are lowered by the environment variables kept for tests (docs/cli.md):
// a ping every 300 ms, pong deadline 1.5 s, lifetime 4 s, 3 streams per connection.
async function limits(simPort) {
  const dlog = path.join(tmp, 'daemon-limits.log');
  const fd = fs.openSync(dlog, 'w');
  const daemon = spawn(cli, ['run', '--symbols', 'BTCUSDT,ETHUSDT', '--intervals', '1m,5m',
    '--ws-url', `ws://127.0.0.1:${simPort}/market`, '--rest-url', `http://127.0.0.1:${simPort}`,
    '--sink', `sqlite:${path.join(tmp, 'limits.db')}`, '--state-dir', 'none',
    '--http', '127.0.0.1:0'], {
    stdio: ['ignore', fd, fd],
    env: { ...process.env, KLINEFEED_GW_PING_MS: '300', KLINEFEED_GW_PONG_TIMEOUT_MS: '1500',
      KLINEFEED_GW_MAX_AGE_MS: '4000', KLINEFEED_GW_MAX_STREAMS: '3' },
  });
  children.push(daemon);
  const port = (await waitFor(dlog, /http listening.* port=(\d+)/, 20000))[1];
  await waitFor(dlog, /msg="running"/, 20000);
  const WebSocket = require('ws');
  const wsBase = `ws://127.0.0.1:${port}`;
  const open = (url, opts) => new Promise((res, rej) => {
    const w = new WebSocket(`${wsBase}${url}`, opts);
    w.msgs = [];
    w.pings = [];
    w.on('message', (m) => w.msgs.push(JSON.parse(m.toString())));
    w.on('ping', (d) => w.pings.push(d.toString()));
    w.closed = new Promise((r) => w.on('close', (code, reason) =>
      r({ code, reason: reason.toString(), at: Date.now() })));
    w.on('open', () => { w.openedAt = Date.now(); res(w); });
    w.on('error', rej);
  });
  const [alive, mute, chatty, greedy] = await Promise.all([
    open('/market/ws/btcusdt@kline_1m'),
    open('/market/ws/btcusdt@kline_1m', { autoPong: false }),
    open('/market/ws'),
    open('/market/stream?streams=btcusdt@kline_1m/btcusdt@kline_5m/ethusdt@kline_1m/ethusdt@kline_5m'),
  ]);
  // more than 10 messages in a second: closed 1008 "Too many requests" (Binance)
  for (let i = 1; i <= 20; i++) chatty.send(JSON.stringify({ method: 'LIST_SUBSCRIPTIONS', id: i }));
  // 3 streams per connection: the URL's fourth is not taken; one more SUBSCRIBE is refused with
  // Binance's error 4 and the connection closed 1008
  greedy.send(JSON.stringify({ method: 'LIST_SUBSCRIPTIONS', id: 1 }));
  await sleep(300);
  greedy.send(JSON.stringify({ method: 'SUBSCRIBE', params: ['ethusdt@kline_5m'], id: 2 }));

  const c = await Promise.race([chatty.closed, sleep(5000).then(() => null)]);
  const replies = chatty.msgs.filter((m) => 'id' in m).length;
  check(c && c.code === 1008 && c.reason === 'Too many requests' && replies === 10,
    `20 requests at once: closed ${c && c.code} "${c && c.reason}" after ${replies} replies`);
  const g = await Promise.race([greedy.closed, sleep(5000).then(() => null)]);
  const gr = greedy.msgs.filter((m) => 'id' in m);
  check(JSON.stringify(gr) === JSON.stringify([
    { result: ['btcusdt@kline_1m', 'btcusdt@kline_5m', 'ethusdt@kline_1m'], id: 1 },
    { error: { code: 4, msg: 'Too many subscriptions' }, id: 2 }]) && g && g.code === 1008,
  `over 3 streams per connection: ${JSON.stringify(gr)}, closed ${g && g.code}`);

  // a client that does not answer the pings is closed at the pong deadline; one that does stays
  const m = await Promise.race([mute.closed, sleep(6000).then(() => null)]);
  check(m && m.code === 1008 && m.reason === 'Pong timeout' && mute.pings.length >= 1,
    `no pong: closed ${m && m.code} "${m && m.reason}" after ${m && m.at - mute.openedAt} ms ` +
    `and ${mute.pings.length} pings`);
  const now = Date.now();
  check(alive.readyState === WebSocket.OPEN && alive.pings.length >= 3 &&
    alive.pings.every((p) => /^\d{13}$/.test(p) && Math.abs(Number(p) - now) < 60000),
  `pings every 300 ms with a ms timestamp, answered: still open (${alive.pings.length} pings: ` +
  `${alive.pings.slice(0, 2).join(', ')}...) and receiving (${alive.msgs.length} events)`);
  // the lifetime: closed 1001 at 4 s
  const a = await Promise.race([alive.closed, sleep(10000).then(() => null)]);
  check(a && a.code === 1001 && a.at - alive.openedAt >= 3900,
    `the connection's lifetime: closed ${a && a.code} "${a && a.reason}" after ` +
    `${a && a.at - alive.openedAt} ms (limit 4000)`);

  const exited = new Promise((res) => daemon.on('exit', (code2) => res(code2)));
  daemon.kill('SIGTERM');
  const code = await Promise.race([exited, sleep(30000).then(() => 'timeout')]);
  const text = fs.readFileSync(dlog, 'utf8');
  check(code === 0 && !/Sanitizer|runtime error/.test(text),
    `the limits daemon exits 0 on SIGTERM (exit ${code})`);
}

main().then(() => {
  cleanup();
  if (!failures) fs.rmSync(tmp, { recursive: true, force: true });
  else console.log(`logs kept in ${tmp}`);
  console.log(failures ? `${failures} FAILED` : 'all passed');
  process.exit(failures ? 1 : 0);
}, (e) => {
  console.log(`FAIL ${e.stack}`);
  cleanup();
  console.log(`logs kept in ${tmp}`);
  process.exit(1);
});

"""Candles into Python: exact against the simulator's truth, the original handler hook,
logging, lifecycles (100 cycles, stop under a flood, a slow consumer, Ctrl-C in a script)."""
import asyncio
import logging
import os
import signal
import subprocess
import sys
import time
from decimal import Decimal

import pytest

from klinefeed import BinanceDataCollector, Candle

HERE = os.path.dirname(os.path.abspath(__file__))
FIELDS = ["open", "high", "low", "close", "volume", "quote_volume", "taker_buy_base",
          "taker_buy_quote"]


def collector(sim, symbols=("BTCUSDT",), intervals=("1m",), cls=BinanceDataCollector, **kw):
    return cls(symbols=list(symbols), intervals=list(intervals), ws_url=sim.ws_url,
               rest_url=sim.rest_url, validate="required", connect_timeout=5, **kw)


def check_truth(sim, candles):
    """Every candle equals the simulator's truth row for its open time, as Decimal and as text."""
    by_stream = {}
    for c in candles:
        by_stream.setdefault((c.symbol, c.interval), []).append(c)
    compared = 0
    for (sym, iv), cs in by_stream.items():
        rows = sim.truth(sym, iv, cs[0].open_time, cs[-1].open_time)
        truth = {r[0]: r for r in rows}
        for c in cs:
            r = truth[c.open_time]
            # [open time, o, h, l, c, v, close time, q, n, V, Q, ignore]
            texts = [r[1], r[2], r[3], r[4], r[5], r[7], r[9], r[10]]
            for name, text in zip(FIELDS, texts):
                value = getattr(c, name)
                assert isinstance(value, Decimal)
                assert value == Decimal(text) and str(value) == text, (c, name, text)
                assert c.text(name) == text
            assert (c.close_time, c.trades) == (r[6], r[8])
            compared += 1
    return compared


async def test_closed_candles_equal_truth(sim_factory):
    sim = sim_factory("--symbols", "BTCUSDT,ETHUSDT", "--speed", "600")  # 1m closes every 0.1 s
    c = collector(sim, ["BTCUSDT", "ETHUSDT"], ["1m"])
    got = []
    async with c:
        async for candle in c.candles(closed_only=True):
            assert isinstance(candle, Candle) and candle.closed and candle.final
            got.append(candle)
            if len(got) == 40:
                break
    assert not c.is_running
    assert check_truth(sim, got) == 40
    # each stream's candles follow each other, each once
    for sym in ("BTCUSDT", "ETHUSDT"):
        times = [x.open_time for x in got if x.symbol == sym]
        assert times == sorted(set(times)) and len(times) >= 10
        assert all(b - a == 60000 for a, b in zip(times, times[1:]))
    # get_recent: the library's ring, the same exact values
    recent = c.get_recent("btcusdt", "1m", 5)
    assert 1 <= len(recent) <= 5
    assert check_truth(sim, [r for r in recent if r.closed]) >= 1
    with pytest.raises(KeyError):
        c.get_recent("BTCUSDT", "5m", 5)
    stats = c.stats()
    assert stats["closed"] >= 40 and stats["python_missed"] == 0
    c.close()


async def test_sinks_store_every_closed_candle(sim_factory, tmp_path):
    """sinks= are the library's stores: every closed candle Python saw is in the SQLite store
    once stop() returns, with exactly the same text, and nothing else closed is there."""
    import sqlite3
    sim = sim_factory("--symbols", "BTCUSDT", "--speed", "600")
    db = tmp_path / "k.db"
    c = collector(sim, ["BTCUSDT"], ["1m"], sinks=[f"sqlite:{db}"], backfill=False)
    got = []
    async with c:
        async for candle in c.candles(closed_only=True):
            got.append(candle)
            if len(got) == 20:
                break
    closed = c.stats()["closed"]
    c.close()
    con = sqlite3.connect(f"file:{db}?mode=ro", uri=True)
    rows = {r[0]: r[1:] for r in con.execute(
        "SELECT open_time, open, high, low, close, volume, quote_volume, taker_buy_base, "
        "taker_buy_quote FROM klines WHERE symbol = 'BTCUSDT' AND interval = '1m' "
        "AND closed = 1")}
    con.close()
    assert len(rows) == closed >= 20  # every closed candle once, including any after the 20th
    for candle in got:
        assert rows[candle.open_time] == tuple(candle.text(f) for f in FIELDS)


async def test_subclass_handler_gets_every_message(sim_factory):
    sim = sim_factory("--symbols", "BTCUSDT", "--speed", "600")

    class Mine(BinanceDataCollector):
        def __init__(self, **kw):
            super().__init__(**kw)
            self.messages = []

        def _handle_kline_message(self, message):
            self.messages.append(message)

    c = collector(sim, cls=Mine)
    await c.start_streaming()
    while sum(m["k"]["x"] for m in c.messages) < 5:
        await asyncio.sleep(0.05)
    await c.stop()
    stats = c.stats()
    # every kline update the library decoded reached the handler, in order, none missed
    assert len(c.messages) == stats["updates"] == stats["python_updates_queued"]
    assert stats["python_missed"] == 0
    m = c.messages[0]
    assert m["e"] == "kline" and m["s"] == "BTCUSDT" and isinstance(m["E"], int)
    assert set(m["k"]) >= {"t", "T", "s", "i", "f", "L", "o", "c", "h", "l", "v", "n", "x", "q",
                           "V", "Q"}
    assert m["k"]["i"] == "1m" and isinstance(m["k"]["o"], str)
    events = [x["E"] for x in c.messages]
    assert events == sorted(events)
    # the closing messages carry the truth's exact text
    closing = [x["k"] for x in c.messages if x["k"]["x"]]
    rows = {r[0]: r for r in sim.truth("BTCUSDT", "1m", closing[0]["t"], closing[-1]["t"])}
    for k in closing:
        r = rows[k["t"]]
        assert [k["o"], k["h"], k["l"], k["c"], k["v"], k["q"], k["V"], k["Q"]] == \
            [r[1], r[2], r[3], r[4], r[5], r[7], r[9], r[10]]
    c.close()


async def test_on_candle_callbacks(sim_factory):
    sim = sim_factory("--symbols", "BTCUSDT", "--speed", "600")
    c = collector(sim)
    closed, updates, async_seen = [], [], []
    c.on_candle(closed.append)
    c.on_candle(updates.append, closed_only=False)

    @c.on_candle
    async def record(candle):
        await asyncio.sleep(0)
        async_seen.append(candle.open_time)

    async with c:
        while len(closed) < 3:
            await asyncio.sleep(0.05)
    assert [x.open_time for x in closed] == async_seen
    assert all(x.final for x in closed) and not any(x.final for x in updates)
    assert len(updates) == c.stats()["updates"] > len(closed)
    c.close()


async def test_library_logs_to_logging_without_secrets(sim, caplog):
    key, secret = "AKFAKEKEY0123456789", "SECRETFAKE9876543210"
    c = collector(sim, api_key=key, api_secret=secret,
                  logger=logging.getLogger("klinefeed.test"))
    with caplog.at_level(logging.DEBUG, logger="klinefeed.test"):
        c.logger.setLevel(logging.DEBUG)
        c2 = collector(sim, api_key=key, api_secret=secret, logger=c.logger)
        async with c2:
            assert await c2.wait_connected(5)
    lib = [r for r in caplog.records if r.getMessage().startswith("msg=")]
    assert lib, "no library line reached logging"
    assert any(r.levelno == logging.DEBUG for r in lib)
    text = "\n".join(r.getMessage() for r in caplog.records)
    assert key not in text and secret not in text
    c.close()
    c2.close()


def fd_count():
    return len(os.listdir("/proc/self/fd"))


def library_threads():
    """The library's threads alive (kf-io, kf-rest, kf-sink-N by their names; libuv's pool of
    4, made once by the first I/O thread, inherits its name and stays)."""
    names = []
    for t in os.listdir("/proc/self/task"):
        try:
            with open(f"/proc/self/task/{t}/comm") as f:
                names.append(f.read().strip())
        except FileNotFoundError:
            pass
    return sorted(n for n in names if n.startswith("kf-"))


def rss_kb():
    with open("/proc/self/statm") as f:
        return int(f.read().split()[1]) * os.sysconf("SC_PAGE_SIZE") // 1024


async def test_100_start_stop_cycles(sim):
    async def cycle(c):
        t0 = time.monotonic()
        await c.start_streaming()
        assert await c.wait_connected(5)
        await c.stop()
        assert not c.is_running
        assert time.monotonic() - t0 < 5

    for _ in range(5):  # warm up (thread pool, allocator)
        c = collector(sim, queue_size=1024)
        await cycle(c)
        c.close()
    fds, rss, threads = fd_count(), rss_kb(), library_threads()
    assert len(threads) <= 4
    reused = collector(sim, queue_size=1024)
    for i in range(100):
        if i % 2:  # a fresh collector every other cycle, the same one restarted otherwise
            c = collector(sim, queue_size=1024)
            await cycle(c)
            c.close()
        else:
            await cycle(reused)
    reused.close()
    assert fd_count() == fds
    assert library_threads() == threads  # (the executor's own threads come and go)
    assert rss_kb() - rss < 8 * 1024, "RSS grew by more than 8 MiB over 100 cycles"
    assert sim.state()["connections_open"] == 0


async def test_stop_during_flood(sim_factory):
    sim = sim_factory("--symbols", "BTCUSDT,ETHUSDT", "--flood", "20000000")
    c = collector(sim, ["BTCUSDT", "ETHUSDT"], ["1m", "5m"])
    stream = c.candles(closed_only=False)
    n = 0
    await c.start_streaming()
    async for _ in stream:
        n += 1
        if n == 200000:
            t0 = time.monotonic()
            stopping = asyncio.ensure_future(c.stop())
            break
    await asyncio.wait_for(stopping, 10)
    took = time.monotonic() - t0
    assert took < 5, f"stop took {took:.1f} s under a flood"
    assert not c.is_running and not c.is_connected
    s = c.stats()
    assert s["updates"] >= 200000 and s["updates"] < 20000000  # stopped mid-flood
    c.close()
    # the iterator left by the break is finalised after close() (at the loop's shutdown)
    stream.close()
    assert stream.read_count >= 200000


async def test_slow_consumer_keeps_newest_and_counts(sim_factory):
    total = 50000
    # the regular updates' clock far from the flood's event times (1767225600000 + frame)
    sim = sim_factory("--symbols", "BTCUSDT", "--flood", str(total), "--start", "1800000000000")
    c = collector(sim, queue_size=1024)
    stream = c.candles(closed_only=False)  # made before the start: sees every update
    await c.start_streaming()
    while c.stats()["updates"] < total:  # the consumer sleeps through the flood
        await asyncio.sleep(0.02)
    await c.stop()
    got = [x async for x in stream]
    s = c.stats()
    # (the simulator's regular updates may add a few to the flood)
    assert s["python_updates_queued"] == s["updates"] >= total
    assert len(got) == 1024 == s["python_queue_capacity"]  # the newest ring-full
    assert stream.missed == s["updates"] - 1024 == s["python_missed"]
    # what it got is the newest: the flood's last 1024 frames, in order (the flood repeats a
    # template of 4096 frames whose event times are 1767225600000 + index)
    flood = [x.event_time - 1767225600000 for x in got if x.event_time < 1800000000000]
    tail = [(total - 1024 + j) % 4096 for j in range(1024)]
    assert len(flood) >= 1000 and flood == tail[-len(flood):]
    c.close()


def test_ctrl_c_in_a_script_stops_cleanly(sim_factory):
    sim = sim_factory("--symbols", "BTCUSDT,ETHUSDT", "--speed", "600")
    env = dict(os.environ, KLINEFEED_WS_URL=sim.ws_url, KLINEFEED_REST_URL=sim.rest_url)
    script = os.path.join(HERE, "..", "..", "examples", "python", "collect.py")
    p = subprocess.Popen([sys.executable, script, "--intervals", "1m"], env=env,
                         stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    lines = []
    try:
        for line in p.stdout:
            lines.append(line)
            if line.startswith("BTCUSDT 1m") or line.startswith("ETHUSDT 1m"):
                break
        p.send_signal(signal.SIGINT)
        out, _ = p.communicate(timeout=15)
    finally:
        if p.poll() is None:
            p.kill()
    lines += out.splitlines(keepends=True)
    text = "".join(lines)
    assert p.returncode == 0, text
    assert "stopped: updates=" in text and "Traceback" not in text

"""The original design's eight cases, against klinefeed-sim on real loopback sockets."""
import asyncio
import logging

import pytest

from klinefeed import BinanceDataCollector, StartError
from conftest import free_port


def collector(sim, symbols=("BTCUSDT",), intervals=("1m",), **kw):
    return BinanceDataCollector(symbols=list(symbols), intervals=list(intervals),
                                ws_url=sim.ws_url, rest_url=sim.rest_url, validate="required",
                                connect_timeout=5, **kw)


# 1 testnet URL
def test_testnet_url():
    c = BinanceDataCollector(symbols=["BTCUSDT"], intervals=["1m"], is_testnet=True)
    assert c.is_testnet is True
    assert c.ws_url == "wss://demo-fstream.binance.com/market"
    assert c.ws_url == BinanceDataCollector.TESTNET_WS_URL
    assert c.rest_url == "https://demo-fapi.binance.com"
    assert "/market" in BinanceDataCollector.__doc__ and "silent" in BinanceDataCollector.__doc__
    c.close()


# 2 mainnet URL
def test_mainnet_url():
    c = BinanceDataCollector("key", "secret", ["BTCUSDT"], ["1m"])
    assert c.is_testnet is False
    assert c.ws_url == "wss://fstream.binance.com/market" == BinanceDataCollector.MAINNET_WS_URL
    assert c.rest_url == "https://fapi.binance.com"
    c.close()


# 3 stream names: lowercase symbol, the interval as given (1M is the month, kept)
def test_stream_names():
    c = BinanceDataCollector(symbols=["btcUSDT", "ETHUSDT"], intervals=["1m", "1M", "1h"])
    assert c.symbols == ["BTCUSDT", "ETHUSDT"]
    assert c.intervals == ["1m", "1M", "1h"]
    # one per symbol x interval (the library orders intervals from the shortest)
    assert sorted(c.stream_names) == sorted(
        ["btcusdt@kline_1m", "btcusdt@kline_1M", "btcusdt@kline_1h",
         "ethusdt@kline_1m", "ethusdt@kline_1M", "ethusdt@kline_1h"])
    assert len(c.stream_names) == 6
    with pytest.raises(AttributeError):
        c.stream_names = []  # read-only
    with pytest.raises(ValueError, match="7m"):
        BinanceDataCollector(symbols=["BTCUSDT"], intervals=["7m"])
    c.close()


# 4 one subscription per symbol x interval, as the exchange saw it
async def test_one_subscription_per_stream(sim):
    c = collector(sim, ["BTCUSDT", "ETHUSDT"], ["1m", "1M"])
    await c.start_streaming()
    assert await c.wait_connected(5)
    state = sim.state()
    assert sorted(state["streams"]) == sorted(c.stream_names)
    assert len(state["streams"]) == len(set(state["streams"])) == 4
    assert state["connections_open"] == 1
    await c.stop()
    c.close()


# 5 state flags: running at once, connected after the acknowledgements, both false after stop
async def test_state_flags(sim):
    c = collector(sim)
    assert (c.is_running, c.is_connected, c._running, c._is_connected) == (False,) * 4
    assert c.ws_client is None
    await c.start_streaming()
    assert c.is_running and c._running
    assert c.ws_client is not None
    assert await c.wait_connected(5)
    assert c.is_connected and c._is_connected
    await c.stop()
    assert (c.is_running, c.is_connected, c._running, c._is_connected) == (False,) * 4
    c.close()


# 6 clear connection errors: refused, non-101, TLS failure; the message names cause and URL
async def check_start_error(url, cause, caplog):
    c = BinanceDataCollector(symbols=["BTCUSDT"], intervals=["1m"], ws_url=url,
                             validate="off", connect_timeout=3)
    caplog.clear()
    with caplog.at_level(logging.INFO, logger="klinefeed"):
        with pytest.raises(ConnectionError) as info:
            await c.start_streaming()
    msg = str(info.value)
    assert cause in msg
    assert f"{url}/ws" in msg
    assert isinstance(info.value, StartError) and info.value.url == url
    # the library's own line, then ours with the traceback
    assert any("connection failed" in r.getMessage() and cause in r.getMessage()
               for r in caplog.records if r.levelno == logging.ERROR)
    ours = [r for r in caplog.records if r.getMessage().startswith("start_streaming failed")]
    assert len(ours) == 1 and ours[0].exc_info is not None and cause in ours[0].getMessage()
    assert not c.is_running and not c.is_connected
    c.close()


async def test_refused(caplog):
    await check_start_error(f"ws://127.0.0.1:{free_port()}/market", "Connection refused", caplog)


async def test_upgrade_not_101(one_shot_server, caplog):
    srv = one_shot_server(b"HTTP/1.1 404 Not Found\r\nContent-Length: 0\r\n\r\n")
    await check_start_error(f"ws://127.0.0.1:{srv.port}/market", "404", caplog)


async def test_tls_failure(one_shot_server, caplog):
    srv = one_shot_server(b"HTTP/1.1 400 Bad Request\r\n\r\n")  # not TLS
    await check_start_error(f"wss://127.0.0.1:{srv.port}/market", "TLS handshake", caplog)


async def test_start_does_not_block_the_loop(one_shot_server):
    """A start that waits on an exchange that never answers leaves the loop running."""
    srv = one_shot_server(None)  # accepts, reads, answers nothing
    c = BinanceDataCollector(symbols=["BTCUSDT"], intervals=["1m"], validate="off",
                             ws_url=f"ws://127.0.0.1:{srv.port}/market", connect_timeout=1)
    ticks = 0

    async def tick():
        nonlocal ticks
        while True:
            await asyncio.sleep(0.01)
            ticks += 1

    t = asyncio.create_task(tick())
    with pytest.raises(ConnectionError, match="timed out|within"):
        await c.start_streaming()
    t.cancel()
    await asyncio.gather(t, return_exceptions=True)
    assert ticks >= 50  # ~100 in the second the start waited
    c.close()


# 7 idempotency: a second start logs a warning and opens nothing
async def test_second_start_ignored(sim, caplog):
    c = collector(sim)
    await c.start_streaming()
    assert await c.wait_connected(5)
    with caplog.at_level(logging.WARNING, logger="klinefeed"):
        await c.start_streaming()
    assert any(r.levelno == logging.WARNING and "already running" in r.getMessage()
               for r in caplog.records)
    state = sim.state()
    assert state["connections_total"] == 1 and state["streams"] == ["btcusdt@kline_1m"]
    assert c.is_running
    await c.stop()
    await c.stop()  # idempotent too
    c.close()


# 8 subscription counts: 3 symbols x 4 intervals = 12
async def test_subscription_counts(sim):
    c = collector(sim, ["BTCUSDT", "ETHUSDT", "BNBUSDT"], ["1m", "5m", "1h", "1M"])
    assert len(c.stream_names) == 12
    async with c:
        assert await c.wait_connected(5)
        state = sim.state()
        assert len(state["streams"]) == 12
        assert sorted(state["streams"]) == sorted(c.stream_names)
        assert state["subscribe_requests"] == 1  # one batch of 12 names
        assert c.stats()["acks"] == 1
    assert not c.is_running
    c.close()

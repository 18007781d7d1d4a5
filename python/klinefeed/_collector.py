"""BinanceDataCollector: the original asyncio class, running on libklinefeed."""
from __future__ import annotations

import asyncio
import inspect
import logging
from typing import (Any, AsyncIterator, Awaitable, Callable, Dict, Iterable, List, Optional,
                    Sequence, Union)

from . import _core
from ._core import Candle

__all__ = ["BinanceDataCollector", "Candle", "KlinefeedError", "StartError"]

# kf_start's network failures: the ones the original raised ConnectionError for.
_CONNECTION_CODES = {_core.ERR_DNS, _core.ERR_CONNECT, _core.ERR_TLS, _core.ERR_HANDSHAKE,
                     _core.ERR_TIMEOUT, _core.ERR_REST, _core.ERR_SUBSCRIBE}
_VALIDATE = {"if_reachable": _core.VALIDATE_IF_REACHABLE, "required": _core.VALIDATE_REQUIRED,
             "off": _core.VALIDATE_OFF}
_LIB_LEVEL = {_core.LOG_DEBUG: logging.DEBUG, _core.LOG_INFO: logging.INFO,
              _core.LOG_WARN: logging.WARNING, _core.LOG_ERROR: logging.ERROR}
_BATCH = 4096  # candles converted per read


class KlinefeedError(Exception):
    """A failure of the library that is not a connection failure; .code is the kf_err."""

    def __init__(self, message: str, code: int = 0):
        super().__init__(message)
        self.code = code


class StartError(ConnectionError):
    """start_streaming() could not connect. A ConnectionError whose message names the cause
    and the URL (``ws://127.0.0.1:1/market/ws: connect to 127.0.0.1 port 1 failed: Connection
    refused``); .code is the library's kf_err, .url the WebSocket base."""

    def __init__(self, message: str, code: int, url: str):
        super().__init__(message)
        self.code = code
        self.url = url


def _lib_threshold(logger: logging.Logger) -> int:
    level = logger.getEffectiveLevel()
    if level <= logging.DEBUG:
        return _core.LOG_DEBUG
    if level <= logging.INFO:
        return _core.LOG_INFO
    if level <= logging.WARNING:
        return _core.LOG_WARN
    return _core.LOG_ERROR


class CandleStream:
    """``async for`` over the candles arriving from the moment it was made (see
    BinanceDataCollector.candles). Bounded: it reads from the collector's ring of
    ``queue_size`` candles; a consumer that falls a whole ring behind loses the oldest ones
    and keeps the newest, and ``missed`` counts what it lost."""

    def __init__(self, owner: "BinanceDataCollector", closed_only: bool):
        self._owner = owner
        self._closed_only = closed_only
        self._cursor = owner._core.cursor(closed_only)
        owner._streams.add(self)
        if not closed_only:
            owner._want_updates(+1)
        self._closed = False

    @property
    def missed(self) -> int:
        """Candles this consumer lost because it fell more than the ring's capacity behind."""
        return self._cursor.missed

    @property
    def read_count(self) -> int:
        return self._cursor.read_count

    def close(self) -> None:
        if not self._closed:
            self._closed = True
            self._owner._streams.discard(self)
            self._owner._missed_closed_streams += self._cursor.missed
            if not self._closed_only:
                self._owner._want_updates(-1)

    async def batches(self, max_batch: int = _BATCH) -> AsyncIterator[List[Candle]]:
        """Lists of candles, oldest first: the fast way to consume (no per-candle await)."""
        owner = self._owner
        try:
            while not self._closed:
                batch = self._cursor.read(max_batch)
                if batch:
                    yield batch
                    await asyncio.sleep(0)  # a flood never starves the loop
                    continue
                if owner._stream_done:
                    return
                await owner._wait_wake()
        finally:
            self.close()

    def __aiter__(self) -> AsyncIterator[Candle]:
        return self._iterate()

    async def _iterate(self) -> AsyncIterator[Candle]:
        async for batch in self.batches():
            for candle in batch:
                yield candle


class BinanceDataCollector:
    """Collects Binance USDT-M Futures klines for every symbol x interval, on libklinefeed.

    The original design's class, on the C library: same constructor, attributes and
    coroutines; candles are exact (``Decimal`` as Binance sent them), never lost underneath
    (reconnects, REST repair), and the socket is read on the library's own thread.

    ``TESTNET_WS_URL`` and ``MAINNET_WS_URL`` are the routed ``/market`` bases. The original
    connected to ``wss://fstream.binance.com`` (and the testnet's) without a path; since
    2026-04-23 Binance serves USDT-M klines only on the routed ``/market`` path. An unrouted
    connection is still accepted and still acknowledges every SUBSCRIBE with
    ``{"result": null, "id": n}``, and then delivers no kline at all: a healthy-looking,
    silent connection. The library appends ``/ws`` to the base.
    """

    TESTNET_WS_URL: str = _core.WS_TESTNET
    MAINNET_WS_URL: str = _core.WS_MAINNET
    TESTNET_REST_URL: str = _core.REST_TESTNET
    MAINNET_REST_URL: str = _core.REST_MAINNET

    def __init__(self, api_key: Optional[str] = None, api_secret: Optional[str] = None,
                 symbols: Sequence[str] = ("BTCUSDT",), intervals: Sequence[str] = ("1m",),
                 is_testnet: bool = False, *, ws_url: Optional[str] = None,
                 rest_url: Optional[str] = None, sinks: Iterable[str] = (),
                 validate: str = "if_reachable", connect_timeout: float = 10.0,
                 ring_size: int = 1000, queue_size: int = 65536, backfill: bool = True,
                 tls_verify: bool = True, ca_file: Optional[str] = None,
                 state_dir: Optional[str] = None,
                 logger: Optional[logging.Logger] = None):
        if isinstance(symbols, str) or isinstance(intervals, str):
            raise TypeError("symbols and intervals are lists of str")
        if validate not in _VALIDATE:
            raise ValueError(f"validate must be one of {sorted(_VALIDATE)}")
        self.logger = logger or logging.getLogger("klinefeed")
        self.is_testnet = bool(is_testnet)
        self.symbols: List[str] = [s.upper() for s in symbols]
        self.intervals: List[str] = list(intervals)
        self.ws_client: Optional[Any] = None  # the library's collector once started
        self._core = _core.Collector(
            self.symbols, self.intervals, testnet=self.is_testnet, ws_url=ws_url,
            rest_url=rest_url, api_key=api_key, api_secret=api_secret, sinks=list(sinks),
            validate=_VALIDATE[validate], timeout_ms=max(1, int(connect_timeout * 1000)),
            ring_size=ring_size, queue_size=queue_size, log_level=_lib_threshold(self.logger),
            backfill=backfill, tls_verify=tls_verify, ca_file=ca_file, state_dir=state_dir)
        self._loop: Optional[asyncio.AbstractEventLoop] = None
        self._starting = False
        self._stopping: Optional[asyncio.Future] = None
        self._stream_done = False
        self._waiters: List[asyncio.Future] = []
        self._streams: set = set()
        self._updates_wanted = 0
        self._missed_closed_streams = 0
        self._callbacks: List[tuple] = []
        self._tasks: List[asyncio.Task] = []
        self._handler_stream: Optional[CandleStream] = None

    # ---- the original's state, read from the library (lock-free)

    @property
    def _running(self) -> bool:
        return self._core.running()

    @property
    def _is_connected(self) -> bool:
        return self._core.connected()

    @property
    def is_running(self) -> bool:
        """Started and not stopped."""
        return self._core.running()

    @property
    def is_connected(self) -> bool:
        """Every connection upgraded and every SUBSCRIBE acknowledged."""
        return self._core.connected()

    @property
    def ws_url(self) -> str:
        """The WebSocket base in use: testnet or mainnet ``/market``, or the override."""
        return self._core.ws_url()

    @property
    def rest_url(self) -> str:
        return self._core.rest_url()

    @property
    def stream_names(self) -> List[str]:
        """``btcusdt@kline_1m`` for every symbol x interval (symbol lowercase, ``1M`` kept)."""
        return self._core.stream_names()

    # ---- lifecycle

    async def start_streaming(self) -> None:
        """Connects and subscribes every stream. Returns once every connection is upgraded
        (``is_running``; ``is_connected`` follows with the acknowledgements). A second call
        logs a warning and returns. Raises a ConnectionError naming the cause and the URL when
        the exchange cannot be reached; the event loop keeps running meanwhile (the library's
        start runs on a worker thread)."""
        if self._starting or self._core.running():
            self.logger.warning("start_streaming: already running on %s: ignored", self.ws_url)
            return
        if self._stopping is not None and not self._stopping.done():
            await self._stopping
        loop = asyncio.get_running_loop()
        self._starting = True
        self._stream_done = False
        self._attach(loop)
        # the handlers' cursors exist before the first candle can arrive
        consumers = self._make_consumers()
        try:
            work = loop.run_in_executor(None, self._core.start)
            try:
                code, message = await asyncio.shield(work)
            except asyncio.CancelledError:
                # Ctrl-C or a cancel during the start: kf_stop abandons it at once.
                await loop.run_in_executor(None, self._core.stop)
                await asyncio.gather(work, return_exceptions=True)
                self._pump_logs()
                self._failed_start(consumers)
                raise
        finally:
            self._starting = False
        self._pump_logs()
        if code == _core.OK:
            self.ws_client = self._core
            for stream, fn, as_message in consumers:
                self._tasks.append(loop.create_task(self._run_consumer(stream, fn, as_message)))
            self.logger.info("streaming %d streams from %s", len(self.stream_names), self.ws_url)
            return
        if code == _core.ERR_ALREADY_RUNNING:
            for stream, _, _ in consumers:
                stream.close()
            self.logger.warning("start_streaming: already running on %s: ignored", self.ws_url)
            return
        self._failed_start(consumers)
        text = f"{_core.strerror(code)}: {message}"
        err: Exception
        if code in _CONNECTION_CODES:
            err = StartError(text, code, self.ws_url)
        else:
            err = KlinefeedError(text, code)
        try:
            raise err
        except Exception:
            self.logger.exception("start_streaming failed: %s", text)
            raise

    async def wait_connected(self, timeout: float = 10.0) -> bool:
        """Waits (off the loop) until every SUBSCRIBE is acknowledged. True when connected,
        False at the timeout; raises ConnectionError when the exchange refuses a SUBSCRIBE."""
        loop = asyncio.get_running_loop()
        code, message = await loop.run_in_executor(None, self._core.wait_connected,
                                                   max(0, int(timeout * 1000)))
        self._pump_logs()
        if code == _core.OK:
            return True
        if code in (_core.ERR_TIMEOUT, _core.ERR_NOT_RUNNING):
            return False
        raise StartError(f"{_core.strerror(code)}: {message}", code, self.ws_url)

    async def stop(self) -> None:
        """Stops: close frames on every connection, every sink flushed, every candle queued
        before the stop delivered to the consumers, then their iterators end. Idempotent; the
        loop runs meanwhile (the library's stop runs on a worker thread)."""
        if self._stopping is not None:
            await asyncio.shield(self._stopping)
            return
        loop = asyncio.get_running_loop()
        self._stopping = loop.create_future()
        try:
            code = await loop.run_in_executor(None, self._core.stop)
            self._pump_logs()
            if code != _core.OK:
                self.logger.warning("stop: %s", _core.strerror(code))
            self._stream_done = True
            self._wake_all()
            if self._tasks:
                await asyncio.gather(*self._tasks, return_exceptions=True)
            self._tasks = []
            self._detach()
            if self._core.running() is False:
                self.logger.info("stopped")
        finally:
            fut, self._stopping = self._stopping, None
            fut.set_result(None)

    def close(self) -> None:
        """Releases the library's collector (stopping it if needed, without the event loop).
        After close() the object cannot be started again."""
        self._detach()
        self._core.close()

    async def __aenter__(self) -> "BinanceDataCollector":
        await self.start_streaming()
        return self

    async def __aexit__(self, *exc: Any) -> None:
        await self.stop()

    # ---- the original's handler, and typed access

    def _handle_kline_message(self, message: Dict[str, Any]) -> Optional[Awaitable[None]]:
        """Called with every kline message as a dict shaped like Binance's
        (``{"e": "kline", "E": ..., "s": "BTCUSDT", "k": {"t": ..., "o": "83084.90", ...,
        "x": False, ...}}``), in arrival order, on the event loop. Override it (plain or
        ``async def``); the base class does nothing, and costs nothing when not overridden."""
        return None

    def candles(self, closed_only: bool = True) -> CandleStream:
        """``async for candle in collector.candles()``: the candles arriving from this call on
        (call it before start_streaming() to see every one). closed_only: each closed candle
        once (from the stream, or from REST repair); otherwise every update as sent. Ends after
        stop() once what was queued before it is read."""
        return CandleStream(self, closed_only)

    def on_candle(self, callback: Callable[[Candle], Any], closed_only: bool = True
                  ) -> Callable[[Candle], Any]:
        """Calls callback(candle) (plain or ``async def``) on the event loop for each closed
        candle (or, with closed_only=False, each update). Usable as a decorator. Register
        before start_streaming()."""
        self._callbacks.append((callback, closed_only))
        if self._core.running() and self._loop is not None:
            self._tasks.append(self._loop.create_task(
                self._run_consumer(CandleStream(self, closed_only), callback, False)))
        return callback

    def get_recent(self, symbol: str, interval: str, limit: int = 100) -> List[Candle]:
        """The last ``limit`` candles of one stream, oldest first, the open candle (if any)
        last (kf_recent: any time, also after stop). KeyError for a stream not configured."""
        return self._core.recent(symbol, interval, int(limit))

    def stats(self) -> Dict[str, int]:
        """Every counter of the library (kf_stats) by name, plus the Python bridge's:
        python_updates_queued / python_closed_queued (put in the rings by the I/O thread),
        python_queue_capacity, python_missed (candles consumers lost by falling a whole ring
        behind), python_log_dropped."""
        s = self._core.stats()
        s["python_missed"] = self._missed_closed_streams + sum(
            st.missed for st in self._streams)
        return s

    # ---- plumbing

    def _want_updates(self, delta: int) -> None:
        self._updates_wanted += delta
        self._core.set_want_updates(self._updates_wanted > 0)

    def _attach(self, loop: asyncio.AbstractEventLoop) -> None:
        if self._loop is loop:
            return
        self._detach()
        self._loop = loop
        loop.add_reader(self._core.fileno(), self._on_wake)

    def _detach(self) -> None:
        if self._loop is not None:
            try:
                self._loop.remove_reader(self._core.fileno())
            except (RuntimeError, ValueError):  # loop closed, collector closed
                pass
            self._loop = None

    def _on_wake(self) -> None:
        self._core.ack_wake()
        self._pump_logs()
        self._wake_all()

    def _wake_all(self) -> None:
        waiters, self._waiters = self._waiters, []
        for w in waiters:
            if not w.done():
                w.set_result(None)

    async def _wait_wake(self) -> None:
        fut = asyncio.get_running_loop().create_future()
        self._waiters.append(fut)
        await fut

    def _pump_logs(self) -> None:
        for level, line in self._core.take_logs():
            # "<time> level=<level> msg=..." -> "msg=...": logging adds its own time and level
            parts = line.split(" ", 2)
            text = parts[2] if len(parts) == 3 and parts[1].startswith("level=") else line
            self.logger.log(_LIB_LEVEL.get(level, logging.INFO), "%s", text)

    def _make_consumers(self) -> List[tuple]:
        consumers = []
        if type(self)._handle_kline_message is not BinanceDataCollector._handle_kline_message:
            consumers.append((CandleStream(self, False), self._handle_kline_message, True))
        for callback, closed_only in self._callbacks:
            consumers.append((CandleStream(self, closed_only), callback, False))
        return consumers

    def _failed_start(self, consumers: List[tuple]) -> None:
        for stream, _, _ in consumers:
            stream.close()
        self._stream_done = True  # iterators made before the start end
        self._wake_all()
        self._detach()

    async def _run_consumer(self, stream: CandleStream, fn: Callable[[Any], Any],
                            as_message: bool) -> None:
        async for batch in stream.batches():
            for candle in batch:
                try:
                    r = fn(candle.to_message() if as_message else candle)
                    if r is not None and inspect.isawaitable(r):
                        await r
                except Exception:
                    self.logger.exception("kline handler %r failed", fn)

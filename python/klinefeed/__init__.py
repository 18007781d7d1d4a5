"""klinefeed: Binance USDT-M Futures klines for asyncio, on libklinefeed (C).

    from klinefeed import BinanceDataCollector
    async with BinanceDataCollector(symbols=["BTCUSDT"], intervals=["1m"]) as c:
        async for candle in c.candles():
            print(candle.symbol, candle.open_time, candle.close)
"""
from ._collector import BinanceDataCollector, CandleStream, KlinefeedError, StartError
from ._core import Candle, version as library_version

__all__ = ["BinanceDataCollector", "Candle", "CandleStream", "KlinefeedError", "StartError",
           "library_version"]
__version__ = "0.2.0"

#!/usr/bin/env python3
"""Collect Binance USDT-M Futures klines the way the original BinanceDataCollector's users
did: construct, start streaming, read candles, stop. Ctrl-C stops cleanly.

    /usr/bin/python3 examples/python/collect.py [--symbols BTCUSDT,ETHUSDT] [--intervals 1m]
        [--testnet] [--candles N]

KLINEFEED_WS_URL / KLINEFEED_REST_URL point it elsewhere (klinefeed-sim, a proxy);
BINANCE_API_KEY / BINANCE_API_SECRET are passed on (market streams do not need them).
"""
import argparse
import asyncio
import logging
import os

from klinefeed import BinanceDataCollector


async def main(args: argparse.Namespace) -> None:
    collector = BinanceDataCollector(
        api_key=os.environ.get("BINANCE_API_KEY"),
        api_secret=os.environ.get("BINANCE_API_SECRET"),
        symbols=args.symbols.split(","),
        intervals=args.intervals.split(","),
        is_testnet=args.testnet,
        ws_url=os.environ.get("KLINEFEED_WS_URL"),
        rest_url=os.environ.get("KLINEFEED_REST_URL"),
    )
    print(f"streams: {', '.join(collector.stream_names)} from {collector.ws_url}", flush=True)
    await collector.start_streaming()
    try:
        n = 0
        async for candle in collector.candles(closed_only=True):
            print(f"{candle.symbol} {candle.interval} {candle.open_time} open={candle.open} "
                  f"high={candle.high} low={candle.low} close={candle.close} "
                  f"volume={candle.volume} trades={candle.trades}", flush=True)
            n += 1
            if args.candles and n >= args.candles:
                break
        recent = collector.get_recent(collector.symbols[0], collector.intervals[0], 5)
        print(f"{len(recent)} recent {collector.symbols[0]} {collector.intervals[0]} candles",
              flush=True)
    finally:
        await collector.stop()  # close frames sent, sinks flushed
        s = collector.stats()
        print(f"stopped: updates={s['updates']} closed={s['closed']} "
              f"reconnects={s['reconnects']} missed_by_python={s['python_missed']}", flush=True)


if __name__ == "__main__":
    p = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    p.add_argument("--symbols", default="BTCUSDT,ETHUSDT")
    p.add_argument("--intervals", default="1m")
    p.add_argument("--testnet", action="store_true")
    p.add_argument("--candles", type=int, default=0, help="stop after N closed candles")
    logging.basicConfig(level=logging.INFO, format="%(asctime)s %(levelname)s %(message)s")
    try:
        asyncio.run(main(p.parse_args()))
    except KeyboardInterrupt:
        pass  # asyncio.run cancelled main(): its finally has stopped the collector

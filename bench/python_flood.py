#!/usr/bin/env python3
"""Kline updates delivered to Python as Candle objects, from `klinefeed-sim --flood N`.

    /usr/bin/python3 bench/python_flood.py [--count N] [--runs R] [--batches] [--decimal]
        [--queue Q] [--sim build/klinefeed-sim]   (PYTHONPATH=build/python/lib: the package CMake built)

Each run starts the simulator (127.0.0.1, port 0), a BinanceDataCollector on it, and consumes
with `async for candle in collector.candles(closed_only=False)` (or, with --batches, the lists
of `batches()`), touching candle.close_time of each (with --decimal, candle.close: a decimal.Decimal made on
first access). Rate: candles read / wall seconds from the
first candle to the end of the flood; CPU: the process's user+system seconds over the same span
(the library's I/O thread included) per million candles read. A consumer slower than the
socket loses the oldest candles beyond the queue (--queue, default 262144): "missed" says how
many. Prints each run and the medians.
"""
import argparse
import asyncio
import os
import resource
import statistics
import subprocess
import sys
import time

HERE = os.path.dirname(os.path.abspath(__file__))
sys.path.insert(0, os.path.join(HERE, "..", "build", "python", "lib"))
from klinefeed import BinanceDataCollector  # noqa: E402


def cpu():
    r = resource.getrusage(resource.RUSAGE_SELF)
    return r.ru_utime + r.ru_stime


async def run(sim_path, count, queue, batches, decimal):
    field = "close" if decimal else "close_time"
    sim = subprocess.Popen([sim_path, "--listen", "127.0.0.1:0", "--symbols", "BTCUSDT",
                            "--flood", str(count), "--start", "1800000000000"],
                           stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True)
    port = int(sim.stdout.readline().strip()[5:])
    sim.stdout.close()
    c = BinanceDataCollector(symbols=["BTCUSDT"], intervals=["1m"],
                             ws_url=f"ws://127.0.0.1:{port}/market",
                             rest_url=f"http://127.0.0.1:{port}", queue_size=queue)
    stream = c.candles(closed_only=False)
    n = 0
    t0 = c0 = None
    sink = []
    await c.start_streaming()
    try:
        if batches:
            async for batch in stream.batches():
                if t0 is None:
                    t0, c0 = time.perf_counter(), cpu()
                for candle in batch:
                    sink = getattr(candle, field)
                n += len(batch)
                if n + stream.missed >= count:
                    break
        else:
            async for candle in stream:
                if t0 is None:
                    t0, c0 = time.perf_counter(), cpu()
                sink = getattr(candle, field)
                n += 1
                if n + stream.missed >= count:
                    break
        t1, c1 = time.perf_counter(), cpu()
    finally:
        await c.stop()
        c.close()
        sim.terminate()
        sim.wait()
    return n, stream.missed, t1 - t0, c1 - c0


def main():
    p = argparse.ArgumentParser()
    p.add_argument("--count", type=int, default=2000000)
    p.add_argument("--runs", type=int, default=5)
    p.add_argument("--queue", type=int, default=262144)
    p.add_argument("--batches", action="store_true", help="consume lists from batches()")
    p.add_argument("--decimal", action="store_true", help="read candle.close (a Decimal)")
    p.add_argument("--sim", default=os.path.join(HERE, "..", "build", "klinefeed-sim"))
    a = p.parse_args()
    rates, cpus = [], []
    for i in range(a.runs):
        n, missed, secs, cpus_used = asyncio.run(run(a.sim, a.count, a.queue, a.batches,
                                                        a.decimal))
        rate, per_m = n / secs, cpus_used / n * 1e6
        rates.append(rate)
        cpus.append(per_m)
        print(f"run {i + 1}: candles={n} missed={missed} seconds={secs:.3f} "
              f"rate={rate / 1e3:.0f}k/s cpu_per_million={per_m:.2f}s", flush=True)
    print(f"median: {statistics.median(rates) / 1e3:.0f}k candles/s, "
          f"{statistics.median(cpus):.2f} CPU-s per million "
          f"({'batches()' if a.batches else 'async for'}, "
          f"{'candle.close' if a.decimal else 'candle.close_time'}, --count {a.count}, "
          f"{a.runs} runs)")


if __name__ == "__main__":
    main()

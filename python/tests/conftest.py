"""Fixtures: klinefeed-sim on 127.0.0.1 port 0 (a real process, real sockets), a one-shot
TCP server for refused upgrades, and HTTP helpers for the simulator's /sim/* endpoints."""
import json
import os
import signal
import socket
import subprocess
import threading
import urllib.request

import pytest

HERE = os.path.dirname(os.path.abspath(__file__))
SIM = os.environ.get("KLINEFEED_SIM",
                     os.path.join(HERE, "..", "..", "build", "klinefeed-sim"))


class Sim:
    """klinefeed-sim started with args; reads "port=N" from its first line of stdout (as
    tests/common/sim_proc.c does)."""

    def __init__(self, *args: str):
        if not os.access(SIM, os.X_OK):
            raise RuntimeError(f"{SIM} not found: build the project (cmake --build build) or "
                               "set KLINEFEED_SIM")
        self.proc = subprocess.Popen([SIM, "--listen", "127.0.0.1:0", *args],
                                     stdout=subprocess.PIPE, text=True)
        line = self.proc.stdout.readline()
        self.proc.stdout.close()
        if not line.startswith("port="):
            self.proc.kill()
            raise RuntimeError(f"klinefeed-sim: unexpected first line {line!r}")
        self.port = int(line.strip()[5:])
        self.ws_url = f"ws://127.0.0.1:{self.port}/market"
        self.rest_url = f"http://127.0.0.1:{self.port}"

    def get(self, path: str):
        with urllib.request.urlopen(f"{self.rest_url}{path}", timeout=30) as r:
            return json.loads(r.read())

    def state(self):
        return self.get("/sim/state")

    def truth(self, symbol: str, interval: str, start: int, end: int):
        return self.get(f"/sim/truth?symbol={symbol}&interval={interval}"
                        f"&startTime={start}&endTime={end}")

    def stop(self):
        if self.proc.poll() is None:
            self.proc.send_signal(signal.SIGTERM)
            try:
                self.proc.wait(10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait()


@pytest.fixture
def sim_factory():
    sims = []

    def make(*args):
        s = Sim(*args)
        sims.append(s)
        return s

    yield make
    for s in sims:
        s.stop()


@pytest.fixture
def sim(sim_factory):
    return sim_factory("--symbols", "BTCUSDT,ETHUSDT,BNBUSDT")


class OneShotServer:
    """Accepts one connection on 127.0.0.1 port 0, reads the request, answers a fixed text
    (reply None: answers nothing and holds the connection until closed)."""

    def __init__(self, reply):
        self.sock = socket.socket()
        self.sock.bind(("127.0.0.1", 0))
        self.sock.listen(4)
        self.port = self.sock.getsockname()[1]
        self.reply = reply
        self.closing = threading.Event()
        self.thread = threading.Thread(target=self._serve, daemon=True)
        self.thread.start()

    def _serve(self):
        try:
            conn, _ = self.sock.accept()
        except OSError:
            return
        with conn:
            conn.settimeout(5)
            try:
                conn.recv(4096)
                if self.reply is None:
                    self.closing.wait(10)
                else:
                    conn.sendall(self.reply)
            except OSError:
                pass

    def close(self):
        self.closing.set()
        try:
            self.sock.shutdown(socket.SHUT_RDWR)
        except OSError:
            pass
        self.sock.close()
        self.thread.join(5)


@pytest.fixture
def one_shot_server():
    servers = []

    def make(reply):
        s = OneShotServer(reply)
        servers.append(s)
        return s

    yield make
    for s in servers:
        s.close()


def free_port() -> int:
    """A port nothing listens on: bound, then closed."""
    s = socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    return port

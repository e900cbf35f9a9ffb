"""The harness of the binding tests: a real gridlink-server child process on 127.0.0.1 over a
fresh data directory with the fixture district (the server's `demo` command), and phones that
are the generated Python bindings over the real library.

`cargo xtask bindings` generates the module into target/bindings/python with the library
beside it; `cargo xtask ci` runs this suite with GRIDLINK_BINDINGS and GRIDLINK_SERVER_BIN set.
"""

import os
import queue
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import threading
import time
import urllib.request

import pytest

ROOT = os.path.abspath(os.path.join(os.path.dirname(__file__), "..", "..", ".."))
BINDINGS = os.environ.get("GRIDLINK_BINDINGS", os.path.join(ROOT, "target", "bindings", "python"))
SERVER_BIN = os.environ.get("GRIDLINK_SERVER_BIN", os.path.join(ROOT, "target", "debug", "gridlink-server"))
sys.path.insert(0, BINDINGS)

import gridlink  # noqa: E402  (the generated module)


def free_port():
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class Server:
    """The server as a child process; restartable on the same port and data directory."""

    def __init__(self, data_dir):
        self.data_dir = data_dir
        self.port = free_port()
        self.url = f"http://127.0.0.1:{self.port}"
        self.proc = None

    def start(self):
        self.log = open(os.path.join(os.path.dirname(self.data_dir), "server.log"), "a")
        self.proc = subprocess.Popen(
            [SERVER_BIN, "demo", "--data", self.data_dir, "--cases", "20",
             "--addr", f"127.0.0.1:{self.port}"],
            stdout=subprocess.PIPE, stderr=self.log, text=True,
        )
        lines = queue.Queue()
        threading.Thread(target=lambda: [lines.put(l) for l in self.proc.stdout] + [lines.put(None)],
                         daemon=True).start()
        deadline = time.monotonic() + 300
        while True:
            try:
                line = lines.get(timeout=max(0.0, deadline - time.monotonic()))
            except queue.Empty:
                self.stop()
                raise RuntimeError("the server did not start in 300 s (see server.log)")
            if line is None:
                raise RuntimeError(f"the server exited: {self.proc.wait()} (see server.log)")
            if "serving on" in line:
                break
        for _ in range(100):
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=2).read()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the server does not answer /healthz")

    def code(self, user):
        """A fresh one-time enrollment code, made as an operator makes one (the CLI)."""
        out = subprocess.run([SERVER_BIN, "enroll-code", "--data", self.data_dir, "--user", user],
                             check=True, capture_output=True, text=True, timeout=120)
        return out.stdout.split()[-1]

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc = None
        self.log.close()


@pytest.fixture(scope="session")
def workdir():
    path = tempfile.mkdtemp(prefix="gridlink-bindings-")
    yield path
    shutil.rmtree(path, ignore_errors=True)


@pytest.fixture(scope="session")
def server(workdir):
    s = Server(os.path.join(workdir, "server"))
    s.start()
    yield s
    s.stop()


def open_app(workdir, server, name, max_attempts=3, orphan_photo_grace_s=3600):
    """A phone: its own database, photo directory and device id."""
    base = os.path.join(workdir, name)
    os.makedirs(base, exist_ok=True)
    config = gridlink.AppConfig(
        database_path=os.path.join(base, "gridlink.sqlite"),
        photo_dir=os.path.join(base, "camera"),
        server_url=server.url,
        device_id=gridlink.new_id(),
        device_name=f"pytest {name}",
        max_attempts=max_attempts,
        orphan_photo_grace_s=orphan_photo_grace_s,
    )
    return gridlink.FieldApp.open(config), config

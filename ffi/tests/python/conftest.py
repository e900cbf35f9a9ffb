"""The harness of the binding tests: a real gridlink-server child process on 127.0.0.1 over a
fresh data directory with the fixture district (the server's `demo` command), and phones that
are the generated Python bindings over the real library.

`cargo xtask bindings` generates the module into target/bindings/python with the library
beside it; `cargo xtask ci` runs this suite with GRIDLINK_BINDINGS and GRIDLINK_SERVER_BIN set.
"""

import os
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
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
        self.codes = {}

    def start(self):
        self.proc = subprocess.Popen(
            [SERVER_BIN, "demo", "--data", self.data_dir, "--cases", "20",
             "--addr", f"127.0.0.1:{self.port}"],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, text=True,
        )
        deadline = time.monotonic() + 300
        for line in self.proc.stdout:
            parts = line.split()
            # "    insp-0001    name    role    CODE"
            if line.startswith("    ") and len(parts) >= 4 and "-" in parts[0]:
                self.codes[parts[0]] = parts[-1]
            if "serving on" in line:
                break
            if time.monotonic() > deadline:
                raise RuntimeError("the server did not start in time")
        else:
            raise RuntimeError(f"the server exited: {self.proc.wait()}")
        for _ in range(100):
            try:
                urllib.request.urlopen(self.url + "/healthz", timeout=2).read()
                return
            except OSError:
                time.sleep(0.05)
        raise RuntimeError("the server does not answer /healthz")

    def stop(self):
        if self.proc is None:
            return
        self.proc.send_signal(signal.SIGTERM)
        try:
            self.proc.wait(timeout=30)
        except subprocess.TimeoutExpired:
            self.proc.kill()
            self.proc.wait()
        self.proc.stdout.close()
        self.proc = None


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


def open_app(workdir, server, name, max_attempts=3):
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
    )
    return gridlink.FieldApp.open(config), config

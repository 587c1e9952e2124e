"""Helpers for the IVR end-to-end tests and the IVR benchmark.

``RemoteControllerProcess`` runs a remote center's controller in a
subprocess (gevent WSGI server, monkey-patched there and only there) on an
ephemeral port.  Run as a script, this file is that subprocess.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent


class RemoteControllerProcess:
    """``with RemoteControllerProcess(db_url) as ctl: ctl.url``."""

    def __init__(self, db_url: str, sse_interval_s: float = 0.05) -> None:
        self.db_url = db_url
        self.sse_interval_s = sse_interval_s
        self.proc: subprocess.Popen | None = None
        self.port: int | None = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 30.0) -> "RemoteControllerProcess":
        env = dict(os.environ, PYTHONUNBUFFERED="1")
        self.proc = subprocess.Popen(
            [sys.executable, str(HERE / "ivr_support.py"), "controller", self.db_url, str(self.sse_interval_s)],
            stdout=subprocess.PIPE, stderr=subprocess.DEVNULL, env=env, cwd=str(ROOT), text=True)
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            line = self.proc.stdout.readline()
            if line.startswith("PORT "):
                self.port = int(line.split()[1])
                return self
            if not line and self.proc.poll() is not None:
                break
        self.stop()
        raise RuntimeError("remote controller subprocess did not start")

    def stop(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.terminate()
            try:
                self.proc.wait(timeout=10)
            except subprocess.TimeoutExpired:
                self.proc.kill()
                self.proc.wait(timeout=5)
        if self.proc is not None and self.proc.stdout:
            self.proc.stdout.close()

    def __enter__(self) -> "RemoteControllerProcess":
        return self.start()

    def __exit__(self, *exc) -> None:
        self.stop()


def _serve_controller(db_url: str, sse_interval_s: float) -> None:
    from gevent import monkey

    monkey.patch_all()
    import logging

    from gevent.pywsgi import WSGIServer

    from controller import create_app
    from controller.config import TestConfig

    logging.basicConfig(level=logging.WARNING)
    app = create_app(TestConfig(db_url))
    app.config["IVR_SSE_INTERVAL_S"] = sse_interval_s
    server = WSGIServer(("127.0.0.1", 0), app, log=None)
    server.start()
    print(f"PORT {server.server_port}", flush=True)
    try:
        server.serve_forever()
    except KeyboardInterrupt:
        pass


if __name__ == "__main__":
    if len(sys.argv) >= 3 and sys.argv[1] == "controller":
        _serve_controller(sys.argv[2], float(sys.argv[3]) if len(sys.argv) > 3 else 0.05)
    else:
        sys.exit("usage: ivr_support.py controller DB_URL [SSE_INTERVAL_S]")

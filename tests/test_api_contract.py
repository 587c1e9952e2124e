"""The OpenAPI file documents every worker-API route; the CLI and the real server work."""
from __future__ import annotations

import os
import re
import signal
import subprocess
import sys
import time
from pathlib import Path

import pytest
import requests
from click.testing import CliRunner

from controller import create_app
from controller.cli import main

from distribution_helpers import make_campaign

OPENAPI = Path(__file__).resolve().parent.parent / "controller" / "api" / "openapi.yaml"
MINE = ("/api/v1/worker/", "/api/v1/agents", "/api/v1/leads")


def test_openapi_documents_every_worker_api_route(db_url):
    app = create_app({"DATABASE_URL": db_url})
    text = OPENAPI.read_text()
    documented = set(re.findall(r"^  (/[\w/-]+):\s*$", text, re.M))
    routes = {r.rule for r in app.url_map.iter_rules() if r.rule.startswith(MINE)}
    assert routes, "no worker API routes registered"
    for rule in routes:
        assert rule.removeprefix("/api/v1") in documented, f"{rule} missing from openapi.yaml"
    for method_path in documented:
        assert "/api/v1" + method_path in routes, f"{method_path} documented but not served"


def test_cli_worker_add_and_queue_commands(db, db_url):
    make_campaign(db, "camp")
    runner = CliRunner()
    env = {"DIALER_DATABASE_URL": db_url}
    r = runner.invoke(main, ["queue", "pool", "A", "--campaign", "camp"], env=env)
    assert r.exit_code == 0, r.output
    runner.invoke(main, ["queue", "pool", "B", "--campaign", "camp", "--difficulty", "2"], env=env)
    r = runner.invoke(main, ["worker", "add", "w1", "--agent", "1001", "--campaign", "camp", "--skill", "2"], env=env)
    assert r.exit_code == 0, r.output
    token = r.output.strip().splitlines()[-1]
    assert len(token) >= 40
    r = runner.invoke(main, ["queue", "feeds", "w1", "--campaign", "camp", "--mode", "percentage",
                             "--pool", "A:70", "--pool", "B:30:0:shared"], env=env)
    assert r.exit_code == 0, r.output
    assert "mode=percentage" in r.output and "pool B" in r.output and "shareable" in r.output
    r = runner.invoke(main, ["queue", "reorder-pools", "--campaign", "camp", "B", "A"], env=env)
    assert r.output.splitlines()[0].startswith("0\tB")
    r = runner.invoke(main, ["queue", "feeds", "w1", "--campaign", "camp", "--pool", "nope"], env=env)
    assert r.exit_code != 0 and "no pool 'nope'" in r.output
    r = runner.invoke(main, ["worker", "add", "w1", "--agent", "1002", "--campaign", "camp"], env=env)
    assert r.exit_code != 0 and "exists" in r.output
    r = runner.invoke(main, ["queue", "api-key", "--campaign", "camp"], env=env)
    assert r.exit_code == 0 and len(r.output.strip()) >= 24
    for cmd in (["controller", "--help"], ["queue", "--help"], ["worker", "add", "--help"]):
        assert runner.invoke(main, cmd).exit_code == 0


@pytest.mark.slow
def test_dialer_controller_serves_http(db_url, tmp_path):
    env = {**os.environ, "DIALER_DATABASE_URL": db_url}
    dialer = Path(sys.executable).parent / "dialer"
    proc = subprocess.Popen([str(dialer), "-v", "controller", "--port", "0"], env=env,
                            stderr=subprocess.PIPE, stdout=subprocess.DEVNULL, text=True)
    try:
        port = None
        deadline = time.monotonic() + 30
        while time.monotonic() < deadline and port is None:
            line = proc.stderr.readline()
            m = re.search(r"listening on http://127\.0\.0\.1:(\d+)/", line)
            if m:
                port = int(m.group(1))
        assert port, "controller did not report its port"
        r = requests.get(f"http://127.0.0.1:{port}/api/v1/health", timeout=10)
        assert r.json() == {"status": "ok"}
        r = requests.post(f"http://127.0.0.1:{port}/api/v1/worker/lease", json={"max": 1},
                          headers={"Authorization": "Bearer wrong"}, timeout=10)
        assert r.status_code == 401 and r.json()["error"] == "unauthorized"
    finally:
        proc.send_signal(signal.SIGTERM)
        proc.wait(timeout=20)
    assert proc.returncode == 0

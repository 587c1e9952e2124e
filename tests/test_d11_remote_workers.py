"""D11: workers may run on remote PCs — they reach the controller over HTTP(S) only.

Two things make that true: the worker package never imports the controller
(so it installs and runs on an agent's PC with no database), and the worker's
HTTP client talks to a controller behind TLS.
"""
from __future__ import annotations

import ast
import shutil
import subprocess
import sys
from pathlib import Path

import gevent
import pytest
from gevent.pywsgi import WSGIServer

from controller import create_app
from controller.services import campaigns, workers
from esl_dialer.client import ControllerClient, ControllerUnavailable

ESL_DIALER = Path(__file__).resolve().parent.parent / "esl_dialer"


def _imports(path: Path) -> set[str]:
    tree = ast.parse(path.read_text(encoding="utf-8"), filename=str(path))
    names: set[str] = set()
    for node in ast.walk(tree):
        if isinstance(node, ast.Import):
            names.update(alias.name.split(".")[0] for alias in node.names)
        elif isinstance(node, ast.ImportFrom) and node.level == 0 and node.module:
            names.add(node.module.split(".")[0])
    return names


@pytest.mark.parametrize("path", sorted(ESL_DIALER.rglob("*.py")), ids=lambda p: str(p.relative_to(ESL_DIALER)))
def test_d11_worker_side_never_imports_the_controller(path: Path):
    assert not {"controller", "flask", "sqlalchemy", "alembic"} & _imports(path) - _allowed(path)


def _allowed(path: Path) -> set[str]:
    # The agent console is a small Flask app the worker process serves to its own agents;
    # it shares nothing with the controller.
    return {"flask"} if path.name == "console.py" else set()


def test_d11_worker_modules_load_without_the_controller():
    code = (
        "import sys, esl_dialer.worker, esl_dialer.worker_host, esl_dialer.client, esl_dialer.switch\n"
        "bad = sorted(m for m in sys.modules if m == 'controller' or m.startswith('controller.'))\n"
        "assert not bad, bad\n"
    )
    subprocess.run([sys.executable, "-c", code], check=True, timeout=60)


@pytest.fixture
def tls_files(tmp_path):
    if not shutil.which("openssl"):
        pytest.skip("openssl is not installed: cannot make a test certificate")
    key, cert = tmp_path / "key.pem", tmp_path / "cert.pem"
    subprocess.run(
        ["openssl", "req", "-x509", "-newkey", "rsa:2048", "-nodes", "-days", "1",
         "-subj", "/CN=127.0.0.1", "-addext", "subjectAltName=IP:127.0.0.1",
         "-keyout", str(key), "-out", str(cert)],
        check=True, capture_output=True, timeout=60,
    )
    return key, cert


def test_d11_worker_reaches_the_controller_over_https(db, db_url, tls_files, monkeypatch):
    key, cert = tls_files
    camp = campaigns.create_campaign(db, "remote")
    new = workers.add_worker(db, "remote-1001", agent="1001", campaign_id=camp.id)
    app = create_app({"DATABASE_URL": db_url})
    server = WSGIServer(("127.0.0.1", 0), app, keyfile=str(key), certfile=str(cert), log=None)
    server.start()
    try:
        url = f"https://127.0.0.1:{server.server_port}"
        # The worker trusts the controller's certificate through the standard
        # OpenSSL variable, as an admin would set it on the agent's PC.
        monkeypatch.setenv("SSL_CERT_FILE", str(cert))
        reply = gevent.spawn(ControllerClient(url, new.token, retries=0).heartbeat, "idle").get(timeout=20)
        assert reply["ok"] is True
        monkeypatch.setenv("SSL_CERT_FILE", str(key.parent / "nothing.pem"))
        # A certificate the worker does not trust is refused, never silently accepted.
        with pytest.raises(ControllerUnavailable):
            gevent.spawn(ControllerClient(url, new.token, retries=0).heartbeat, "idle").get(timeout=20)
    finally:
        server.stop(timeout=2)

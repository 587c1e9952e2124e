"""`dialer ivr`, `dialer ivr-acceptor` and `dialer acd`: clear errors, thin over the library."""
from __future__ import annotations

from click.testing import CliRunner

from controller.cli import main
from controller.services import acd
from esl_dialer.ivr.config import IvrConfigError, build_service


def run(*args, env=None):
    return CliRunner().invoke(main, list(args), env=env, catch_exceptions=False)


def test_r1_ivr_command_refuses_bad_configuration(tmp_path):
    res = run("ivr", "--menu", str(tmp_path / "missing.toml"))
    assert res.exit_code == 1 and "cannot read menu file" in res.output
    res = run("ivr", "--menu", "freeswitch/ivr/main.toml")
    assert res.exit_code == 1 and "unknown center(s) remote" in res.output
    res = run("ivr")
    assert res.exit_code == 1 and "no menu" in res.output
    res = run("ivr", "--menu", "a.toml", "--menu-url", "http://x/api/v1/ivr/m")
    assert res.exit_code == 2
    bad = tmp_path / "ivr.toml"
    bad.write_text("[centers.remote]\nurl = 'http://127.0.0.1:5000'\n")
    res = run("ivr", "--config", str(bad), "--menu", "freeswitch/ivr/main.toml")
    assert res.exit_code == 1 and "api_key" in res.output


def test_r1_build_service_from_the_sample_config(monkeypatch):
    import tomllib
    from pathlib import Path

    monkeypatch.setenv("DIALER_REMOTE_KEY", "k" * 32)
    doc = tomllib.loads(Path("freeswitch/ivr/ivr.toml").read_text())
    service = build_service(doc, port=0)
    assert service.menus.current().name == "main"
    assert service.settings.announce_every_s == 30 and service.settings.fallback == "voicemail"
    assert service.settings.centers["remote"].dial_string_for("support", "p") == "sofia/gateway/remote-center/support"
    doc["ivr"]["fallback"] = "fax"
    try:
        build_service(doc, port=0)
    except IvrConfigError as err:
        assert "fallback" in str(err)
    else:
        raise AssertionError("bad fallback accepted")


def test_acd_commands(db_url, db):
    env = {"DIALER_DATABASE_URL": db_url}
    assert run("acd", "queue", "support", "--bridge-position", "2", env=env).exit_code == 0
    res = run("acd", "operator", "alice", "user/2001", "--skill", "support", env=env)
    assert res.exit_code == 0 and "alice (user/2001) available in support" in res.output
    res = run("acd", "peer-add", "local", env=env)
    key = res.output.strip()
    peer = acd.authenticate_peer(db, key)
    acd.create_proxy(db, peer, "support", caller_number="+15551230001")
    res = run("acd", "proxies", env=env)
    assert "support" in res.output and "offered" in res.output and "+15551230001" in res.output
    res = run("acd", "menu-load", "freeswitch/ivr/main.toml", env=env)
    assert res.exit_code == 0 and "menu main published" in res.output
    res = run("acd", "operator", "bob", "user 2002", "--skill", "support", env=env)
    assert res.exit_code == 1 and "dial string" in res.output
    res = run("acd", "peer-add", "local", env=env)
    assert res.exit_code == 1 and "exists" in res.output


def test_r1_dialer_ivr_serves_until_sigterm(tmp_path):
    """The real entry point: binds, prints where it listens, stops cleanly on SIGTERM."""
    import json
    import re
    import signal
    import subprocess
    import sys

    menu = tmp_path / "local.json"
    menu.write_text(json.dumps({"name": "local", "nodes": {"bye": {"type": "hangup"}}}))
    from pathlib import Path

    dialer = str(Path(sys.executable).parent / "dialer")  # the installed console script
    proc = subprocess.Popen([dialer, "ivr", "--menu", str(menu), "--port", "0"],
                            stdout=subprocess.PIPE, stderr=subprocess.STDOUT, text=True)
    try:
        line = proc.stdout.readline()
        assert re.match(r"IVR listening on 127\.0\.0\.1:[1-9]\d* \(menu 'local' from file\)", line), line
        proc.send_signal(signal.SIGTERM)
        assert proc.wait(timeout=15) == 0
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=5)

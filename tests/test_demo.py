"""`dialer demo` (issues 2-6 "make demo"): the whole system on simulated switches.

The end-to-end test runs the real command in a subprocess with every listener
on an ephemeral port (``--ports auto``), logs in to the dashboard it prints,
and checks that calls were placed and recorded and that everything stopped.
"""
from __future__ import annotations

import datetime as dt
import os
import re
import socket
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path

import pytest
import requests

from controller import create_app
from controller import config as config_mod
from controller.demo_stack import DemoOptions, activate_campaign, ensure_workers, rearm_records, release_stale_leases
from controller.models import CallRecord, Campaign, Pool, Worker
from controller.services import acd, users, workers
from esl_dialer.messages import CampaignStatus, RecordStatus

ROOT = Path(__file__).resolve().parent.parent
DIALER = Path(sys.executable).with_name("dialer")
PASSWORD = "demo-password-123"


# --- the remote-queue page (proxies, R4-R6 on the dashboard) ------------------------------


@pytest.fixture
def client(db, db_url, monkeypatch):
    monkeypatch.setattr(users, "PASSWORD_METHOD", "pbkdf2:sha256:1000")
    users.add_user(db, "sup", PASSWORD)
    app = create_app(config_mod.TestConfig(db_url))
    c = app.test_client()
    html = c.get("/login").get_data(as_text=True)
    token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
    assert c.post("/login", data={"username": "sup", "password": PASSWORD, "csrf_token": token}).status_code == 302
    yield c
    app.extensions["dialer_db"].dispose()


def test_r4_r6_dashboard_remote_queue_shows_waiting_bridged_and_ended_proxies(client, db):
    acd.ensure_queue(db, "support", bridge_position=1)
    acd.add_operator(db, "op1", "user/2001", ["support"], state="available")
    peer = acd.authenticate_peer(db, acd.create_peer(db, "local-ivr"))
    first = acd.create_proxy(db, peer, "support", caller_number="15553000001")
    second = acd.create_proxy(db, peer, "support", caller_number="15553000002")
    third = acd.create_proxy(db, peer, "support", caller_number="15553000003")
    token, _exp, _ttl = acd.issue_token(db, first.id, peer)
    acd.accept_leg(db, token, "leg-1")
    acd.leg_connected(db, first.id)
    acd.cancel_proxy(db, third.id, peer)

    html = client.get("/proxies").get_data(as_text=True)
    live = html[html.index('id="live-proxies"'):html.index("Recently ended")]
    ended = html[html.index("Recently ended"):]
    assert f'data-proxy="{first.id}"' in live and "bridged" in live and "op1" in live
    assert f'data-proxy="{second.id}"' in live and "waiting" in live and "15553000002" in live
    assert f'data-proxy="{third.id}"' in ended and "cancelled" in ended
    assert f'data-proxy="{third.id}"' not in live
    assert re.search(r'data-proxy-count="connected">1<', html)
    assert re.search(r'data-proxy-count="waiting">1<', html)
    assert 'http-equiv="refresh"' in html
    # the page is in the navigation and needs a login like every other page
    assert 'href="/proxies"' in client.get("/campaigns").get_data(as_text=True)
    client.post("/logout", data={"csrf_token": re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)})
    assert client.get("/proxies").status_code == 302


def test_r4_dashboard_remote_queue_empty(client):
    html = client.get("/proxies").get_data(as_text=True)
    assert "No caller is waiting" in html and "None yet." in html


# --- idempotent set-up ---------------------------------------------------------------------


def _campaign(db, records: int = 4) -> int:
    with db.session() as s:
        c = Campaign(name="demo", window_start="08:00", window_end="21:00")
        s.add(c)
        s.flush()
        p = Pool(campaign_id=c.id, name="main")
        s.add(p)
        s.flush()
        for i in range(records):
            s.add(CallRecord(campaign_id=c.id, pool_id=p.id, number=f"+1202555{i:04d}", status=RecordStatus.READY))
        return c.id


def test_demo_setup_is_idempotent_and_rearms_a_dry_campaign(db):
    cid = _campaign(db)
    assert activate_campaign(db, "demo") == cid
    with db.session() as s:
        c = s.get(Campaign, cid)
        assert c.status == CampaignStatus.ACTIVE and (c.window_start, c.window_end) == ("00:00", "23:59")

    first = ensure_workers(db, cid, ("1001", "1002"))
    again = ensure_workers(db, cid, ("1001", "1002"))  # a re-run: same workers, fresh tokens
    assert set(first) == set(again) == {"1001", "1002"} and first["1001"] != again["1001"]
    with db.session() as s:
        assert s.query(Worker).count() == 2
    assert workers.authenticate(db, again["1001"]).name == "demo-1001"

    assert rearm_records(db, cid) == 0  # records to dial: nothing to do
    later = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) + dt.timedelta(hours=2)
    with db.session() as s:
        recs = s.query(CallRecord).order_by(CallRecord.id).all()
        recs[0].status, recs[0].attempts = RecordStatus.DONE, 1
        recs[1].status = RecordStatus.EXHAUSTED
        recs[2].status = RecordStatus.DNC
        recs[3].next_attempt_at = later  # a retry scheduled for later
    assert rearm_records(db, cid) == 3  # dry: done, exhausted and the later retry come back
    with db.session() as s:
        statuses = [r.status for r in s.query(CallRecord).order_by(CallRecord.id)]
        assert statuses == [RecordStatus.READY, RecordStatus.READY, RecordStatus.DNC, RecordStatus.READY]
        assert all(r.next_attempt_at is None for r in s.query(CallRecord))
    with db.session() as s:
        s.query(CallRecord).filter(CallRecord.id == recs[0].id).update({"status": RecordStatus.LEASED})
    assert release_stale_leases(db, cid) == 1


def test_demo_options_round_trip_to_the_patched_interpreter():
    o = DemoOptions(database_file=Path("/tmp/x.db"), port=0, auto_ports=True, duration=12.5, ivr=False, verbose=1)
    back = DemoOptions.from_argv(o.to_argv())
    assert (back.database_file, back.port, back.auto_ports, back.duration, back.ivr, back.verbose) == (
        Path("/tmp/x.db"), 0, True, 12.5, False, 1)
    assert DemoOptions(database_file=Path("x")).listen_port(5000) == 5000
    assert back.listen_port(5000) == 0


# --- the whole demo, end to end ------------------------------------------------------------


def _port_closed(url: str) -> bool:
    host, port = url.split("//")[1].rstrip("/").split(":")
    try:
        socket.create_connection((host, int(port)), timeout=0.5).close()
    except OSError:
        return True
    return False


@pytest.mark.slow
def test_demo_runs_the_whole_system_stops_cleanly_and_runs_again(tmp_path):
    db_file = tmp_path / "demo" / "dialer.db"
    env = {**os.environ, "DIALER_DATA_DIR": str(tmp_path), "DIALER_DEMO_PASSWORD": PASSWORD}
    env.pop("DIALER_DATABASE_URL", None)
    proc = subprocess.Popen([str(DIALER), "demo", "--database-file", str(db_file), "--ports", "auto",
                             "--duration", "20"], cwd=tmp_path, env=env, stdout=subprocess.PIPE,
                            stderr=subprocess.STDOUT, text=True)
    lines: list[str] = []
    banner = threading.Event()

    def read() -> None:
        for line in proc.stdout:
            lines.append(line)
            if "Agent console" in line:
                banner.set()

    reader = threading.Thread(target=read, daemon=True)
    reader.start()
    try:
        assert banner.wait(60), "no banner:\n" + "".join(lines)
        out = "".join(lines)
        m = re.search(r"Dashboard\s+(http://127\.0\.0\.1:\d+)/\s+login: demo / (\S+)", out)
        assert m, out
        url, password = m.group(1), m.group(2)
        assert password == PASSWORD
        console = re.search(r"Agent console\s+(http://127\.0\.0\.1:\d+)/", out).group(1)
        # the dashboard answers with its login page, and the printed login works
        s = requests.Session()
        page = s.get(url + "/", timeout=5)
        assert page.status_code == 200 and 'id="password"' in page.text
        token = re.search(r'name="csrf_token" value="([^"]+)"', page.text).group(1)
        r = s.post(url + "/login", data={"username": "demo", "password": password, "csrf_token": token}, timeout=10)
        assert r.status_code == 200 and "Campaigns" in r.text and "demo" in r.text
        assert s.get(url + "/agents", timeout=5).text.count("data-agent=") == 5
        assert s.get(url + "/proxies", timeout=5).status_code == 200
        assert requests.get(console + "/", timeout=5).status_code in (200, 302)
        proc.wait(timeout=90)
    finally:
        if proc.poll() is None:
            proc.kill()
            proc.wait(timeout=10)
        reader.join(timeout=5)
    out = "".join(lines)
    assert proc.returncode == 0, out
    assert "Traceback" not in out, out
    # the sample campaign's summary, progress lines, and a clean stop
    assert re.search(r"loaded of 315 rows", out) and "DNC" in out, out
    assert re.search(r"\] placed \d+, attempts \d+, answered \d+, abandoned \d+ \(rate ", out), out
    assert "IVR proxies" in out
    assert "demo stopped cleanly" in out, out
    # calls were placed and their attempts recorded in the database
    with sqlite3.connect(db_file) as con:
        attempts = con.execute("SELECT COUNT(*) FROM call_attempt").fetchone()[0]
        proxies = con.execute("SELECT COUNT(*) FROM acd_entry").fetchone()[0]
        held = con.execute("SELECT COUNT(*) FROM call_record WHERE status = 'leased' OR held_by_worker_id IS NOT NULL"
                           ).fetchone()[0]
    assert attempts >= 3, out
    assert proxies >= 1, out
    assert held == 0  # the workers handed back what they held at the stop (queued records stay in their queues)
    placed = int(re.search(r"demo summary: calls placed (\d+), attempts recorded (\d+)", out).group(1))
    assert placed >= attempts
    # every listener is gone
    assert _port_closed(url) and _port_closed(console)
    # ephemeral-port runs leave no contingency files behind once everything was uploaded
    assert not list((db_file.parent / "worker").glob("auto-*"))

    # set-up is idempotent: a second run reuses campaign, workers and user, and still starts and stops cleanly
    run = subprocess.run([str(DIALER), "demo", "--database-file", str(db_file), "--ports", "auto", "--no-ivr",
                          "--duration", "3"], cwd=tmp_path, env=env, capture_output=True, text=True, timeout=120)
    again = run.stdout + run.stderr
    assert run.returncode == 0 and "demo stopped cleanly" in again and "Traceback" not in again, again
    assert "campaign 'demo' exists" in again and "0 loaded of 315 rows" in again
    assert "IVR sim" not in again
    with sqlite3.connect(db_file) as con:
        assert con.execute("SELECT COUNT(*) FROM worker").fetchone()[0] == 5
        assert con.execute("SELECT COUNT(*) FROM app_user WHERE username = 'demo'").fetchone()[0] == 1


def test_demo_under_clirunner_refuses_instead_of_replacing_the_test_process(tmp_path):
    from click.testing import CliRunner

    from controller.cli import main as cli

    result = CliRunner().invoke(cli, ["demo", "--database-file", str(tmp_path / "d.db"), "--ports", "auto",
                                      "--duration", "1"])
    assert result.exit_code == 1 and "--load-only" in result.output

"""Campaign controls reaching the workers (SPEC P14) and campaign dialing settings (D2, X1)."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from controller import create_app
from controller.cli import main as cli
from controller.errors import Conflict, InvalidInput
from controller.services import campaigns as C
from controller.services import events
from controller.services import queues as Q
from esl_dialer.messages import CampaignStatus as CS
from esl_dialer.messages import DialMode
from esl_dialer.worker import WorkerSettings, campaign_changes

from distribution_helpers import ALL_DAY, add_numbers, add_worker, ident, make_campaign, reset_caches


@pytest.fixture(autouse=True)
def _fresh_caches():
    reset_caches()
    yield
    reset_caches()


def test_p14_transition_table():
    assert C.next_status(CS.DRAFT, "start") is CS.ACTIVE
    assert C.next_status(CS.ACTIVE, "pause") is CS.PAUSED
    assert C.next_status(CS.PAUSED, "resume") is CS.ACTIVE
    for s in (CS.DRAFT, CS.ACTIVE, CS.PAUSED):
        assert C.next_status(s, "finish") is CS.FINISHED
    for current, action in [(CS.ACTIVE, "start"), (CS.DRAFT, "pause"), (CS.ACTIVE, "resume"),
                            (CS.FINISHED, "resume"), (CS.FINISHED, "finish"), (CS.PAUSED, "pause")]:
        with pytest.raises(Conflict, match=f"cannot {action} a campaign that is {current.value}"):
            C.next_status(current, action)
    with pytest.raises(InvalidInput, match="unknown campaign action"):
        C.next_status(CS.ACTIVE, "explode")


def _campaign_with_workers(db):
    cid = make_campaign(db, active=False, window=ALL_DAY)
    pool = Q.create_pool(db, cid, "A")
    add_numbers(db, pool.id, 30)
    return cid, add_worker(db, cid, "w1", "1001"), add_worker(db, cid, "w2", "1002")


def test_p14_status_changes_reach_workers_and_leasing(db):
    from controller.services import distribution as D

    cid, w1, w2 = _campaign_with_workers(db)
    i1 = ident(db, w1)
    assert D.lease(db, i1, 5).records == []  # draft: nothing
    change = C.change_status(db, "c1", "start")
    assert (change.old, change.new, change.workers_notified) == (CS.DRAFT, CS.ACTIVE, 2)
    assert len(D.lease(db, i1, 5).records) == 5
    C.change_status(db, "c1", "pause")
    for w in (w1, w2):
        evs = events.fetch(db, w.id, 0)
        assert [(e.kind, e.data["status"]) for e in evs] == [("campaign", "active"), ("campaign", "paused")]
    assert D.lease(db, i1, 5).records == []  # paused: at once, no cache delay in this process
    C.change_status(db, "c1", "resume")
    assert len(D.lease(db, i1, 5).records) == 5
    C.change_status(db, "c1", "finish")
    assert D.lease(db, i1, 5).records == []
    with pytest.raises(Conflict):
        C.change_status(db, "c1", "resume")
    assert C.get_campaign(db, "c1").status is CS.FINISHED


def test_d2_x1_settings_update_validated_and_published(db):
    cid, w1, _ = _campaign_with_workers(db)
    s = C.update_settings(db, "c1", dial_mode="power", dial_ratio="2.5", abandon_target="2%",
                          caller_id_number="212 555 0100", caller_id_name="Acme",
                          abandon_message="/sounds/sorry.wav", window="09:00-20:00")
    assert (s["dial_mode"], s["dial_ratio"], s["abandon_target"]) == ("power", 2.5, 0.02)
    assert (s["caller_id_number"], s["caller_id_name"], s["abandon_message"]) == ("+12125550100", "Acme",
                                                                                   "/sounds/sorry.wav")
    assert (s["window_start"], s["window_end"]) == ("09:00", "20:00")
    ev = events.fetch(db, w1.id, 0)[-1]
    assert ev.kind == "campaign" and ev.data["dial_mode"] == "power" and ev.data["status"] == "draft"
    for bad, field in [({"dial_ratio": "x"}, "dial_ratio"), ({"dial_ratio": 0}, "dial_ratio"),
                       ({"abandon_target": "200%"}, "abandon_target"), ({"dial_mode": "turbo"}, "dial_mode"),
                       ({"window": "25:00-26:00"}, "window"), ({"caller_id_number": "12"}, "caller_id_number"),
                       ({}, None)]:
        with pytest.raises(InvalidInput) as err:
            C.update_settings(db, "c1", **bad)
        assert err.value.field == field
    assert C.worker_settings(db, cid)["dial_ratio"] == 2.5  # nothing changed by the refused ones


def test_p14_heartbeat_and_campaign_endpoint_carry_settings(db, db_url):
    cid, w1, _ = _campaign_with_workers(db)
    C.update_settings(db, "c1", dial_mode="power", dial_ratio=3, abandon_message="/s/a.wav")
    C.change_status(db, "c1", "start")
    app = create_app({"DATABASE_URL": db_url, "TESTING": True})
    try:
        client = app.test_client()
        h = {"Authorization": f"Bearer {w1.token}"}
        r = client.post("/api/v1/worker/heartbeat", json={"agent_state": "idle"}, headers=h)
        assert r.status_code == 200
        camp = r.json["campaign"]
        assert r.json["campaign_status"] == "active" == camp["status"]
        assert (camp["dial_mode"], camp["dial_ratio"], camp["abandon_message"]) == ("power", 3.0, "/s/a.wav")
        r = client.get("/api/v1/worker/campaign", headers=h)
        assert r.status_code == 200 and r.json == camp
        assert client.get("/api/v1/worker/campaign", headers={"Authorization": "Bearer nope"}).status_code == 401
        C.change_status(db, "c1", "pause")
        assert client.get("/api/v1/worker/campaign", headers=h).json["status"] == "paused"
    finally:
        app.extensions["dialer_db"].dispose()


def test_p14_cli_start_pause_resume_finish_set(db, db_url):
    _campaign_with_workers(db)
    runner = CliRunner()

    def run(*args):
        return runner.invoke(cli, ["campaign", *args, "--database", db_url])

    r = run("start", "c1")
    assert r.exit_code == 0, r.output
    assert "draft -> active (2 worker(s) notified)" in r.output
    assert "active -> paused" in run("pause", "c1").output
    r = run("pause", "c1")
    assert r.exit_code != 0 and "cannot pause a campaign that is paused" in r.output
    assert "paused -> active" in run("resume", "c1").output
    r = run("set", "c1", "--dial-mode", "power", "--ratio", "1.5", "--abandon-target", "2%", "--caller-id",
            "+12125550199")
    assert r.exit_code == 0, r.output
    assert "power, ratio 1.5, abandon target 2.0%" in r.output and "+12125550199" in r.output
    r = run("set", "c1", "--ratio", "abc")
    assert r.exit_code != 0
    assert "active -> finished" in run("finish", "c1").output
    r = run("start", "nosuch")
    assert r.exit_code != 0 and "no campaign" in r.output


def test_d2_x1_worker_takes_campaign_settings_unless_overridden():
    camp = {"status": "active", "dial_mode": "power", "dial_ratio": 2.5, "abandon_target": 0.02,
            "caller_id_number": "+12125550100", "caller_id_name": "Acme", "abandon_message": "/s/sorry.wav"}
    base = WorkerSettings(agent="1001", controller="http://x", token="t", overrides=frozenset())
    ch = campaign_changes(base, camp)
    assert ch == {"mode": DialMode.POWER, "ratio": 2.5, "abandon_target": 0.02, "caller_id_number": "+12125550100",
                  "caller_id_name": "Acme", "abandon_message": "/s/sorry.wav"}
    given = WorkerSettings(agent="1001", controller="http://x", token="t", mode=DialMode.PREVIEW,
                           overrides=frozenset({"mode", "abandon_message"}))
    ch = campaign_changes(given, camp)
    assert "mode" not in ch and "abandon_message" not in ch and ch["ratio"] == 2.5
    # unset abandon message keeps the worker's file; bad values are ignored, not applied
    ch = campaign_changes(base, {**camp, "abandon_message": None, "dial_mode": "turbo", "dial_ratio": -1})
    assert "abandon_message" not in ch and "mode" not in ch and "ratio" not in ch


def test_d2_worker_cli_given_options_are_overrides():
    from esl_dialer.commands.worker import build_settings

    settings, _, _ = build_settings({"controller": "http://c", "agents": "1001", "token": "T", "mode": "power",
                                     "abandon_message": "/a.wav"}, None)
    assert settings[0].overrides == frozenset({"mode", "abandon_message"})
    settings, _, _ = build_settings({"controller": "http://c", "agents": "1001", "token": "T"}, None)
    assert settings[0].overrides == frozenset()


def test_p14_dashboard_buttons_need_login_and_csrf(db, db_url, monkeypatch):
    import re

    from controller import config as config_mod
    from controller.services import users

    monkeypatch.setattr(users, "PASSWORD_METHOD", "pbkdf2:sha256:1000")
    cid, w1, _ = _campaign_with_workers(db)
    users.add_user(db, "sup", "correct horse battery")
    app = create_app(config_mod.TestConfig(db_url))
    try:
        client = app.test_client()
        url = f"/campaigns/{cid}/control"
        r = client.post(url, data={"action": "start"})
        assert r.status_code in (302, 401, 403) and C.get_campaign(db, cid).status is CS.DRAFT  # anonymous
        html = client.get("/login").get_data(as_text=True)
        token = re.search(r'name="csrf_token" value="([^"]+)"', html).group(1)
        assert client.post("/login", data={"username": "sup", "password": "correct horse battery",
                                           "csrf_token": token}).status_code == 302
        page = client.get("/campaigns").get_data(as_text=True)
        assert 'data-campaign-action="start"' in page and 'data-campaign-action="pause"' not in page
        token = re.search(r'name="csrf_token" value="([^"]+)"', page).group(1)
        assert client.post(url, data={"action": "start", "csrf_token": "forged"}).status_code in (400, 403)
        assert C.get_campaign(db, cid).status is CS.DRAFT
        r = client.post(url, data={"action": "start", "csrf_token": token}, follow_redirects=True)
        assert r.status_code == 200 and "is active (2 worker(s) notified)" in r.get_data(as_text=True)
        assert C.get_campaign(db, cid).status is CS.ACTIVE
        assert [e.data["status"] for e in events.fetch(db, w1.id, 0)] == ["active"]
        page = client.post(url, data={"action": "resume", "csrf_token": token}, follow_redirects=True)
        assert "cannot resume a campaign that is active" in page.get_data(as_text=True)
        assert client.post(url, data={"action": "bogus", "csrf_token": token}).status_code == 400
        assert client.post("/campaigns/9999/control", data={"action": "pause", "csrf_token": token}).status_code == 404
        client.post(url, data={"action": "pause", "csrf_token": token})
        assert C.get_campaign(db, cid).status is CS.PAUSED
        assert 'data-campaign-action="resume"' in client.get("/campaigns").get_data(as_text=True)
    finally:
        app.extensions["dialer_db"].dispose()

"""Worker HTTP API with app.test_client() on SQLite and PostgreSQL (SPEC D1, D7, D8, D10, P6, P10 replay)."""
from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from controller import create_app
from controller.models import Agent, CallAttempt, CallRecord, WorkerEvent
from controller.services import distribution as D
from controller.services import queues as Q
from controller.services import workers as W
from esl_dialer.messages import AgentState, RecordStatus as S

from distribution_helpers import ALL_DAY, add_numbers, add_worker, make_campaign, race_claims, reset_caches, statuses


@pytest.fixture(autouse=True)
def _fresh_caches():
    reset_caches()
    yield
    reset_caches()


@pytest.fixture
def env(db, db_url):
    cid = make_campaign(db, window=ALL_DAY)
    pool = Q.create_pool(db, cid, "A")
    add_numbers(db, pool.id, 50)
    w1 = add_worker(db, cid, "w1", "1001")
    w2 = add_worker(db, cid, "w2", "1002")
    app = create_app({"DATABASE_URL": db_url, "TESTING": True, "MAX_CONTENT_LENGTH": 64 * 1024,
                      "SSE_MAX_SECONDS": 0.5, "SSE_POLL_SECONDS": 0.05})
    yield app.test_client(), db, cid, w1, w2
    app.extensions["dialer_db"].dispose()


def auth(w):
    return {"Authorization": f"Bearer {w.token}"}


def _counts(db):
    with db.session() as s:
        return (s.scalar(sa.select(sa.func.count()).select_from(CallAttempt)),
                tuple(s.scalars(sa.select(CallRecord.status).order_by(CallRecord.id))))


def test_d1_lease_results_release_over_http(env):
    client, db, cid, w1, w2 = env
    r = client.post("/api/v1/worker/lease", json={"max": 5}, headers=auth(w1))
    assert r.status_code == 200, r.json
    body = r.json
    assert body["lease_seconds"] == 900 and len(body["records"]) == 5
    rec = body["records"][0]
    assert set(rec) == {"id", "number", "name", "city", "region", "country", "timezone", "extra", "attempts",
                        "difficulty", "priority", "previous_attempts", "window_start", "window_end", "lease_until"}
    assert rec["number"].startswith("+1") and rec["lease_until"].endswith("Z")
    ids = [x["id"] for x in body["records"]]
    other = client.post("/api/v1/worker/lease", json={"max": 50}, headers=auth(w2)).json["records"]
    assert not set(ids) & {x["id"] for x in other}
    results = [{"client_id": f"cid-{i}", "record_id": rid, "result": "no_answer", "call_uuid": f"u{i}",
                "agent": "1001", "started_at": "2026-11-23T12:00:00Z", "answered_at": None,
                "connected_at": None, "ended_at": "2026-11-23T12:00:30Z", "hangup_cause": "NO_ANSWER",
                "disposition": None, "abandoned": False} for i, rid in enumerate(ids[:3])]
    r = client.post("/api/v1/worker/results", json={"results": results}, headers=auth(w1))
    assert r.status_code == 200 and r.json == {"accepted": ["cid-0", "cid-1", "cid-2"], "duplicates": []}
    # P10: a replay after a lost reply is never counted twice
    r = client.post("/api/v1/worker/results", json={"results": results}, headers=auth(w1))
    assert r.json == {"accepted": [], "duplicates": ["cid-0", "cid-1", "cid-2"]}
    assert _counts(db)[0] == 3
    r = client.post("/api/v1/worker/release", json={"record_ids": ids[3:]}, headers=auth(w1))
    assert r.json == {"released": 2}
    assert set(statuses(db, ids[3:]).values()) == {S.READY}
    r = client.post("/api/v1/worker/dial-check", json={"record_ids": [other[0]["id"]]}, headers=auth(w2))
    assert r.json == {"ok": [other[0]["id"]], "refused": {}}


def test_hostile_input_gets_clear_errors_and_changes_nothing(env):
    client, db, cid, w1, w2 = env
    leased = client.post("/api/v1/worker/lease", json={"max": 2}, headers=auth(w1)).json["records"]
    # a result from another worker of the campaign is a late result (D1/P10: stored, lease untouched);
    # one from a worker of another campaign is refused
    outsider = add_worker(db, make_campaign(db, "c2", window=ALL_DAY), "w3", "1003")
    before = _counts(db)
    cases = [
        ("/api/v1/worker/lease", {"max": 2}, {"Authorization": "Bearer nope"}, 401, None),
        ("/api/v1/worker/lease", {"max": 2}, {}, 401, None),
        ("/api/v1/worker/results", {"results": [{"client_id": "x", "record_id": leased[0]["id"],
                                                 "result": "busy"}]}, auth(outsider), 403, "results[0].record_id"),
        ("/api/v1/worker/release", {"record_ids": [leased[0]["id"]]}, auth(w2), 403, "record_ids[0]"),
        ("/api/v1/worker/lease", {"max": "20"}, auth(w1), 400, "max"),
        ("/api/v1/worker/lease", {"max": -1}, auth(w1), 400, "max"),
        ("/api/v1/worker/results", {"results": [{"client_id": "x", "record_id": "1", "result": "busy"}]},
         auth(w1), 400, "results[0].record_id"),
        ("/api/v1/worker/results", {"results": [{"client_id": "x", "record_id": leased[0]["id"],
                                                 "result": "great"}]}, auth(w1), 400, "results[0].result"),
        ("/api/v1/worker/results", {"results": [{"client_id": "x", "record_id": leased[0]["id"],
                                                 "result": "busy", "started_at": "yesterday"}]},
         auth(w1), 400, "results[0].started_at"),
        ("/api/v1/worker/results", {"results": "all"}, auth(w1), 400, "results"),
        ("/api/v1/worker/heartbeat", {"agent_state": "asleep"}, auth(w1), 400, "agent_state"),
        ("/api/v1/worker/dial-check", {"record_ids": [True]}, auth(w1), 400, "record_ids[0]"),
        ("/api/v1/worker/results", {"results": [{"client_id": "x", "record_id": 99999, "result": "busy"}]},
         auth(w1), 404, "results[0].record_id"),
    ]
    for url, body, headers, status, field in cases:
        r = client.post(url, json=body, headers=headers)
        assert r.status_code == status, (url, body, r.json)
        assert "error" in r.json and "message" in r.json
        if field:
            assert r.json.get("field") == field, (url, r.json)
    r = client.post("/api/v1/worker/results", data="{not json", headers={**auth(w1), "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json["field"] == "body"
    r = client.post("/api/v1/worker/results", data="[1, 2]", headers={**auth(w1), "Content-Type": "application/json"})
    assert r.status_code == 400 and r.json["field"] == "body"
    big = {"results": [{"client_id": "x" * 60, "record_id": 1, "result": "busy"}] * 2000}
    r = client.post("/api/v1/worker/results", data=json.dumps(big), headers={**auth(w1), "Content-Type": "application/json"})
    assert r.status_code == 413 and r.json["error"]
    assert _counts(db) == before


def test_d8_heartbeat_reports_state_and_missed_heartbeats_mean_offline(env):
    client, db, cid, w1, w2 = env
    r = client.post("/api/v1/worker/heartbeat", json={"agent_state": "idle", "active_calls": 0}, headers=auth(w1))
    assert r.status_code == 200
    assert r.json["ok"] is True and r.json["campaign_status"] == "active" and r.json["server_time"].endswith("Z")
    client.post("/api/v1/worker/heartbeat", json={"agent_state": "talking"}, headers=auth(w2))
    agents = {a["name"]: a for a in client.get("/api/v1/agents", headers=auth(w1)).json["agents"]}
    assert agents["1001"]["state"] == "idle" and agents["1002"]["state"] == "talking"
    assert agents["1001"]["worker"] == "w1" and "state_since" in agents["1001"]
    idle = client.get("/api/v1/agents?state=idle", headers=auth(w1)).json["agents"]
    assert [a["name"] for a in idle] == ["1001"]
    # no heartbeat for longer than HEARTBEAT_TIMEOUT_S -> offline
    later = W.list_agents(db, timeout_s=15, now=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
                          + dt.timedelta(seconds=16))
    assert {a.name: a.state for a in later} == {"1001": AgentState.OFFLINE, "1002": AgentState.OFFLINE}


def test_d7_claim_takes_the_longest_idle_agent_and_signals_its_worker(env):
    client, db, cid, w1, w2 = env
    w3 = add_worker(db, cid, "w3", "1003", skill=2)
    for w in (w1, w2, w3):
        client.post("/api/v1/worker/heartbeat", json={"agent_state": "idle"}, headers=auth(w))
    with db.session() as s:  # 1002 has been idle longest, 1003 is the only skilled one
        s.execute(sa.update(Agent).where(Agent.name == "1002").values(
            state_since=dt.datetime.now(dt.timezone.utc).replace(tzinfo=None) - dt.timedelta(minutes=5)))
    rec = client.post("/api/v1/worker/lease", json={"max": 1}, headers=auth(w1)).json["records"][0]
    r = client.post("/api/v1/agents/claim", json={"min_skill": 0, "call_uuid": "abc", "record_id": rec["id"],
                                                  "exclude": ["1001"]}, headers=auth(w1))
    assert r.status_code == 200, r.json
    assert r.json == {"agent": {"name": "1002", "extension": "1002", "worker": "w2", "skill_level": 0}}
    r = client.post("/api/v1/agents/claim", json={"min_skill": 1, "exclude": []}, headers=auth(w1))
    assert r.json["agent"]["name"] == "1003"
    r = client.post("/api/v1/agents/claim", json={"min_skill": 1}, headers=auth(w1))
    assert r.status_code == 409 and r.json["error"] == "no_idle_agent"
    # the overflow event reached w2's stream, with the record in lease shape
    r = client.get("/api/v1/worker/events", headers={**auth(w2), "Last-Event-ID": "0"})
    assert r.status_code == 200 and r.mimetype == "text/event-stream"
    text = r.get_data(as_text=True)
    assert "event: overflow" in text
    data = json.loads(text.split("event: overflow\ndata: ")[1].split("\n")[0])
    assert data["call_uuid"] == "abc" and data["record"]["id"] == rec["id"]
    assert data["record"]["number"] == rec["number"]


def test_d7_two_concurrent_claims_never_get_the_same_agent(env):
    client, db, cid, w1, w2 = env
    extra = [add_worker(db, cid, f"x{i}", f"20{i:02d}") for i in range(6)]
    for w in extra:
        W.heartbeat(db, W.authenticate(db, w.token), "idle", 0)
    got, errors = race_claims(db, 8)
    assert sorted(got) == sorted(f"20{i:02d}" for i in range(6))
    assert len(errors) == 2


def test_d10_web_lead_is_handed_out_at_the_next_lease(env):
    client, db, cid, w1, w2 = env
    key = D.set_campaign_api_key(db, cid)
    client.post("/api/v1/worker/lease", json={"max": 5}, headers=auth(w1))  # the queue is filled
    r = client.post("/api/v1/leads", json={"campaign": "c1", "number": "(212) 555-7777", "name": "Web"},
                    headers={"X-API-Key": key})
    assert r.status_code == 201, r.json
    lead = r.json["id"]
    recs = client.post("/api/v1/worker/lease", json={"max": 3}, headers=auth(w1)).json["records"]
    assert recs[0]["id"] == lead and recs[0]["number"] == "+12125557777" and recs[0]["name"] == "Web"
    assert client.post("/api/v1/leads", json={"campaign": "c1", "number": "2125557777"},
                       headers={"X-API-Key": "wrong"}).status_code == 401
    r = client.post("/api/v1/leads", json={"campaign": "c1", "number": "12"}, headers={"X-API-Key": key})
    assert r.status_code == 400 and r.json["field"] == "number"


def test_events_stream_pings_and_resumes_after_last_event_id(env):
    client, db, cid, w1, w2 = env
    wid = W.authenticate(db, w1.token).id
    from controller.services import events

    events.publish(db, wid, "campaign", {"status": "paused"})
    events.publish(db, wid, "campaign", {"status": "active"})
    with db.session() as s:
        first, second = s.scalars(sa.select(WorkerEvent.id).order_by(WorkerEvent.id)).all()
    text = client.get("/api/v1/worker/events", headers={**auth(w1), "Last-Event-ID": str(first)}).get_data(as_text=True)
    assert f"id: {second}\nevent: campaign\ndata: {{\"status\":\"active\"}}" in text
    assert "paused" not in text
    assert client.get("/api/v1/worker/events").status_code == 401


def test_the_worker_api_opens_no_cookie_session(env):
    """Bearer tokens only: the API does not read the dashboard's session cookie
    (no cookie parse, no signer per request) and never sets one; the
    dashboard keeps its session."""
    from flask import request
    from flask.sessions import NullSession, SecureCookieSession

    client, _db, _cid, w1, _w2 = env
    app = client.application
    for path, kind in (("/api/v1/worker/lease", NullSession), ("/login", SecureCookieSession)):
        with app.test_request_context(path, headers={"Cookie": "session=x"}):
            assert type(app.session_interface.open_session(app, request)) is kind
    client.set_cookie("session", "not-a-valid-signed-cookie")
    r = client.post("/api/v1/worker/lease", json={"max": 1}, headers=auth(w1))
    assert r.status_code == 200 and "Set-Cookie" not in r.headers
    page = client.get("/login")
    assert page.status_code == 200 and "session=" in page.headers.get("Set-Cookie", "")

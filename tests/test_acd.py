"""The remote center's ACD queue of proxies (SPEC R4-R6, R9) and its HTTP API."""
from __future__ import annotations

import datetime as dt
import json

import pytest
import sqlalchemy as sa

from controller import create_app
from controller.config import TestConfig as _TestConfig
from controller.errors import Conflict, Forbidden, NotFound, Unauthorized
from controller.models import AcdEntry, AcdOperator, AcdPeer
from controller.services import acd


@pytest.fixture
def center(db):
    """A remote center: queue 'support', two operators (busy), one local peer, one switch key."""
    acd.ensure_queue(db, "support", bridge_position=1, bridge_setup_s=5.0, default_service_s=60.0)
    acd.add_operator(db, "alice", "user/2001", ["support"], state="busy")
    acd.add_operator(db, "bob", "user/2002", ["support"], state="busy")
    key = acd.create_peer(db, "local")
    switch_key = acd.create_peer(db, "switch", role="switch")
    peer = acd.authenticate_peer(db, key)
    return peer, key, switch_key


def test_r4_proxy_is_placed_in_the_queue_for_the_skill(db, center):
    peer, _, _ = center
    snap = acd.create_proxy(db, peer, "support", caller_number="+15551230001", data={"menu": "1"})
    assert snap.state == "waiting" and snap.position == 1 and snap.skill == "support"
    assert not snap.has_leg
    with pytest.raises(NotFound):
        acd.create_proxy(db, peer, "sales")


def test_r5_positions_advance_as_earlier_entries_are_served(db, center):
    peer, _, _ = center
    a, b, c = (acd.create_proxy(db, peer, "support", caller_number=str(i)) for i in range(3))
    assert [acd.get_proxy(db, x.id, peer).position for x in (a, b, c)] == [1, 2, 3]
    # expected wait: position * mean service (60 s default) / staffed operators (2)
    assert acd.get_proxy(db, c.id, peer).expected_wait_s == pytest.approx(90.0)
    acd.set_operator_state(db, "alice", "available")
    first = acd.get_proxy(db, a.id, peer)
    assert first.state == "offered" and first.position == 0 and first.bridge_now
    assert first.operator == {"name": "alice", "extension": "user/2001"}
    assert [acd.get_proxy(db, x.id, peer).position for x in (b, c)] == [1, 2]
    acd.cancel_proxy(db, b.id, peer)
    assert acd.get_proxy(db, c.id, peer).position == 1


def test_r5_expected_wait_from_recent_service_times(db, center):
    peer, key, _ = center
    acd.set_operator_state(db, "bob", "offline")
    proxy = acd.create_proxy(db, peer, "support")
    token, _, _ = acd.issue_token(db, proxy.id, peer)
    acd.set_operator_state(db, "alice", "available")
    acd.accept_leg(db, token, "leg-1")
    acd.leg_connected(db, proxy.id)
    with db.session() as s:  # a 30-second service
        entry = s.scalar(sa.select(AcdEntry).where(AcdEntry.public_id == proxy.id))
        entry.connected_at = entry.connected_at - dt.timedelta(seconds=30)
    acd.leg_ended(db, proxy.id)
    assert acd.get_proxy(db, proxy.id, peer).state == "done"
    acd.set_operator_state(db, "alice", "busy")
    nxt = acd.create_proxy(db, peer, "support")
    nxt2 = acd.create_proxy(db, peer, "support")
    assert acd.get_proxy(db, nxt2.id, peer).expected_wait_s == pytest.approx(60.0, abs=1.0)


def test_r6_bridge_hint_next_in_line_or_short_wait(db, center):
    peer, _, _ = center
    first = acd.create_proxy(db, peer, "support")
    second = acd.create_proxy(db, peer, "support")
    assert acd.get_proxy(db, first.id, peer).bridge_now
    assert not acd.get_proxy(db, second.id, peer).bridge_now
    acd.ensure_queue(db, "support", bridge_setup_s=120.0)  # wait 60 s < set-up 120 s
    assert acd.get_proxy(db, second.id, peer).bridge_now


def test_r6_leg_with_token_takes_the_proxy_place_and_reaches_the_operator(db, center):
    peer, _, _ = center
    proxy = acd.create_proxy(db, peer, "support")
    behind = acd.create_proxy(db, peer, "support")
    token, _, _ = acd.issue_token(db, proxy.id, peer)
    snap = acd.accept_leg(db, token, "leg-uuid-1")
    assert snap.has_leg and snap.state == "waiting" and snap.position == 1
    assert acd.get_proxy(db, behind.id, peer).position == 2  # the leg kept the proxy's place
    acd.set_operator_state(db, "bob", "available")
    offered = acd.get_proxy(db, proxy.id, peer)
    assert offered.state == "offered" and offered.operator["name"] == "bob"
    assert acd.leg_connected(db, proxy.id).state == "connected"
    with db.session() as s:
        assert s.scalar(sa.select(AcdOperator.state).where(AcdOperator.name == "bob")) == "busy"
    acd.leg_ended(db, proxy.id)
    with db.session() as s:
        assert s.scalar(sa.select(AcdOperator.state).where(AcdOperator.name == "bob")) == "reserved"
    # bob went straight on to the next proxy in line
    assert acd.get_proxy(db, behind.id, peer).operator["name"] == "bob"


def test_r6_tokens_are_single_use_expiring_and_unguessable(db, center):
    peer, _, _ = center
    proxy = acd.create_proxy(db, peer, "support")
    token, _, _ = acd.issue_token(db, proxy.id, peer)
    with pytest.raises(Forbidden):
        acd.accept_leg(db, token[:-2] + "xx", "leg-wrong")
    with pytest.raises(Forbidden):
        acd.accept_leg(db, "short", "leg-wrong")
    acd.accept_leg(db, token, "leg-ok")
    with pytest.raises(Forbidden):
        acd.accept_leg(db, token, "leg-replay")
    with pytest.raises(Conflict):
        acd.issue_token(db, proxy.id, peer)  # the leg is there already
    other = acd.create_proxy(db, peer, "support")
    old, _, _ = acd.issue_token(db, other.id, peer)
    new, _, _ = acd.issue_token(db, other.id, peer)
    with pytest.raises(Forbidden):
        acd.accept_leg(db, old, "leg-old")  # replaced by the retry's token
    with db.session() as s:
        entry = s.scalar(sa.select(AcdEntry).where(AcdEntry.public_id == other.id))
        entry.token_expires_at = entry.token_expires_at - dt.timedelta(hours=1)
    with pytest.raises(Forbidden):
        acd.accept_leg(db, new, "leg-late")


def test_r9_cancel_frees_a_reserved_operator(db, center):
    peer, _, _ = center
    first = acd.create_proxy(db, peer, "support")
    second = acd.create_proxy(db, peer, "support")
    acd.set_operator_state(db, "alice", "available")
    assert acd.get_proxy(db, first.id, peer).state == "offered"
    token, _, _ = acd.issue_token(db, first.id, peer)
    assert acd.cancel_proxy(db, first.id, peer).state == "cancelled"
    with pytest.raises(Forbidden):
        acd.accept_leg(db, token, "leg-after-cancel")
    assert acd.get_proxy(db, second.id, peer).operator["name"] == "alice"


def test_offer_not_taken_up_expires(db, center):
    peer, _, _ = center
    acd.ensure_queue(db, "support", offer_timeout_s=0.0)
    proxy = acd.create_proxy(db, peer, "support")
    acd.set_operator_state(db, "alice", "available")
    snap = acd.get_proxy(db, proxy.id, peer)
    assert snap.state == "expired" and snap.end_reason == "offer_timeout"


def test_peers_see_only_their_own_proxies(db, center):
    peer, _, switch_key = center
    other = acd.authenticate_peer(db, acd.create_peer(db, "elsewhere"))
    proxy = acd.create_proxy(db, peer, "support")
    with pytest.raises(NotFound):
        acd.get_proxy(db, proxy.id, other)
    assert acd.list_proxies(db, other) == []
    assert [p.id for p in acd.list_proxies(db, acd.authenticate_peer(db, switch_key))] == [proxy.id]
    with pytest.raises(Unauthorized):
        acd.authenticate_peer(db, "nope")


# ---------------------------------------------------------------- HTTP


@pytest.fixture
def client(db_url, db, center):
    app = create_app(_TestConfig(db_url))
    app.config["IVR_SSE_MAX_S"] = 0.6
    app.config["IVR_SSE_INTERVAL_S"] = 0.05
    return app.test_client()


def auth(key):
    return {"Authorization": f"Bearer {key}"}


def test_r4_api_create_follow_cancel(client, center):
    _, key, switch_key = center
    assert client.post("/api/v1/ivr/proxies", json={"skill": "support"}).status_code == 401
    res = client.post("/api/v1/ivr/proxies", json={"skill": "support", "caller_number": "+15551230001"},
                      headers=auth(key))
    assert res.status_code == 201, res.json
    proxy_id = res.json["id"]
    assert client.get(f"/api/v1/ivr/proxies/{proxy_id}", headers=auth(key)).json["position"] == 1
    assert [p["id"] for p in client.get("/api/v1/ivr/proxies", headers=auth(key)).json["proxies"]] == [proxy_id]
    tok = client.post(f"/api/v1/ivr/proxies/{proxy_id}/token", headers=auth(key)).json
    assert tok["header"] == "X-Dialer-Token" and len(tok["token"]) >= 16
    # legs are for the switch role only
    assert client.post("/api/v1/ivr/legs", json={"token": tok["token"], "leg_uuid": "x"},
                       headers=auth(key)).status_code == 403
    res = client.delete(f"/api/v1/ivr/proxies/{proxy_id}", headers=auth(key))
    assert res.json["state"] == "cancelled"
    res = client.post("/api/v1/ivr/legs", json={"token": tok["token"], "leg_uuid": "x"}, headers=auth(switch_key))
    assert res.status_code == 403 and res.json["error"] == "forbidden"


def test_api_bad_input_is_a_clear_error(client, center):
    _, key, _ = center
    res = client.post("/api/v1/ivr/proxies", data="nope", headers=auth(key))
    assert res.status_code == 400 and res.json["error"] == "invalid_input"
    res = client.post("/api/v1/ivr/proxies", json={"skill": "support", "data": [1]}, headers=auth(key))
    assert res.status_code == 400 and res.json["field"] == "data"
    res = client.get("/api/v1/ivr/proxies/does-not-exist", headers=auth(key))
    assert res.status_code == 404


def test_r5_api_pushes_progress_as_server_sent_events(client, db, center):
    _, key, _ = center
    proxy_id = client.post("/api/v1/ivr/proxies", json={"skill": "support"}, headers=auth(key)).json["id"]
    acd.set_operator_state(db, "alice", "available")
    res = client.get("/api/v1/ivr/events", headers=auth(key))
    assert res.mimetype == "text/event-stream"
    events = [json.loads(line[6:]) for line in res.get_data(as_text=True).splitlines() if line.startswith("data: {\"")]
    assert events and events[0]["id"] == proxy_id and events[0]["state"] == "offered"

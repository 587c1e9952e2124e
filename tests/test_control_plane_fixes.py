"""Control-plane follow-ups the dialing worker needs (SPEC D1, D7, D10, P10).

Lease renewal by a live worker (no double dialing after lease expiry), late
results, lease idempotency (request_id), priority in the lease payload, and
overflow claims of agents that are dialing.
"""
from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from controller import create_app
from controller.models import Agent, CallAttempt, CallRecord
from controller.services import distribution as D
from controller.services import queues as Q
from controller.services import workers as W
from esl_dialer.messages import AgentState
from esl_dialer.messages import RecordStatus as S

from distribution_helpers import ALL_DAY, add_numbers, add_worker, ident, make_campaign, race_claims, reset_caches, statuses

T0 = dt.datetime(2026, 11, 23, 17, 0)  # 12:00 in New York (naive UTC)
LEASE = 10  # a short lease, in seconds


@pytest.fixture(autouse=True)
def _fresh_caches():
    reset_caches()
    yield
    reset_caches()


@pytest.fixture
def setup(db):
    cid = make_campaign(db, window=ALL_DAY)
    pool = Q.create_pool(db, cid, "A")
    w1 = add_worker(db, cid, "w1", "1001")
    w2 = add_worker(db, cid, "w2", "1002")
    return db, cid, pool.id, ident(db, w1), ident(db, w2)


def _at(seconds: float) -> dt.datetime:
    return T0 + dt.timedelta(seconds=seconds)


def _lease(db, wi, n, now=T0, **kw):
    return [r["id"] for r in D.lease(db, wi, n, now=now, lease_seconds=LEASE, **kw).records]


def _result(db, wi, rid, client_id, result="no_answer", now=T0):
    raw = [{"client_id": client_id, "record_id": rid, "result": result}]
    return D.record_results(db, wi, D.parse_results(raw), now=now)


def _held(db, ids):
    with db.session() as s:
        rows = s.execute(sa.select(CallRecord.id, CallRecord.held_by_worker_id, CallRecord.held_until)
                         .where(CallRecord.id.in_(list(ids))))
        return {r.id: (r.held_by_worker_id, r.held_until) for r in rows}


# --- D1 / P10: a live worker keeps its leases ---------------------------------------------


def test_d1_heartbeating_worker_keeps_its_records_past_the_lease_time(setup):
    db, cid, pool, w1, w2 = setup
    add_numbers(db, pool, 100)  # each queue takes a batch ahead
    alive = _lease(db, w1, 5)
    dead = _lease(db, w2, 5)
    assert len(alive) == len(dead) == 5
    # w1 heartbeats every 4 s for 3 lease times; w2 went silent after its lease.
    for t in range(4, 3 * LEASE + 1, 4):
        W.heartbeat(db, w1, "talking", 1, now=_at(t), lease_seconds=LEASE)
        D.expire_leases(db, _at(t + 0.5))
    st = statuses(db, alive + dead)
    assert all(st[i] == S.LEASED for i in alive), st
    assert all(st[i] == S.READY for i in dead), st
    assert all(h[0] == w1.id and h[1] > _at(3 * LEASE) for h in _held(db, alive).values())
    # nobody else can take w1's records meanwhile
    assert not set(_lease(db, w2, 200, now=_at(3 * LEASE + 1))) & set(alive)
    # once w1 stops heartbeating its records come back after the lease runs out
    assert D.expire_leases(db, _at(3 * LEASE + LEASE + 1)) >= 5
    assert all(s == S.READY for rid, s in statuses(db, alive).items())


def test_d1_heartbeat_renews_at_most_once_per_half_lease_and_only_its_own(setup):
    db, cid, pool, w1, w2 = setup
    add_numbers(db, pool, 100)
    mine, theirs = _lease(db, w1, 2), _lease(db, w2, 2)
    W.heartbeat(db, w1, "idle", 0, now=_at(2), lease_seconds=LEASE)  # 8 s left > half: untouched
    assert {h[1] for h in _held(db, mine).values()} == {_at(LEASE)}
    W.heartbeat(db, w1, "idle", 0, now=_at(6), lease_seconds=LEASE)  # 4 s left: renewed
    assert {h[1] for h in _held(db, mine).values()} == {_at(6 + LEASE)}
    assert {h[1] for h in _held(db, theirs).values()} == {_at(LEASE)}
    W.heartbeat(db, w1, "idle", 0, now=_at(7))  # no lease_seconds: no renewal
    assert {h[1] for h in _held(db, mine).values()} == {_at(6 + LEASE)}


def test_d1_dial_check_renews_the_records_it_clears(setup):
    db, cid, pool, w1, w2 = setup
    add_numbers(db, pool, 3)
    ids = _lease(db, w1, 3)
    ok, refused = D.dial_check(db, w1, ids[:2], now=_at(9), lease_seconds=LEASE)
    assert ok == ids[:2] and refused == {}
    held = _held(db, ids)
    assert held[ids[0]][1] == held[ids[1]][1] == _at(9 + LEASE)
    assert held[ids[2]][1] == _at(LEASE)
    D.expire_leases(db, _at(LEASE + 1))
    st = statuses(db, ids)
    assert st[ids[0]] == st[ids[1]] == S.LEASED and st[ids[2]] == S.READY


def test_p10_late_result_after_expiry_counts_once(setup):
    db, cid, pool, w1, w2 = setup
    add_numbers(db, pool, 1)
    [rid] = _lease(db, w1, 1)
    assert D.expire_leases(db, _at(LEASE + 1)) == 1  # the controller was away; nobody re-leased it
    out = _result(db, w1, rid, "late-1", "answered", now=_at(LEASE + 5))
    assert out.accepted == ["late-1"]
    again = _result(db, w1, rid, "late-1", "answered", now=_at(LEASE + 6))
    assert again.duplicates == ["late-1"] and again.accepted == []
    with db.session() as s:
        rec = s.get(CallRecord, rid)
        assert rec.status == S.DONE and rec.attempts == 1
        assert s.scalar(sa.select(sa.func.count()).select_from(CallAttempt)) == 1
    assert _lease(db, w2, 5, now=_at(LEASE + 7)) == []  # never dialed again


def test_p10_late_result_for_a_record_refilled_into_a_queue_closes_it(setup):
    db, cid, pool, w1, w2 = setup
    add_numbers(db, pool, 30)
    [rid] = _lease(db, w1, 1)
    D.expire_leases(db, _at(LEASE + 1))
    _lease(db, w2, 1, now=_at(LEASE + 2))  # w2's refill may queue the expired record
    before = statuses(db, [rid])[rid]
    assert before in (S.READY, S.QUEUED, S.LEASED)
    out = _result(db, w1, rid, "late-2", "answered", now=_at(LEASE + 3))
    assert out.accepted == ["late-2"]
    if before != S.LEASED:
        assert statuses(db, [rid])[rid] == S.DONE


def test_p10_late_result_for_a_record_another_worker_holds_is_kept_but_changes_nothing(setup):
    db, cid, pool, w1, w2 = setup
    add_numbers(db, pool, 1)
    [rid] = _lease(db, w1, 1)
    D.expire_leases(db, _at(LEASE + 1))
    assert _lease(db, w2, 1, now=_at(LEASE + 2)) == [rid]
    held_before = _held(db, [rid])[rid]
    out = _result(db, w1, rid, "late-3", "no_answer", now=_at(LEASE + 3))
    assert out.accepted == ["late-3"]
    with db.session() as s:
        rec = s.get(CallRecord, rid)
        assert rec.status == S.LEASED and rec.attempts == 0
        assert (rec.held_by_worker_id, rec.held_until) == held_before
        assert s.scalar(sa.select(CallAttempt.worker_id).where(CallAttempt.client_id == "late-3")) == w1.id
    # the new holder's result still counts normally, once
    assert _result(db, w2, rid, "w2-1", "answered", now=_at(LEASE + 4)).accepted == ["w2-1"]
    assert _result(db, w1, rid, "late-3", "no_answer", now=_at(LEASE + 5)).duplicates == ["late-3"]
    with db.session() as s:
        rec = s.get(CallRecord, rid)
        assert rec.status == S.DONE and rec.attempts == 1


def test_d1_heartbeat_over_http_renews_leases(db, db_url):
    reset_caches()
    cid = make_campaign(db, window=ALL_DAY)
    pool = Q.create_pool(db, cid, "A")
    add_numbers(db, pool.id, 3)
    w = add_worker(db, cid, "w1", "1001")
    app = create_app({"DATABASE_URL": db_url, "TESTING": True, "LEASE_SECONDS": 4})
    try:
        client = app.test_client()
        h = {"Authorization": f"Bearer {w.token}"}
        recs = client.post("/api/v1/worker/lease", json={"max": 3}, headers=h).json["records"]
        ids = [r["id"] for r in recs]
        first_until = _held(db, ids)[ids[0]][1]
        # 4 s lease: everything is within half a lease after 2 s; a heartbeat renews it
        import time as _t
        _t.sleep(2.1)
        assert client.post("/api/v1/worker/heartbeat", json={"agent_state": "dialing"}, headers=h).status_code == 200
        assert all(u > first_until for _, u in _held(db, ids).values())
        r = client.post("/api/v1/worker/dial-check", json={"record_ids": ids[:1]}, headers=h)
        assert r.json["ok"] == ids[:1]
    finally:
        app.extensions["dialer_db"].dispose()


# --- D10: priority in the payload ---------------------------------------------------------


def test_d10_lease_and_overflow_payloads_carry_priority(setup):
    db, cid, pool, w1, w2 = setup
    add_numbers(db, pool, 3)
    key = D.set_campaign_api_key(db, cid)
    lead, created = D.add_web_lead(db, key, {"campaign": cid, "number": "+12125559999"})
    assert created
    recs = D.lease(db, w1, 4, now=T0).records
    assert recs[0]["id"] == lead and recs[0]["priority"] == D.WEB_LEAD_PRIORITY
    assert [r["priority"] for r in recs[1:]] == [0, 0, 0]
    with db.session() as s:
        payload = D.record_payload(s, s.get(CallRecord, recs[1]["id"]), T0)
    assert payload["priority"] == 0 and set(payload) == set(recs[1])


# --- D7: overflow to an agent whose own calls ring ----------------------------------------


def test_d7_overflow_claims_a_dialing_agent_longest_in_state_first(setup):
    db, cid, pool, w1, w2 = setup
    w3 = ident(db, add_worker(db, cid, "w3", "1003"))
    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    W.heartbeat(db, w1, "talking", 1, now=now)
    W.heartbeat(db, w2, "dialing", 2, now=now - dt.timedelta(seconds=3))
    W.heartbeat(db, w3, "idle", 0, now=now - dt.timedelta(seconds=1))
    first = W.claim_idle_agent(db, timeout_s=60, now=now)
    assert first.name == "1002"  # dialing for 3 s beats idle for 1 s
    second = W.claim_idle_agent(db, timeout_s=60, now=now)
    assert second.name == "1003"
    with pytest.raises(W.NoIdleAgent):
        W.claim_idle_agent(db, timeout_s=60, now=now)
    with db.session() as s:
        assert {a.name: a.state for a in s.scalars(sa.select(Agent))} == {
            "1001": AgentState.TALKING, "1002": AgentState.TALKING, "1003": AgentState.TALKING}


def test_d7_concurrent_claims_of_idle_and_dialing_agents_never_share_one(setup):
    db, cid, pool, w1, w2 = setup
    extra = [ident(db, add_worker(db, cid, f"x{i}", f"20{i:02d}")) for i in range(6)]
    for i, w in enumerate(extra):
        W.heartbeat(db, w, "dialing" if i % 2 else "idle", 0)
    got, errors = race_claims(db, 8)
    assert sorted(got) == sorted(f"20{i:02d}" for i in range(6))
    assert len(errors) == 2


# --- lease idempotency (request_id) -------------------------------------------------------


def test_d1_lease_repeated_with_the_same_request_id_returns_the_same_records(setup):
    db, cid, pool, w1, w2 = setup
    add_numbers(db, pool, 100)
    first = D.lease(db, w1, 5, now=T0, request_id="req-1").records
    again = D.lease(db, w1, 5, now=_at(1), request_id="req-1").records
    assert [r["id"] for r in again] == [r["id"] for r in first] and len(first) == 5
    assert again[0]["lease_until"] == first[0]["lease_until"]
    # a new request id is a new lease; no id at all too
    other = [r["id"] for r in D.lease(db, w1, 5, now=_at(2), request_id="req-2").records]
    plain = _lease(db, w1, 5, now=_at(3))
    assert len(set(other) | set(plain) | {r["id"] for r in first}) == 15
    # another worker's retry with the same id does not get w1's records
    theirs = [r["id"] for r in D.lease(db, w2, 5, now=_at(4), request_id="req-1").records]
    assert not set(theirs) & {r["id"] for r in first}
    # records reported meanwhile are not handed back on a late retry
    _result(db, w1, first[0]["id"], "r-1", now=_at(5))
    assert [r["id"] for r in D.lease(db, w1, 5, now=_at(6), request_id="req-1").records] == \
        [r["id"] for r in first[1:]]
    with pytest.raises(D.InvalidInput):
        D.lease(db, w1, 5, request_id="x" * 65)
    with pytest.raises(D.InvalidInput):
        D.lease(db, w1, 5, request_id=7)


def test_d1_lease_request_id_over_http(db, db_url):
    reset_caches()
    cid = make_campaign(db, window=ALL_DAY)
    pool = Q.create_pool(db, cid, "A")
    add_numbers(db, pool.id, 60)
    w = add_worker(db, cid, "w1", "1001")
    app = create_app({"DATABASE_URL": db_url, "TESTING": True})
    try:
        client = app.test_client()
        h = {"Authorization": f"Bearer {w.token}"}
        one = client.post("/api/v1/worker/lease", json={"max": 4, "request_id": "abc"}, headers=h).json
        two = client.post("/api/v1/worker/lease", json={"max": 4, "request_id": "abc"}, headers=h).json
        assert [r["id"] for r in one["records"]] == [r["id"] for r in two["records"]]
        assert len(one["records"]) == 4
        with db.session() as s:
            assert s.scalar(sa.select(sa.func.count()).select_from(CallRecord)
                            .where(CallRecord.status == S.LEASED)) == 4
        r = client.post("/api/v1/worker/lease", json={"max": 4, "request_id": ""}, headers=h)
        assert r.status_code == 400 and r.json["field"] == "request_id"
        hb = client.post("/api/v1/worker/heartbeat", json={"agent_state": "idle"}, headers=h).json
        assert hb["lease_seconds"] == 900
    finally:
        app.extensions["dialer_db"].dispose()


def test_d1_worker_store_follows_the_controllers_renewal(tmp_path):
    from esl_dialer.contingency import Contingency

    now = [1000.0]
    store = Contingency(tmp_path / "c.db", "w1", clock=lambda: now[0], lease_safety_s=30)
    store.add_leased([{"id": 1, "number": "+12125550000"}, {"id": 2, "number": "+12125550001"}], 100)
    now[0] = 1075.0  # local lease: 1000 + 100 - 20 = 1080
    assert store.renew_held(1075.0, 100) == 2  # heartbeat answered: held until >= 1075 + 50 - 20
    now[0] = 1090.0
    store.expire()
    assert store.held_count() == 2
    now[0] = 1106.0
    store.expire()
    assert store.held_count() == 0
    store.close()

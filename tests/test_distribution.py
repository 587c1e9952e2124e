"""Distribution service layer on SQLite and PostgreSQL (SPEC D1, D9, P1-P9, P12, P13, X1)."""
from __future__ import annotations

import datetime as dt

import pytest
import sqlalchemy as sa

from controller.errors import Conflict, InvalidInput, NotFound
from controller.models import CallAttempt, CallRecord, DncEntry, RecycleRule
from controller.services import distribution as D
from controller.services import queues as Q
from esl_dialer.messages import RecordStatus as S

from distribution_helpers import NOON_NY, fresh_caches, add_numbers, add_worker, ident, make_campaign, pool_of, reset_caches, statuses  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("fresh_caches")


@pytest.fixture
def setup(db):
    cid = make_campaign(db, window=("08:00", "21:00"))
    a = Q.create_pool(db, cid, "A")
    b = Q.create_pool(db, cid, "B")
    w = add_worker(db, cid, "w1", "1001")
    return db, cid, a.id, b.id, w


def _lease_ids(db, wi, n, now=NOON_NY):
    return [r["id"] for r in D.lease(db, wi, n, now=now).records]


def _report(db, wi, ids, result="no_answer", now=NOON_NY, tag="", **extra):
    raw = [{"client_id": f"{tag}{rid}-{now.timestamp()}", "record_id": rid, "result": result, **extra} for rid in ids]
    return D.record_results(db, wi, D.parse_results(raw), now=now)


def test_p1_pools_are_ordered_groups_in_a_campaign(setup):
    db, cid, a, b, _ = setup
    add_numbers(db, a, 3)
    assert [p.name for p in Q.list_pools(db, cid)] == ["A", "B"]
    assert Q.list_pools(db, cid)[0].ready == 3
    with pytest.raises(Conflict):
        Q.create_pool(db, cid, "A")


def test_p2_only_a_limited_batch_moves_from_pools_to_the_queue(setup):
    db, cid, a, b, w = setup
    add_numbers(db, a, 300)
    Q.update_queue(db, w.queue_id, min_size=30, max_size=50)
    ids = _lease_ids(db, ident(db, w), 20)
    assert len(ids) == 20
    q = Q.get_queue(db, w.queue_id)
    assert q.leased == 20 and q.queued <= 50
    assert Q.list_pools(db, cid)[0].counts["ready"] >= 300 - 70


def test_p3_refill_tracks_depletion_rate_and_respects_maximum(setup):
    db, cid, a, b, w = setup
    add_numbers(db, a, 600)
    wi = ident(db, w)
    Q.update_queue(db, w.queue_id, lead_minutes=2, min_size=10, max_size=400)
    # 100 results over the 5-minute window -> 20 records/minute -> hold ~40.
    for i in range(5):
        ids = _lease_ids(db, wi, 20, now=NOON_NY - dt.timedelta(minutes=5 - i))
        _report(db, wi, ids, now=NOON_NY - dt.timedelta(minutes=5 - i))
    q = Q.get_queue(db, w.queue_id, now=NOON_NY)  # the test's clock, not the machine's
    assert q.rate_per_minute == pytest.approx(20.0)
    reset_caches()  # the rate is re-measured every few seconds; here, now
    D.lease(db, wi, 1, now=NOON_NY)
    assert Q.get_queue(db, w.queue_id).queued == pytest.approx(40, abs=1)
    # a much faster worker is capped at max_size
    Q.update_queue(db, w.queue_id, lead_minutes=60)
    Q.flush_queue(db, w.queue_id)
    reset_caches()
    D.lease(db, wi, 1, now=NOON_NY)
    assert Q.get_queue(db, w.queue_id).queued == 399


def test_p3_a_worker_that_just_started_is_measured_over_its_own_time_not_the_whole_window(setup):
    """40 results in the last 2 minutes: 20/minute, not 40 / 5 = 8; 20 results
    in its first seconds count as one minute's work (no 0-second division)."""
    db, cid, a, b, w = setup
    add_numbers(db, a, 200)
    wi = ident(db, w)
    for minutes_ago in (2, 1):
        _report(db, wi, _lease_ids(db, wi, 20, now=NOON_NY - dt.timedelta(minutes=minutes_ago)),
                now=NOON_NY - dt.timedelta(minutes=minutes_ago))
    assert Q.get_queue(db, w.queue_id, now=NOON_NY).rate_per_minute == pytest.approx(20.0)
    w2 = add_worker(db, cid, "w2", "1002")
    wi2 = ident(db, w2)
    _report(db, wi2, _lease_ids(db, wi2, 20, now=NOON_NY - dt.timedelta(seconds=5)),
            now=NOON_NY - dt.timedelta(seconds=5))
    assert Q.get_queue(db, w2.queue_id, now=NOON_NY).rate_per_minute == pytest.approx(20.0)
    assert Q.get_queue(db, w2.queue_id, now=NOON_NY + dt.timedelta(minutes=10)).rate_per_minute == 0


def test_p4_priority_drains_pool_a_then_b(setup):
    db, cid, a, b, w = setup
    add_numbers(db, a, 30)
    add_numbers(db, b, 30, start=5000)
    Q.set_feeds(db, w.queue_id, [(a, 0), (b, 1)], selection_mode="priority")
    wi = ident(db, w)
    first = _lease_ids(db, wi, 25)
    assert set(pool_of(db, first).values()) == {a}
    second = _lease_ids(db, wi, 10)
    assert [pool_of(db, second)[i] for i in second] == [a] * 5 + [b] * 5


def test_p4_percentage_70_30_within_2pp_over_any_200(setup):
    db, cid, a, b, w = setup
    add_numbers(db, a, 600)
    add_numbers(db, b, 600, start=5000)
    Q.set_feeds(db, w.queue_id, [(a, 0, 70), (b, 0, 30)], selection_mode="percentage")
    wi = ident(db, w)
    handed = []
    for n in (20, 20, 13, 50, 20, 77, 20, 200, 20):
        handed += _lease_ids(db, wi, n)
    pools = pool_of(db, handed)
    seq = [pools[i] for i in handed]
    assert len(seq) >= 400
    for start in range(0, len(seq) - 200 + 1):
        assert abs(seq[start:start + 200].count(a) / 200 - 0.70) <= 0.02


def test_p4_combined_priority_tiers_with_percentage_inside(setup):
    db, cid, a, b, w = setup
    c = Q.create_pool(db, cid, "C").id
    add_numbers(db, a, 10)
    add_numbers(db, b, 10, start=5000)
    add_numbers(db, c, 10, start=7000)
    Q.set_feeds(db, w.queue_id, [(a, 0, 50), (b, 0, 50), (c, 1, 1)], selection_mode="combined")
    ids = _lease_ids(db, ident(db, w), 30)
    pools = [pool_of(db, ids)[i] for i in ids]
    assert sorted(pools[:20]) == [a] * 10 + [b] * 10
    assert pools[20:] == [c] * 10


def test_p5_depleted_pool_falls_through_then_shareable_pools_of_other_queues(setup):
    db, cid, a, b, w = setup
    c = Q.create_pool(db, cid, "C").id
    add_numbers(db, a, 5)
    add_numbers(db, c, 50, start=7000)
    w2 = add_worker(db, cid, "w2", "1002")
    Q.set_feeds(db, w.queue_id, [(a, 0), (b, 1)])
    Q.set_feeds(db, w2.queue_id, [(c, 0, 1.0, True)])
    ids = _lease_ids(db, ident(db, w), 20)
    pools = [pool_of(db, ids)[i] for i in ids]
    assert pools == [a] * 5 + [c] * 15
    Q.set_feeds(db, w2.queue_id, [(c, 0, 1.0, False)])
    assert _lease_ids(db, ident(db, w), 20) == []


def test_p6_every_result_is_stored_on_attempt_and_record_idempotently(setup):
    db, cid, a, b, w = setup
    add_numbers(db, a, 6)
    wi = ident(db, w)
    ids = _lease_ids(db, wi, 6)
    kinds = ["answered", "no_answer", "busy", "failed", "abandoned", "machine"]
    raw = [{"client_id": f"u{i}", "record_id": rid, "result": k, "call_uuid": f"call-{i}", "disposition":
            "sale" if k == "answered" else None, "started_at": "2026-11-23T16:59:00Z",
            "ended_at": "2026-11-23T17:00:00+00:00", "hangup_cause": "NORMAL_CLEARING"}
           for i, (rid, k) in enumerate(zip(ids, kinds))]
    out = D.record_results(db, wi, D.parse_results(raw), now=NOON_NY)
    assert out.accepted == [f"u{i}" for i in range(6)] and out.duplicates == []
    again = D.record_results(db, wi, D.parse_results(raw + raw[:1]), now=NOON_NY)
    assert again.accepted == [] and again.duplicates == [f"u{i}" for i in range(6)]
    with db.session() as s:
        attempts = s.execute(sa.select(CallAttempt.result, CallAttempt.abandoned, CallAttempt.disposition)
                             .order_by(CallAttempt.id)).all()
        recs = {r.id: r for r in s.scalars(sa.select(CallRecord))}
    assert [r.result for r in attempts] == kinds
    assert attempts[4].abandoned is True and attempts[0].disposition == "sale"
    assert recs[ids[0]].status == S.DONE and recs[ids[0]].disposition == "sale"
    assert all(recs[i].attempts == 1 and recs[i].last_result == k for i, k in zip(ids, kinds))


def test_p7_recycling_by_rule_retry_delay_then_exhausted(setup):
    db, cid, a, b, w = setup
    with db.session() as s:
        s.add(RecycleRule(campaign_id=cid, result="busy", retry_minutes=10, max_attempts=2))
    reset_caches()  # rules are re-read every few seconds
    (rid,) = add_numbers(db, a, 1)
    wi = ident(db, w)
    assert _lease_ids(db, wi, 5) == [rid]
    _report(db, wi, [rid], "busy")
    assert statuses(db, [rid])[rid] == S.READY
    assert _lease_ids(db, wi, 5, now=NOON_NY + dt.timedelta(minutes=9)) == []
    later = NOON_NY + dt.timedelta(minutes=11)
    assert _lease_ids(db, wi, 5, now=later) == [rid]
    _report(db, wi, [rid], "busy", now=later)
    assert statuses(db, [rid])[rid] == S.EXHAUSTED


def test_p8_live_changes_take_effect_at_the_next_lease(setup):
    db, cid, a, b, w = setup
    add_numbers(db, a, 100)
    add_numbers(db, b, 100, start=5000)
    wi = ident(db, w)
    Q.set_feeds(db, w.queue_id, [(a, 0), (b, 1)])
    assert set(pool_of(db, _lease_ids(db, wi, 10)).values()) == {a}
    assert Q.get_queue(db, w.queue_id).queued > 0
    Q.set_feeds(db, w.queue_id, [(b, 0), (a, 1)])  # swap the order while running
    assert Q.get_queue(db, w.queue_id).queued == 0
    assert set(pool_of(db, _lease_ids(db, wi, 10)).values()) == {b}
    # default-rule queue follows the campaign's pool order
    w2 = add_worker(db, cid, "w2", "1002")
    Q.reorder_pools(db, cid, [a, b])
    assert set(pool_of(db, _lease_ids(db, ident(db, w2), 5)).values()) == {a}
    Q.reorder_pools(db, cid, [b, a])
    assert set(pool_of(db, _lease_ids(db, ident(db, w2), 5)).values()) == {b}
    # add and remove records live
    new = Q.add_records(db, a, [{"number": "+13125550199", "priority": -1, "timezone": "America/Chicago"}])
    assert _lease_ids(db, ident(db, w2), 1) == new
    ready = [i for i, st in statuses(db, range(1, 300)).items() if st == S.READY][:3]
    assert Q.remove_records(db, ready + new) == 3  # the leased one stays
    assert Q.move_records(db, [i for i, st in statuses(db, range(1, 300)).items() if st == S.READY][:2], a) == 2


def test_p9_callback_in_the_partys_time_zone(setup):
    db, cid, a, b, w = setup
    (rid,) = add_numbers(db, a, 1, tz="America/Los_Angeles")
    wi = ident(db, w)
    assert _lease_ids(db, wi, 1) == [rid]
    # 10:00 local in Los Angeles on 24 Nov = 18:00 UTC
    _report(db, wi, [rid], "answered", callback_at="2026-11-24T10:00:00")
    with db.session() as s:
        rec = s.get(CallRecord, rid)
        assert rec.status == S.READY and rec.is_callback
        assert rec.next_attempt_at == dt.datetime(2026, 11, 24, 18, 0)
    add_numbers(db, a, 50, start=100)
    assert rid not in _lease_ids(db, wi, 10, now=dt.datetime(2026, 11, 24, 17, 59))
    # due: handed out first, ahead of the queue
    got = _lease_ids(db, wi, 5, now=dt.datetime(2026, 11, 24, 18, 0))
    assert got[0] == rid


def test_p12_queues_belong_to_a_campaign(setup):
    db, cid, a, b, w = setup
    other = make_campaign(db, "c2")
    foreign = Q.create_pool(db, other, "X").id
    with pytest.raises(InvalidInput) as err:
        Q.set_feeds(db, w.queue_id, [(a, 0), (foreign, 1)])
    assert err.value.field == "feeds[1].pool_id"
    assert Q.list_queues(db, other) == []
    assert [q.name for q in Q.list_queues(db, cid)] == ["w1"]


def test_p13_hard_records_go_to_skilled_agents_who_fall_back_to_easier(setup):
    db, cid, a, b, w = setup
    easy = add_numbers(db, a, 5, difficulty=0)
    hard = add_numbers(db, a, 5, start=100, difficulty=3)
    novice = ident(db, w)
    expert = ident(db, add_worker(db, cid, "w2", "1002", skill=3))
    got = _lease_ids(db, novice, 10)
    assert set(got) == set(easy)
    got = _lease_ids(db, expert, 10)
    assert set(got) == set(hard)
    more = add_numbers(db, a, 4, start=200, difficulty=1)
    assert set(_lease_ids(db, expert, 10)) == set(more)  # fallback to easier


def test_d1_record_held_by_one_worker_until_result_or_expiry(setup):
    db, cid, a, b, w = setup
    add_numbers(db, a, 10)
    w1, w2 = ident(db, w), ident(db, add_worker(db, cid, "w2", "1002"))
    first = _lease_ids(db, w1, 10)
    assert _lease_ids(db, w2, 10) == []
    # a (late) result from another worker is stored but leaves w1's lease alone (D1, P10)
    assert len(_report(db, w2, first[:1]).accepted) == 1
    assert statuses(db, first[:1])[first[0]] == S.LEASED
    assert D.release(db, w1, first[:2]) == 2
    assert sorted(_lease_ids(db, w2, 10)) == sorted(first[:2])
    # expiry: 15 minutes later every lease has run out and the records go back
    assert D.expire_leases(db, NOON_NY + dt.timedelta(seconds=899)) == 0
    assert D.expire_leases(db, NOON_NY + dt.timedelta(seconds=901)) == 10
    assert len(_lease_ids(db, w2, 10, now=NOON_NY + dt.timedelta(seconds=902))) == 10


def test_d9_dnc_checked_again_at_lease_and_at_dial(setup):
    db, cid, a, b, w = setup
    ids = add_numbers(db, a, 4)
    with db.session() as s:
        s.add(DncEntry(number="+12125550000"))
    wi = ident(db, w)
    got = _lease_ids(db, wi, 4)
    assert ids[0] not in got and statuses(db, [ids[0]])[ids[0]] == S.DNC
    with db.session() as s:
        s.add(DncEntry(number="+12125550001"))
    ok, refused = D.dial_check(db, wi, got, now=NOON_NY)
    assert refused == {ids[1]: "dnc"} and ok == got[1:]
    assert statuses(db, [ids[1]])[ids[1]] == S.DNC
    _, refused = D.dial_check(db, wi, [ids[1]], now=NOON_NY)
    assert refused == {ids[1]: "not_held"}
    with pytest.raises(NotFound):
        D.dial_check(db, wi, [9999])


def test_x1_records_outside_local_calling_hours_are_not_handed_out(setup):
    db, cid, a, b, w = setup
    ny = add_numbers(db, a, 3, tz="America/New_York")
    tokyo = add_numbers(db, a, 3, start=100, prefix="+8131234", tz="Asia/Tokyo")
    wi = ident(db, w)
    got = _lease_ids(db, wi, 10)  # 12:00 in NY is 02:00 in Tokyo
    assert sorted(got) == sorted(ny)
    _, refused = D.dial_check(db, wi, got, now=dt.datetime(2026, 11, 24, 3, 0))  # 22:00 NY
    assert set(refused.values()) == {"outside_hours"}
    got = _lease_ids(db, wi, 10, now=dt.datetime(2026, 11, 24, 1, 0))  # 20:00 NY, 10:00 Tokyo
    assert sorted(got) == sorted(tokyo)


def test_lease_input_is_checked_and_paused_campaign_gets_nothing(setup):
    db, cid, a, b, w = setup
    add_numbers(db, a, 3)
    with pytest.raises(InvalidInput):
        D.lease(db, ident(db, w), -1)
    from controller.models import Campaign
    from esl_dialer.messages import CampaignStatus

    with db.session() as s:
        s.get(Campaign, cid).status = CampaignStatus.PAUSED
    assert _lease_ids(db, ident(db, w), 3) == []

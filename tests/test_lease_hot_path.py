"""The distribution hot path keeps its order and its speed-ups (issue 4 performance work).

* P7: a retry that is due goes before fresh records of its priority, and
  records still waiting for their retry time never hold fresh ones back
  (migration 0005: each kind has its own partial index).
* Reads on an autocommit connection keep psycopg's prepared statements (a
  ROLLBACK drops them all, so the hot statements were re-planned over and over).
* The controller's listening socket disables Nagle's algorithm.
"""
from __future__ import annotations

import datetime as dt
import socket

import pytest
import sqlalchemy as sa

from controller.services import distribution as D
from controller.services import queues as Q
from esl_dialer.messages import RecordStatus as S

from distribution_helpers import NOON_NY, fresh_caches, add_numbers, add_worker, ident, make_campaign, reset_caches, statuses  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("fresh_caches")


def _lease_ids(db, wi, n, now):
    return [r["id"] for r in D.lease(db, wi, n, now=now).records]


def test_p7_due_retry_goes_before_fresh_records_and_waiting_ones_never_block(db):
    cid = make_campaign(db, window=("08:00", "21:00"))
    a = Q.create_pool(db, cid, "A").id
    b = Q.create_pool(db, cid, "B").id
    w = add_worker(db, cid, "w1", "1001")
    Q.set_feeds(db, w.queue_id, [(a, 0, 1)], selection_mode="priority")
    fresh = add_numbers(db, b, 6)                    # lower ids, parked in a pool the queue does not read
    (retry,) = add_numbers(db, a, 1, start=100)      # the highest id
    wi = ident(db, w)
    assert _lease_ids(db, wi, 5, NOON_NY) == [retry]
    D.record_results(db, wi, D.parse_results([{"client_id": "r1", "record_id": retry, "result": "no_answer"}]),
                     now=NOON_NY)                    # retry in 60 minutes (default rule)
    Q.move_records(db, fresh, a)

    # 30 minutes on, the retry is not due: the fresh records are handed out around it
    first = _lease_ids(db, wi, 2, NOON_NY + dt.timedelta(minutes=30))
    assert first == fresh[:2]
    assert statuses(db, [retry])[retry] == S.READY
    D.record_results(db, wi, D.parse_results([{"client_id": f"f{rid}", "record_id": rid, "result": "answered"}
                                              for rid in first]), now=NOON_NY + dt.timedelta(minutes=31))

    # once due, the retry goes first although every fresh record has a lower id;
    # the queue is topped up in that order (the refill reads the due index first)
    Q.flush_queue(db, w.queue_id)
    reset_caches()
    later = _lease_ids(db, wi, 3, NOON_NY + dt.timedelta(minutes=61))
    assert later == [retry, *fresh[2:4]]


def test_refill_ignores_many_waiting_retries(db):
    """A pool whose front is full of records waiting for a retry still refills from the rest."""
    cid = make_campaign(db, window=("08:00", "21:00"))
    a = Q.create_pool(db, cid, "A").id
    w = add_worker(db, cid, "w1", "1001")
    waiting = add_numbers(db, a, 60)
    wi = ident(db, w)
    taken = []
    while len(taken) < 60:
        got = _lease_ids(db, wi, 20, NOON_NY)
        assert got
        taken += got
    D.record_results(db, wi, D.parse_results([
        {"client_id": f"w{rid}", "record_id": rid, "result": "busy"} for rid in taken]), now=NOON_NY)
    assert set(statuses(db, waiting).values()) == {S.READY}
    late = add_numbers(db, a, 5, start=500)
    assert sorted(_lease_ids(db, wi, 20, NOON_NY + dt.timedelta(minutes=1))) == sorted(late)


def test_autocommit_reads_keep_prepared_statements(db):
    if db.dialect != "postgresql":
        pytest.skip("psycopg's prepared statements are a PostgreSQL matter")
    marker = sa.text("SELECT count(*) FROM call_record WHERE id = :x /* hot-path-marker */")

    def prepared() -> int:
        with db.read_connection() as conn:
            return conn.execute(sa.text(
                "SELECT count(*) FROM pg_prepared_statements WHERE statement LIKE '%hot-path-marker%'"
                " AND statement NOT LIKE '%pg_prepared_statements%'")).scalar()

    db.dispose()
    for i in range(8):
        with db.engine.connect() as conn:  # implicit transaction, ended by ROLLBACK
            conn.execute(marker, {"x": i}).scalar()
    assert prepared() == 0
    for i in range(8):
        with db.read_connection() as conn:
            conn.execute(marker, {"x": i}).scalar()
    assert prepared() == 1


def test_controller_listener_disables_nagle():
    from controller.serve import listener

    server = listener("127.0.0.1", 0)
    try:
        assert server.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        client = socket.create_connection(server.getsockname())
        accepted, _ = server.accept()
        try:
            assert accepted.getsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY)
        finally:
            accepted.close()
            client.close()
    finally:
        server.close()


def test_p3_refill_runs_off_the_lease_path_once_per_queue(db):
    """With a spawner (the gevent server), a lease served in full by its queue
    does not wait for the top-up it triggers; one top-up per queue at a time;
    a lease the queue cannot serve still refills inline."""
    from controller.models import CallRecord

    cid = make_campaign(db, window=("08:00", "21:00"))
    a = Q.create_pool(db, cid, "A").id
    w = add_worker(db, cid, "w1", "1001")
    Q.update_queue(db, w.queue_id, min_size=60, max_size=100, batch_size=20)
    add_numbers(db, a, 300)
    wi = ident(db, w)
    pending = []
    D.set_refill_spawner(lambda fn, *args: pending.append((fn, args)))
    try:
        def queued() -> int:
            with db.session() as s:
                return s.scalar(sa.select(sa.func.count()).where(
                    CallRecord.queue_id == w.queue_id, CallRecord.status == S.QUEUED))

        assert len(_lease_ids(db, wi, 20, NOON_NY)) == 20   # empty queue: filled to 60 inline
        assert (queued(), len(pending)) == (40, 0)
        assert len(_lease_ids(db, wi, 20, NOON_NY)) == 20   # 20 left, below 60: top-up due ...
        assert (queued(), len(pending)) == (20, 1)          # ... scheduled, not waited for
        assert len(_lease_ids(db, wi, 20, NOON_NY)) == 20
        assert (queued(), len(pending)) == (0, 1)           # not scheduled twice while pending
        fn, args = pending.pop()
        fn(*args)                                            # the top-up works from the latest lease's fill: 0 -> 60
        assert queued() == 60
        assert len(_lease_ids(db, wi, 20, NOON_NY)) == 20
        assert D._background.submit(("x", 1), lambda: 0)     # the spawner is still in use
    finally:
        D.set_refill_spawner(None)


def _pg_worker_with_records(db, n: int):
    """A worker of a campaign with ``n`` records (PostgreSQL only: the tests below kill server backends)."""
    if db.dialect != "postgresql":
        pytest.skip("terminating server backends is a PostgreSQL test")
    cid = make_campaign(db, window=("08:00", "21:00"))
    a = Q.create_pool(db, cid, "A").id
    w = add_worker(db, cid, "w1", "1001")
    add_numbers(db, a, n)
    return ident(db, w)


def _terminate_backends(db) -> int:
    """What a PostgreSQL restart does to the pool: every other backend of the database ends."""
    killer = sa.create_engine(db.engine.url, poolclass=sa.pool.NullPool)
    with killer.connect() as conn:
        killed = conn.execute(sa.text(
            "SELECT count(pg_terminate_backend(pid)) FROM pg_stat_activity "
            "WHERE datname = current_database() AND pid <> pg_backend_pid()")).scalar()
    killer.dispose()
    return killed


def test_a_dropped_database_connection_costs_at_most_one_failed_request(db):
    """Without a ping per checkout, a PostgreSQL restart (here: every backend of
    the database terminated) fails at most the request that meets a dead
    connection; SQLAlchemy then invalidates the pool and the next one reconnects
    (workers retry 5xx replies)."""
    wi = _pg_worker_with_records(db, 50)
    assert len(_lease_ids(db, wi, 5, NOON_NY)) == 5
    assert _terminate_backends(db) >= 1
    reset_caches()
    failures, got = 0, []
    for _ in range(3):
        try:
            got = _lease_ids(db, wi, 5, NOON_NY)
            break
        except sa.exc.DBAPIError as exc:
            assert exc.connection_invalidated
            failures += 1
    assert failures <= 1
    assert len(got) == 5


def test_p13_a_very_skilled_agent_falls_back_level_by_existing_level(db):
    """Skill 1,000 over records at difficulty 0 and 2: hardest first, and the
    fall-back jumps over the empty levels instead of asking for each of them."""
    cid = make_campaign(db, window=("08:00", "21:00"))
    a = Q.create_pool(db, cid, "A").id
    w = add_worker(db, cid, "w1", "1001", skill=1000)
    easy = add_numbers(db, a, 3, difficulty=0)
    hard = add_numbers(db, a, 2, start=100, difficulty=2)
    wi = ident(db, w)
    levels = []
    real = D._take_level

    def counting(session, pool_id, n, level, *args):
        levels.append(level)
        return real(session, pool_id, n, level, *args)

    D._take_level = counting
    try:
        got = _lease_ids(db, wi, 5, NOON_NY)
    finally:
        D._take_level = real
    assert got[:2] == hard and sorted(got[2:]) == easy
    assert levels == [1000, 2, 0]  # one take per level that has records (and the agent's own)


def test_a_dropped_connection_under_a_raw_statement_is_reported_like_sqlalchemy_does(db):
    """The results path runs its statements straight on psycopg (controller.pgraw):
    a dead connection there is raised as SQLAlchemy's DBAPIError, invalidates
    the pool, and the retried upload is stored once."""
    wi = _pg_worker_with_records(db, 10)
    first, *got = _lease_ids(db, wi, 3, NOON_NY)
    # one upload first: the recycle rules are cached, so the next upload's
    # first statement is the lock + INSERT on a dead connection
    D.record_results(db, wi, D.parse_results([{"client_id": "k0", "record_id": first, "result": "answered"}]),
                     now=NOON_NY)
    _terminate_backends(db)
    upload = D.parse_results([{"client_id": f"k{rid}", "record_id": rid, "result": "answered"} for rid in got])
    with pytest.raises(sa.exc.DBAPIError) as err:
        D.record_results(db, wi, upload, now=NOON_NY)
    assert err.value.connection_invalidated
    outcome = D.record_results(db, wi, upload, now=NOON_NY)       # the worker's retry
    assert sorted(outcome.accepted) == sorted(f"k{rid}" for rid in got) and outcome.duplicates == []
    assert set(statuses(db, got).values()) == {S.DONE}


def test_d1_a_lease_waits_out_row_locks_held_for_a_moment_on_its_queue(db, monkeypatch):
    """PostgreSQL keeps a row lock that a concurrent refill's scan took on a
    record another queue had just claimed (its re-check then dropped the row)
    until that refill commits.  A lease meeting only such locked records in
    its queue waits briefly and takes them instead of handing out nothing."""
    import threading

    wi = _pg_worker_with_records(db, 20)
    assert len(_lease_ids(db, wi, 5, NOON_NY)) == 5      # the queue now holds the other 15; the pool is empty
    locker = sa.create_engine(db.engine.url, poolclass=sa.pool.NullPool)
    conn = locker.connect()
    tx = conn.begin()
    held = conn.execute(sa.text("SELECT id FROM call_record WHERE status = 'queued' FOR UPDATE")).scalars().all()
    assert len(held) == 15
    timer = threading.Timer(0.05, tx.rollback)
    monkeypatch.setattr(D, "LOCKED_RETRY_S", (0.02, 0.1, 0.5))
    timer.start()
    try:
        got = _lease_ids(db, wi, 5, NOON_NY)
    finally:
        timer.join()
        conn.close()
        locker.dispose()
    assert len(got) == 5 and set(got) <= set(held)


def test_p6_a_replayed_client_id_naming_an_unknown_record_is_a_duplicate_not_an_error(db):
    """The look-up of already stored client ids runs inside the results
    transaction on PostgreSQL: a replay is reported as a duplicate, a new result
    for a record that does not exist is refused, and nothing else changes."""
    cid = make_campaign(db, window=("08:00", "21:00"))
    a = Q.create_pool(db, cid, "A").id
    wi = ident(db, add_worker(db, cid, "w1", "1001"))
    add_numbers(db, a, 3)
    rid = _lease_ids(db, wi, 1, NOON_NY)[0]
    first = D.record_results(db, wi, D.parse_results([{"client_id": "k1", "record_id": rid, "result": "busy"}]),
                             now=NOON_NY)
    assert first.accepted == ["k1"]
    replay = D.record_results(db, wi, D.parse_results([{"client_id": "k1", "record_id": 99999, "result": "busy"}]),
                              now=NOON_NY)
    assert (replay.accepted, replay.duplicates) == ([], ["k1"])
    from controller.errors import NotFound

    with pytest.raises(NotFound):
        D.record_results(db, wi, D.parse_results([{"client_id": "k2", "record_id": 99999, "result": "busy"}]),
                         now=NOON_NY)
    with db.engine.connect() as conn:
        assert conn.execute(sa.text("SELECT count(*) FROM call_attempt")).scalar() == 1


def test_x1_a_lease_outside_the_calling_window_answers_at_once(db, monkeypatch):
    """Records that are queued but outside the calling window (one zone still
    closed, or the whole campaign after hours) are not locked records: the
    lease answers at once instead of waiting for locks to clear."""
    import time

    cid = make_campaign(db, window=("08:00", "21:00"))
    a = Q.create_pool(db, cid, "A").id
    wi = ident(db, add_worker(db, cid, "w1", "1001"))
    ny = add_numbers(db, a, 10)
    la = add_numbers(db, a, 10, start=100, prefix="+1310555", tz="America/Los_Angeles")
    assert len(_lease_ids(db, wi, 2, NOON_NY)) == 2            # the queue now holds the other 18
    monkeypatch.setattr(D, "LOCKED_RETRY_S", (5.0,))

    def timed_lease(now):
        reset_caches()
        started = time.monotonic()
        ids = _lease_ids(db, wi, 10, now)
        assert time.monotonic() - started < 2.0
        return ids

    evening = NOON_NY + dt.timedelta(hours=10)                  # 22:00 in New York, 19:00 in Los Angeles
    assert sorted(timed_lease(evening)) == sorted(la)           # only the open zone's records
    assert timed_lease(evening) == []                           # the queue holds New York records only
    assert timed_lease(NOON_NY + dt.timedelta(hours=13)) == []  # every zone closed
    next_noon = timed_lease(NOON_NY + dt.timedelta(days=1))     # New York's records again (and the two
    assert set(next_noon) <= set(ny) and len(next_noon) >= 8    # leased yesterday, if their lease ran out)


def test_p3_background_top_ups_use_at_most_their_share_of_connections():
    """Top-ups beyond the slots kept for them wait their turn (they would
    otherwise open overflow connections, a server process fork each)."""
    import gevent
    import gevent.event
    import gevent.pool
    from gevent.lock import BoundedSemaphore

    bg = D._BackgroundRefills()
    group = gevent.pool.Group()
    bg.set_spawner(group.spawn, BoundedSemaphore(2))
    running, peak, release = [0], [0], gevent.event.Event()

    def top_up():
        running[0] += 1
        peak[0] = max(peak[0], running[0])
        release.wait()
        running[0] -= 1
        return 0

    for q in range(5):
        assert bg.submit(("db", q), top_up)
    gevent.sleep(0.05)
    assert (running[0], len(bg._busy)) == (2, 5)   # two run, three wait (and are not scheduled twice)
    assert bg.submit(("db", 4), top_up)             # already pending: nothing new
    release.set()
    group.join(timeout=5)
    assert (peak[0], running[0], bg._busy) == (2, 0, set())

"""psycopg's waits on the gevent hub (controller.pgwait): statements, pipelines
and several greenlets sharing the hub, without monkey-patching this process."""
from __future__ import annotations

import gevent
import psycopg
import pytest
from psycopg import waiting
from sqlalchemy.engine import make_url

from controller import pgwait

pytestmark = pytest.mark.postgres


@pytest.fixture
def pg_conninfo(_pg_url):
    u = make_url(_pg_url)
    return dict(host=u.host or "", port=u.port or 5432, user=u.username, dbname=u.database,
                password=u.password or None)


@pytest.fixture
def gevent_waits(monkeypatch):
    monkeypatch.setattr(waiting, "wait", pgwait.wait_gevent)


def test_statements_and_a_pipeline_run_through_the_gevent_wait(pg_conninfo, gevent_waits):
    calls = []
    real = pgwait.wait_gevent

    def counting(*args, **kwargs):
        calls.append(1)
        return real(*args, **kwargs)

    waiting.wait = counting
    with psycopg.connect(**pg_conninfo) as conn:
        assert conn.execute("SELECT %s::int + 1", (41,)).fetchone() == (42,)
        with conn.pipeline():
            a = conn.execute("SELECT generate_series(1, 3)")
            b = conn.execute("SELECT %s::text", ("x" * 200_000,))  # larger than a socket buffer
            assert [r[0] for r in a.fetchall()] == [1, 2, 3]
            assert len(b.fetchone()[0]) == 200_000
        conn.commit()
    assert calls, "psycopg did not wait through controller.pgwait"


def test_a_server_error_comes_out_as_psycopg_raises_it(pg_conninfo, gevent_waits):
    with psycopg.connect(**pg_conninfo) as conn:
        with pytest.raises(psycopg.errors.DivisionByZero):
            conn.execute("SELECT 1 / 0")
        conn.rollback()
        assert conn.execute("SELECT 2").fetchone() == (2,)


def test_greenlets_waiting_on_the_server_do_not_block_each_other(pg_conninfo, gevent_waits):
    """Four 0.3 s sleeps on four connections finish in about 0.3 s, not 1.2 s."""
    conns = [psycopg.connect(**pg_conninfo, autocommit=True) for _ in range(4)]
    try:
        started = gevent.get_hub().loop.now()
        jobs = [gevent.spawn(c.execute, "SELECT pg_sleep(0.3)") for c in conns]
        gevent.joinall(jobs, raise_error=True)
        assert gevent.get_hub().loop.now() - started < 0.9
    finally:
        for c in conns:
            c.close()


def test_a_wait_timeout_raises_psycopgs_wait_timeout(pg_conninfo):
    conn = psycopg.connect(**pg_conninfo, autocommit=True)
    try:
        conn.pgconn.send_query(b"SELECT pg_sleep(2)")
        gen = psycopg.generators.fetch_many(conn.pgconn)
        with pytest.raises(psycopg.errors.OperationalError, match="timeout"):
            pgwait.wait_gevent(gen, conn.pgconn.socket, timeout=0.1)
    finally:
        conn.close()  # the sleep is still running there: no COMMIT on the way out


def test_a_socket_closed_under_a_waiting_statement_raises_instead_of_hanging():
    """A watcher on a closed descriptor never fires: the periodic wake-up notices it."""
    import socket

    ours, theirs = socket.socketpair()
    fd = ours.fileno()

    def waits_for_a_reply():  # what a psycopg generator does: "wake me when readable"
        while True:
            ready = yield waiting.Wait.R
            assert not ready, "nothing is ever sent"

    gevent.spawn_later(0.1, ours.close)
    started = gevent.get_hub().loop.now()
    try:
        with pytest.raises(psycopg.errors.OperationalError, match="closed"):
            pgwait.wait_gevent(waits_for_a_reply(), fd, interval=0.1)
    finally:
        theirs.close()
    assert gevent.get_hub().loop.now() - started < 2


def test_installed_only_where_gevent_patched_select():
    # this test process is not monkey-patched: psycopg keeps its own choice
    assert not pgwait.wanted()
    before = waiting.wait
    try:
        assert pgwait.install() is True
        assert waiting.wait is pgwait.wait_gevent
        assert pgwait.install() is False
    finally:
        waiting.wait = before

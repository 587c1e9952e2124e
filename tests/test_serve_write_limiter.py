"""The controller's request limiter: at most N POSTs in the app at once, and
result uploads in at most a quarter of those places, so a lease -- on the
path of a call -- never queues behind a burst of uploads (a contingency flush)."""
from __future__ import annotations

import gevent
import gevent.event
import pytest

from controller.serve import BULK_PATHS, WriteLimiter

RESULTS, LEASE = "/api/v1/worker/results", "/api/v1/worker/lease"


class _SlowApp:
    """A WSGI app whose POSTs stay inside until ``release`` is set; it records
    how many are inside at once, by path."""

    def __init__(self) -> None:
        self.release = gevent.event.Event()
        self.inside: dict[str, int] = {}
        self.most: dict[str, int] = {}
        self.done: list[str] = []

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        self.inside[path] = self.inside.get(path, 0) + 1
        self.most[path] = max(self.most.get(path, 0), self.inside[path])
        try:
            if environ["REQUEST_METHOD"] == "POST":
                self.release.wait(timeout=10)
        finally:
            self.inside[path] -= 1
        self.done.append(path)
        start_response("200 OK", [("Content-Length", "2")])
        return [b"{}"]


def _call(limiter, path, method="POST"):
    return limiter({"REQUEST_METHOD": method, "PATH_INFO": path}, lambda status, headers: None)


def test_results_uploads_are_the_bulk_class():
    assert RESULTS in BULK_PATHS and LEASE not in BULK_PATHS


def test_uploads_take_at_most_a_quarter_of_the_places_and_a_lease_gets_in_past_them():
    app = _SlowApp()
    limiter = WriteLimiter(app, limit=8)
    uploads = [gevent.spawn(_call, limiter, RESULTS) for _ in range(10)]
    gevent.sleep(0.05)
    assert app.inside == {RESULTS: 2}  # 8 more wait for an upload place
    leases = [gevent.spawn(_call, limiter, LEASE) for _ in range(6)]
    gevent.sleep(0.05)
    assert app.inside == {RESULTS: 2, LEASE: 6}  # in at once, ahead of the 8 waiting uploads
    app.release.set()
    gevent.joinall(uploads + leases, timeout=10, raise_error=True)
    assert app.most == {RESULTS: 2, LEASE: 6}
    assert sorted(app.done) == sorted([RESULTS] * 10 + [LEASE] * 6)
    assert all(g.value == [b"{}"] for g in uploads + leases)


def test_the_limit_holds_for_everything_together():
    app = _SlowApp()
    limiter = WriteLimiter(app, limit=4)
    calls = [gevent.spawn(_call, limiter, LEASE) for _ in range(6)] + [
        gevent.spawn(_call, limiter, RESULTS) for _ in range(6)]
    gevent.sleep(0.05)
    assert sum(app.inside.values()) == 4
    assert app.inside.get(RESULTS, 0) <= 1
    app.release.set()
    gevent.joinall(calls, timeout=10, raise_error=True)
    assert len(app.done) == 12


def test_gets_are_not_limited():
    """Event streams (GET) stay open for minutes: they must not take places."""
    app = _SlowApp()
    limiter = WriteLimiter(app, limit=1)
    streams = [gevent.spawn(_call, limiter, "/api/v1/worker/events", "GET") for _ in range(3)]
    gevent.joinall(streams, timeout=5, raise_error=True)
    assert app.done.count("/api/v1/worker/events") == 3


@pytest.mark.parametrize("limit, uploads", [(1, 1), (3, 1), (8, 2), (16, 4)])
def test_upload_places_are_a_quarter_of_the_limit_and_never_none(limit, uploads):
    limiter = WriteLimiter(_SlowApp(), limit=limit)
    assert limiter.bulk.counter == uploads


def test_the_gunicorn_factory_limits_requests_the_same_way_under_gevent(tmp_path, monkeypatch):
    import gc

    from gevent import monkey

    threshold = gc.get_threshold()
    monkeypatch.setattr(gc, "freeze", lambda: None)  # make_app tunes the collector: not this test process's
    monkeypatch.setattr(gc, "set_threshold", lambda *a: None)

    from controller import serve
    from controller.db import upgrade

    url = f"sqlite:///{tmp_path / 'g.db'}"
    upgrade(url)
    monkeypatch.setattr(monkey, "is_module_patched", lambda name: True)
    wrapped = serve.make_app({"DATABASE_URL": url})
    try:
        assert isinstance(wrapped, WriteLimiter)
        assert wrapped.app.extensions["dialer_db"].url == url
    finally:
        serve.distribution.set_refill_spawner(None)
    monkeypatch.setattr(monkey, "is_module_patched", lambda name: False)
    plain = serve.make_app({"DATABASE_URL": url})
    assert not isinstance(plain, WriteLimiter) and plain.extensions["dialer_db"].url == url
    assert gc.get_threshold() == threshold

"""The controller keeps the cyclic garbage collector off its long-lived objects
(``controller.serve.tune_gc``): a full collection walked some 100,000 objects
and paused every request for about 70 ms under the lease benchmark."""
from __future__ import annotations

import gc

import gevent
import gevent.event
import pytest

from controller import create_app, serve


@pytest.fixture()
def gc_restored():
    threshold = gc.get_threshold()
    yield
    gc.unfreeze()
    gc.set_threshold(*threshold)


def test_tune_gc_freezes_what_exists_and_raises_the_young_threshold(gc_restored):
    gc.unfreeze()
    serve.tune_gc()
    assert gc.get_freeze_count() > 10_000  # this test process's modules and objects
    assert gc.get_threshold()[0] == serve.GC_THRESHOLD_0
    assert len(gc.get_objects(generation=2)) < gc.get_freeze_count() / 10


def test_cycles_made_after_the_freeze_are_still_collected(gc_restored):
    serve.tune_gc()

    class Node:
        pass

    a, b = Node(), Node()
    a.other, b.other = b, a
    del a, b
    assert gc.collect() >= 2


def test_the_controller_tunes_the_collector_when_it_starts_serving(tmp_path, gc_restored):
    gc.unfreeze()
    app = create_app({"DATABASE_URL": f"sqlite:///{tmp_path / 'c.db'}"}, check_migrated=False)
    ready, stop = gevent.event.Event(), gevent.event.Event()
    server = gevent.spawn(serve.serve, app, "127.0.0.1", 0, ready=ready, stop=stop)
    try:
        assert ready.wait(timeout=10)
        assert gc.get_freeze_count() > 0
        assert gc.get_threshold()[0] == serve.GC_THRESHOLD_0
    finally:
        stop.set()
        server.join(timeout=10)
    assert server.dead and server.exception is None

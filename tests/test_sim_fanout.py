"""Event fan-out of the simulated switch never stalls (mod_event_socket's event_handler()).

Each listener has its own bounded queue; firing only appends to it.  A client
that stops reading blocks nobody but itself: it loses events once its queue is
full, more than MAX_MISSED in a row kill it (``text/disconnect-notice``
"killed listener because of lost events"), and the other clients' replies and
events are not held up meanwhile.
"""
from __future__ import annotations

import logging
import time

import gevent
import pytest
from gevent import socket as gsocket

from esl_dialer.esl import parse_event
from esl_dialer.sim import wire_listener
from esl_dialer.sim.testing import RawEslClient, wait_until

BIG = "x" * 3000  # an event of ~3 KB, like a channel event with its variables


@pytest.fixture
def clients(sim):
    opened: list[RawEslClient] = []

    def connect(*, rcvbuf: int | None = None, subscribe: str | None = "event plain ALL") -> RawEslClient:
        sock = gsocket.socket(gsocket.AF_INET, gsocket.SOCK_STREAM)
        if rcvbuf:
            sock.setsockopt(gsocket.SOL_SOCKET, gsocket.SO_RCVBUF, rcvbuf)
        sock.settimeout(5)
        sock.connect(("127.0.0.1", sim.port))
        c = RawEslClient("127.0.0.1", sim.port, sock=sock)
        opened.append(c)
        assert c.auth().reply_text == "+OK accepted"
        if subscribe:
            assert c.reply(subscribe).reply_text.startswith("+OK event listener enabled")
        return c

    yield connect
    for c in opened:
        c.close()


def listener_of(sim, before: set):
    (new,) = set(sim.listeners) - before
    return new


def fire_custom(sim, n: int, body: str = BIG) -> None:
    for _ in range(n):
        sim.fire("CUSTOM", [("Event-Subclass", "sim::fanout"), ("Payload", body)], subclass="sim::fanout")


def stall(sim, listener, budget_events: int = 20000) -> None:
    """Fire big events until the never-reading client's socket is full and its events queue up."""
    fired = 0
    while fired < budget_events:
        fire_custom(sim, 200)
        fired += 200
        gevent.sleep(0.02)
        if len(listener.events) > 200:
            return
    raise AssertionError("the client's socket never filled up")


def test_firing_never_waits_for_a_client_that_does_not_read(sim, clients):
    before = set(sim.listeners)
    clients(rcvbuf=4096)
    stuck = listener_of(sim, before)
    stall(sim, stuck)
    queued = len(stuck.events)
    t0 = time.perf_counter()
    fire_custom(sim, 2000)  # would block on the full socket if firing wrote to it
    assert time.perf_counter() - t0 < 2.0
    assert len(stuck.events) == queued + 2000 and not stuck.closed


def test_a_client_that_does_not_read_does_not_delay_another_clients_api(sim, clients):
    before = set(sim.listeners)
    clients(rcvbuf=4096)
    stuck = listener_of(sim, before)
    api = clients(subscribe=None)
    reader = clients()
    stall(sim, stuck)

    firing = True

    def keep_firing():
        while firing:
            fire_custom(sim, 50)
            gevent.sleep(0.005)

    g = gevent.spawn(keep_firing)
    try:
        rtts = []
        for _ in range(20):
            t0 = time.perf_counter()
            assert api.reply("api status").text.startswith("UP ")
            rtts.append(time.perf_counter() - t0)
            reader.read_frame(timeout=5)  # the reader keeps up in between
    finally:
        firing = False
        g.join(timeout=5)
    assert len(stuck.events) > 0 and not stuck.closed  # still stuck the whole time
    assert max(rtts) < 1.0, rtts  # generous on a loaded machine; a blocking fan-out waits 600 s


def test_readers_get_every_event_in_order_while_another_client_is_stuck(sim, clients):
    before = set(sim.listeners)
    clients(rcvbuf=4096)
    stuck = listener_of(sim, before)
    reader = clients()
    stall(sim, stuck)
    # What the reader has already received up to now is not the point; start counting from a marker.
    sim.fire("CUSTOM", [("Event-Subclass", "sim::mark")], subclass="sim::mark")
    first = reader.read_until(lambda f: f.is_event and parse_event(f).get("Event-Subclass") == "sim::mark",
                              timeout=30)
    seqs = [int(parse_event(first).get("Event-Sequence"))]

    def fire_some():
        for _ in range(10):
            fire_custom(sim, 100, body="y" * 1500)
            gevent.sleep(0.01)

    g = gevent.spawn(fire_some)
    while len(seqs) < 1001:
        frame = reader.read_frame(timeout=10)
        assert frame is not None
        if frame.is_event:
            seqs.append(int(parse_event(frame).get("Event-Sequence")))
    g.join(timeout=5)
    assert seqs == list(range(seqs[0], seqs[0] + 1001))  # in order, no gaps
    assert not stuck.closed and len(stuck.events) > 0


def test_lost_events_kill_the_listener_with_freeswitchs_notice(sim, clients, monkeypatch, caplog):
    monkeypatch.setattr(wire_listener, "MAX_QUEUE", 50)
    monkeypatch.setattr(wire_listener, "MAX_MISSED", 20)
    before = set(sim.listeners)
    victim = clients()
    listener = listener_of(sim, before)
    with caplog.at_level(logging.WARNING, logger=wire_listener.__name__):
        fire_custom(sim, 50 + 21, body="z")  # back to back: its greenlet cannot write in between
    assert listener.lost_total == 21 and listener.killed
    assert listener not in sim.listeners  # the firing code stops paying for it at once
    assert any("Killing listener" in r.getMessage() and "too many lost events" in r.getMessage()
               for r in caplog.records)
    fire_custom(sim, 10, body="z")
    assert listener.lost_total == 21
    notice = victim.read_until(lambda f: f.content_type == "text/disconnect-notice", timeout=5)
    assert notice.text == "killed listener because of lost events\n"
    assert victim.read_frame(timeout=5) is None  # then the switch closes the socket
    assert wait_until(lambda: listener.closed, 3)


def test_lost_events_are_counted_in_a_row_like_freeswitch(sim, clients, monkeypatch):
    """l->lost_events is reset by the next event that fits: a listener that catches up is kept."""
    monkeypatch.setattr(wire_listener, "MAX_QUEUE", 20)
    monkeypatch.setattr(wire_listener, "MAX_MISSED", 10)
    before = set(sim.listeners)
    c = clients()
    listener = listener_of(sim, before)
    for _round in range(3):
        assert wait_until(lambda: not listener.events, 5)  # it has caught up
        fire_custom(sim, 20 + 8, body="z")  # 8 lost each time, 24 in all: more than MAX_MISSED
        assert listener.lost_events == 8
        assert wait_until(lambda: not listener.events, 5)
        fire_custom(sim, 1, body="z")
        assert listener.lost_events == 0
    assert listener.lost_total == 24 and not listener.killed and listener in sim.listeners
    assert c.reply("api status").text.startswith("UP ")


def test_killed_stuck_listener_is_closed_even_though_its_socket_is_full(sim, clients, monkeypatch):
    before = set(sim.listeners)
    clients(rcvbuf=4096)
    stuck = listener_of(sim, before)
    stall(sim, stuck)
    monkeypatch.setattr(wire_listener, "MAX_QUEUE", len(stuck.events))
    monkeypatch.setattr(wire_listener, "MAX_MISSED", 5)
    t0 = time.perf_counter()
    fire_custom(sim, 6)
    assert time.perf_counter() - t0 < 1.0 and stuck.killed
    # its greenlet is blocked writing to a socket nobody reads: cut off after KILL_GRACE_S
    assert wait_until(lambda: stuck.closed, wire_listener.KILL_GRACE_S + 5)

"""Each greenswitch 0.0.19 gap the adapter works around: the bug on plain greenswitch, then the fix.

(STYLE.md "Known gaps"; documented in docs/31-switch-adapter.md.)
"""
from __future__ import annotations

import gevent
import pytest
from greenswitch.esl import ESLEvent, ESLProtocol, InboundESL, NotConnectedError

from esl_dialer.esl.events import Event, StreamParser
from esl_dialer.switch import NotConnected, Switch, SwitchTimeout, _Connection
from test_switch_fake import FakeSwitch, event_frame

U1 = "0ca359d5-03f9-41a5-a52d-5921e9ed5d28"
BODY_WITH_NEWLINE_VALUE = (
    "Event-Name: CHANNEL_ANSWER\n"
    f"Unique-ID: {U1}\n"
    "variable_note: line1%0AEvil-Header: injected\n"
    "Answer-State: answered\n"
)


@pytest.fixture
def fake():
    server = FakeSwitch().start()
    yield server
    server.stop()


def _greenswitch(fake) -> InboundESL:
    esl = InboundESL("127.0.0.1", fake.port, "ClueCon", timeout=2)
    with gevent.Timeout(3):
        esl.connect()
    return esl


def _stop_greenswitch(esl: InboundESL) -> None:
    esl._run = False
    esl.connected = False
    esl.sock.close()
    for g in (esl._receive_events_greenlet, esl._process_events_greenlet):
        if g is not None:
            g.kill(timeout=2)


def test_gap_unquote_over_whole_block_forges_headers():
    bug = ESLEvent(BODY_WITH_NEWLINE_VALUE)
    assert bug.headers["Evil-Header"] == "injected"        # greenswitch: a value became a header
    assert bug.headers["variable_note"] == "line1"

    ev = Event.from_plain(BODY_WITH_NEWLINE_VALUE.encode())
    assert "Evil-Header" not in ev
    assert ev["variable_note"] == "line1\nEvil-Header: injected"
    assert ev.name == "CHANNEL_ANSWER" and ev.uuid == U1


def test_gap_read_socket_spins_on_closed_socket():
    class ClosedFile:
        calls = 0

        def read(self, n):
            ClosedFile.calls += 1
            if ClosedFile.calls > 500:
                raise RuntimeError("still spinning")
            return b""  # what a closed socket's file returns, forever

    with pytest.raises(RuntimeError, match="still spinning"):
        ESLProtocol._read_socket(ClosedFile(), 100)   # greenswitch: never gives up, never yields
    assert ClosedFile.calls > 500

    # Adapter: a body cut short by the server closing ends the reader (and reconnects).
    parser = StreamParser()
    assert parser.feed(b"Content-Length: 100\nContent-Type: text/event-plain\n\nEvent-Name: X\n") == []
    assert parser.buffered > 0  # waits for more bytes instead of looping on b""


def test_gap_read_socket_adapter_over_tcp(fake):
    sw = Switch("127.0.0.1", fake.port, connect_timeout=2, reconnect_min_s=0.05, reconnect_max_s=0.1).start()
    try:
        reader = sw._conn.reader
        fake.emit(b"Content-Length: 1000\nContent-Type: text/event-plain\n\nEvent-Name: CHANNEL_ANSWER\n")
        fake.drop_all()
        reader.join(timeout=2)
        assert reader.dead
        with gevent.Timeout(5):
            while sw.stats["connects"] < 2:
                gevent.sleep(0.02)
    finally:
        sw.close()


def test_gap_garbage_frame_kills_greenswitch_reader(fake):
    esl = _greenswitch(fake)
    got = []
    esl.register_handle("CHANNEL_ANSWER", got.append)
    try:
        fake.emit(b"hello there\n\n" + event_frame("CHANNEL_ANSWER", U1))
        gevent.sleep(0.3)
        assert got == []                                           # the event after the garbage is lost
        assert esl._receive_events_greenlet.dead
        # a line without ": " makes ESLEvent.parse_data call None.strip(); a frame
        # without Content-Type would raise KeyError in handle_event: either way the reader is gone
        assert isinstance(esl._receive_events_greenlet.exception, (AttributeError, KeyError))
    finally:
        _stop_greenswitch(esl)

    sw = Switch("127.0.0.1", fake.port, connect_timeout=2).start()
    try:
        seen = []
        sw.on("CHANNEL_ANSWER", seen.append)
        fake.emit(b"hello there\n\n" + event_frame("CHANNEL_ANSWER", U1))
        with gevent.Timeout(2):
            while not seen:
                gevent.sleep(0.01)
        assert sw._conn.reader is not None and not sw._conn.reader.dead
    finally:
        sw.close()


def test_gap_send_has_no_timeout(fake):
    esl = _greenswitch(fake)
    fake.stall = True
    try:
        with pytest.raises(gevent.Timeout):
            with gevent.Timeout(0.3):
                esl.send("api status")                             # greenswitch: waits forever
    finally:
        _stop_greenswitch(esl)

    fake.stall = False
    sw = Switch("127.0.0.1", fake.port, connect_timeout=2, command_timeout=0.3).start()
    try:
        fake.stall = True
        with pytest.raises(SwitchTimeout):
            sw.api("status")
    finally:
        fake.stall = False
        sw.close()


def test_gap_send_uses_sock_send_not_sendall():
    class TinyBufferSocket:
        """A socket whose kernel buffer takes 1000 bytes per call, like a busy link."""

        def __init__(self):
            self.data = b""

        def send(self, payload):
            self.data += payload[:1000]
            return min(1000, len(payload))

        def close(self):
            pass

        def sendall(self, payload):
            while payload:
                n = self.send(payload)
                payload = payload[n:]

    cmd = "api echo " + "x" * 5000
    esl = InboundESL("127.0.0.1", 1, "x")
    esl.sock = TinyBufferSocket()
    esl.connected = True
    with pytest.raises(gevent.Timeout):
        with gevent.Timeout(0.1):
            esl.send(cmd)
    assert len(esl.sock.data) == 1000                              # greenswitch: the rest is silently lost

    conn = _Connection(Switch(), "127.0.0.1", 1, "x", timeout=0.1)
    conn.sock = TinyBufferSocket()
    conn.connected = True
    with pytest.raises(SwitchTimeout):
        conn.send(cmd, timeout=0.1)
    assert conn.sock.data == (cmd + "\n\n").encode()               # adapter: every byte went out


def test_gap_big_command_over_tcp_is_sent_whole(fake):
    sw = Switch("127.0.0.1", fake.port, connect_timeout=2).start()
    try:
        arg = "x" * 400_000
        assert sw.api("echo " + arg).startswith("-ERR echo")
        assert fake.received[-1] == "api echo " + arg
    finally:
        sw.close()


def test_gap_no_reconnect_and_pending_send_hangs_after_drop(fake):
    esl = _greenswitch(fake)
    fake.stall = True
    pending = gevent.spawn(esl.send, "api status")
    gevent.sleep(0.1)
    fake.drop_all()
    gevent.sleep(0.3)
    try:
        assert not pending.ready()                                 # greenswitch: the waiter is never failed
        assert not esl.connected
        with pytest.raises(NotConnectedError):
            esl.send("api status")                                 # ...and nothing reconnects
        assert fake.connections == 1
    finally:
        pending.kill()
        _stop_greenswitch(esl)

    fake.stall = False
    sw = Switch("127.0.0.1", fake.port, connect_timeout=2, reconnect_min_s=0.05, reconnect_max_s=0.1).start()
    try:
        fake.stall = True
        pending = gevent.spawn(sw.api, "status", 10)
        gevent.sleep(0.1)
        fake.drop_all()
        with gevent.Timeout(2):
            with pytest.raises(NotConnected):
                pending.get()                                      # adapter: fails at once on the drop
        fake.stall = False
        assert sw.wait_connected(5)
        assert sw.status().startswith("UP")                         # ...and is back
    finally:
        fake.stall = False
        sw.close()

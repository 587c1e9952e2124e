"""The switch adapter (esl_dialer.switch.Switch) over real TCP against a capture-replay server (X2)."""
from __future__ import annotations

import gevent
import pytest

from esl_dialer.esl.commands import CommandError
from esl_dialer.messages import AttemptResult
from esl_dialer.switch import (
    AuthFailed, ChannelHangup, CommandFailed, NotConnected, Switch, SwitchTimeout,
)
from test_switch_fake import FakeSwitch, event_frame

U1 = "0ca359d5-03f9-41a5-a52d-5921e9ed5d28"
U2 = "14bb429e-32b0-42a7-9c85-99098dfb9f74"


@pytest.fixture
def fake():
    server = FakeSwitch().start()
    yield server
    server.stop()


@pytest.fixture
def sw(fake):
    switch = Switch("127.0.0.1", fake.port, "ClueCon", connect_timeout=2.0, command_timeout=2.0,
                    reconnect_min_s=0.05, reconnect_max_s=0.2)
    switch.start()
    yield switch
    switch.close()


def test_x2_connect_auth_and_subscribe(fake, sw):
    assert sw.connected
    assert fake.received[0] == "auth ClueCon"
    assert fake.subscriptions and fake.subscriptions[0].startswith("event plain BACKGROUND_JOB CHANNEL_HANGUP")
    assert sw.status().startswith("UP ")


def test_x2_bad_password_raises_auth_failed(fake):
    switch = Switch("127.0.0.1", fake.port, "wrong", connect_timeout=2.0)
    with pytest.raises(AuthFailed):
        switch.start()
    assert not switch.connected
    assert len(switch._group) == 0


def test_x2_nothing_listening_raises_not_connected():
    import gevent.socket

    s = gevent.socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    switch = Switch("127.0.0.1", port, connect_timeout=1.0)
    with pytest.raises(NotConnected):
        switch.start()


def test_x2_api_replies_and_errors(fake, sw):
    fake.api_replies["uuid_getvar " + U1 + " dialer_missing_var"] = "_undef_"
    fake.api_replies["uuid_getvar " + U1 + " dialer_agent"] = "1001"
    fake.api_replies["uuid_exists " + U1] = "true"
    fake.api_replies["uuid_exists " + U2] = "false"
    fake.api_replies["uuid_kill " + U1] = "+OK\n"
    fake.api_replies["uuid_kill " + U2] = "-ERR No such channel!\n"
    fake.api_replies["uuid_bridge"] = "-ERR Invalid uuid\n"
    assert sw.getvar(U1, "dialer_missing_var") is None
    assert sw.getvar(U1, "dialer_agent") == "1001"
    assert sw.exists(U1) is True and sw.exists(U2) is False
    assert sw.kill(U1) is True and sw.kill(U2) is False
    with pytest.raises(CommandFailed) as err:
        sw.bridge(U1, U2)
    assert err.value.reply == "-ERR Invalid uuid"
    assert sw.api("nosuchcommand").startswith("-ERR nosuchcommand")
    assert "api uuid_kill " + U1 + " NORMAL_CLEARING" in fake.received


def test_x2_show_channels_parses_captured_json(fake, sw):
    from test_switch_fake import load_frames

    body = next(f["body"] for f in load_frames() if f.get("sent") == "api show channels as json")
    fake.api_replies["show channels as json"] = body
    rows = sw.show_channels()
    assert len(rows) == 4 and rows[0]["uuid"] == U2
    fake.api_replies["show channels as json"] = '{"row_count":0}'
    assert sw.show_channels() == []


def test_x2_bgapi_returns_job_body_with_our_job_uuid(fake, sw):
    assert sw.bgapi("status", timeout=2).startswith("UP ")
    sent = [c for c in fake.received if c.startswith("bgapi status")]
    assert sent and "\nJob-UUID: " in sent[0]


def test_d2_originate_answer_then_wait_for_answer_seen_before_result(fake, sw):
    result = sw.originate("sofia/gateway/gw1/14155550100", uuid=U1, variables={"dialer_record_id": 42},
                          originate_timeout=30)
    assert result.ok and result.uuid == U1 and result.cause is None
    # CHANNEL_ANSWER came before the BACKGROUND_JOB; the tracked channel remembers it.
    ev = sw.wait_for(U1, "CHANNEL_ANSWER", timeout=1)
    assert ev.uuid == U1 and ev["Answer-State"] == "answered"
    cmd = next(c for c in fake.received if c.startswith("bgapi originate"))
    assert cmd.startswith("bgapi originate {origination_uuid=" + U1 + ",originate_timeout=30,dialer_record_id=42}"
                          "sofia/gateway/gw1/14155550100 &park()")


@pytest.mark.parametrize("reply,cause,result", [
    ("-ERR USER_BUSY", "USER_BUSY", AttemptResult.BUSY),
    ("-ERR NO_ANSWER", "NO_ANSWER", AttemptResult.NO_ANSWER),
    ("-ERR NO_USER_RESPONSE", "NO_USER_RESPONSE", AttemptResult.NO_ANSWER),
    ("-ERR NORMAL_TEMPORARY_FAILURE", "NORMAL_TEMPORARY_FAILURE", AttemptResult.FAILED),
    ("-ERR UNALLOCATED_NUMBER", "UNALLOCATED_NUMBER", AttemptResult.FAILED),
    ("-ERR CALL_REJECTED", "CALL_REJECTED", AttemptResult.BUSY),
])
def test_d2_originate_failure_causes(fake, sw, reply, cause, result):
    fake.outcomes["14155550111"] = reply
    res = sw.originate("sofia/gateway/gw1/14155550111")
    assert not res.ok and res.cause == cause and res.result is result
    assert res.uuid not in sw._channels  # failed calls are not tracked


def test_x2_wait_for_timeout_and_hangup(fake, sw):
    sw.track(U2)
    with pytest.raises(SwitchTimeout):
        sw.wait_for(U2, "CHANNEL_ANSWER", timeout=0.2)
    gevent.spawn_later(0.05, fake.emit, event_frame("CHANNEL_HANGUP", U2))
    with pytest.raises(ChannelHangup) as err:
        sw.wait_for(U2, "CHANNEL_ANSWER", timeout=2)
    assert err.value.cause == "NORMAL_CLEARING"
    # waiting for the hang-up itself returns it
    assert sw.wait_for(U2, "CHANNEL_HANGUP", timeout=1).name == "CHANNEL_HANGUP"


def test_x2_wait_for_since_ignores_older_events(fake, sw):
    fake.emit(event_frame("PLAYBACK_STOP", U1))
    first = sw.wait_for(U1, "PLAYBACK_STOP", timeout=1)
    mark = sw.seq
    with pytest.raises(SwitchTimeout):
        sw.wait_for(U1, "PLAYBACK_STOP", timeout=0.2, since=mark)
    gevent.spawn_later(0.05, fake.emit, event_frame("PLAYBACK_STOP", U1))
    second = sw.wait_for(U1, "PLAYBACK_STOP", timeout=1, since=mark)
    assert second.seq > first.seq


def test_x2_routing_by_name_and_by_channel(fake, sw):
    by_name, by_uuid, everything = [], [], []
    sw.on("CHANNEL_ANSWER", by_name.append)
    sw.on_channel(U1, by_uuid.append)
    sw.on("*", everything.append)
    for name, uuid in [("CHANNEL_CREATE", U1), ("CHANNEL_ANSWER", U1), ("CHANNEL_ANSWER", U2),
                       ("CHANNEL_HANGUP", U2)]:
        fake.emit(event_frame(name, uuid))
    deadline = gevent.get_hub().loop.now() + 2
    while len(everything) < 4 and gevent.get_hub().loop.now() < deadline:
        gevent.sleep(0.01)
    assert [(e.name, e.uuid) for e in by_name] == [("CHANNEL_ANSWER", U1), ("CHANNEL_ANSWER", U2)]
    assert [e.name for e in by_uuid] == ["CHANNEL_CREATE", "CHANNEL_ANSWER"]
    assert len(everything) == 4


def test_x2_handler_exception_does_not_stop_dispatch(fake, sw):
    got = []

    def broken(ev):
        raise RuntimeError("handler bug")

    sw.on("CHANNEL_ANSWER", broken)
    sw.on("CHANNEL_ANSWER", got.append)
    fake.emit(event_frame("CHANNEL_ANSWER", U1) + event_frame("CHANNEL_ANSWER", U2))
    with gevent.Timeout(2):
        while len(got) < 2:
            gevent.sleep(0.01)
    assert sw.stats["handler_errors"] == 2


def test_x2_reconnects_and_resubscribes_after_server_drop(fake, sw):
    assert fake.connections == 1
    fake.drop_all()
    with gevent.Timeout(5):
        while fake.connections < 2 or not sw.connected:
            gevent.sleep(0.02)
    assert sw.stats["connects"] == 2
    assert len(fake.subscriptions) == 2 and fake.subscriptions[0] == fake.subscriptions[1]
    assert sw.status().startswith("UP")


def test_x2_commands_fail_fast_while_disconnected(fake):
    switch = Switch("127.0.0.1", fake.port, connect_timeout=1.0, reconnect_min_s=0.5, reconnect_max_s=0.5)
    switch.start()
    try:
        fake.server.stop()  # no listener: reconnects fail
        fake.drop_all()
        with gevent.Timeout(2):
            while switch.connected:
                gevent.sleep(0.01)
        with pytest.raises(NotConnected):
            switch.api("status")
    finally:
        switch.close()


def test_x2_no_reply_times_out_and_drops_connection(fake, sw):
    fake.stall = True
    with pytest.raises(SwitchTimeout):
        sw.api("status", timeout=0.3)
    fake.stall = False
    assert sw.wait_connected(timeout=5)
    with gevent.Timeout(5):
        while fake.connections < 2:
            gevent.sleep(0.02)
    assert sw.wait_connected(timeout=5)
    assert sw.status().startswith("UP")


def test_x2_garbage_frames_do_not_crash_the_adapter(fake, sw):
    got = []
    sw.on("CHANNEL_ANSWER", got.append)
    fake.emit(b"hello there\n\n")                                    # no Content-Type
    fake.emit(b"Content-Type: text/weird\nContent-Length: 3\n\nabc")   # unknown type
    fake.emit(b"Content-Type: text/event-json\nContent-Length: 5\n\n{oops")  # bad JSON
    fake.emit(b"Content-Type: api/response\nContent-Length: 4\n\n+OK\n")    # reply nobody asked for
    fake.emit(event_frame("CHANNEL_ANSWER", U1))
    with gevent.Timeout(2):
        while not got:
            gevent.sleep(0.01)
    assert sw.connected and sw.stats["connects"] == 1
    assert sw.status().startswith("UP")


def test_x2_unparseable_stream_reconnects(fake, sw):
    fake.emit(b"Content-Length: banana\n\n")
    with gevent.Timeout(5):
        while sw.stats["connects"] < 2:
            gevent.sleep(0.02)
    assert sw.wait_connected(5) and sw.status().startswith("UP")


def test_x2_injection_attempts_are_refused_before_sending(fake, sw):
    before = len(fake.received)
    with pytest.raises(CommandError):
        sw.api("status\n\napi hupall")
    with pytest.raises(CommandError):
        sw.originate("sofia/gateway/gw1/1415\nbgapi hupall")
    with pytest.raises(CommandError):
        sw.originate("sofia/gateway/gw1/14155550100", variables={"x": "a}evil/1 &park("})
    with pytest.raises(CommandError):
        sw.kill(U1 + " ; hupall")
    with pytest.raises(CommandError):
        sw.broadcast(U1, "/tmp/a.wav\nexit")
    with pytest.raises(CommandError):
        sw.setvar(U1, "x", "1\r\nexit")
    assert len(fake.received) == before


def test_x2_slow_handler_does_not_block_the_reader(fake, sw):
    def slow(ev):
        gevent.sleep(0.2)

    sw.on("CHANNEL_EXECUTE", slow)
    fake.emit(b"".join(event_frame("CHANNEL_EXECUTE", U1) for _ in range(50)))
    # The reader routes all 50 at once and keeps answering commands; the handler lags behind.
    with gevent.Timeout(2):
        while sw.stats["events"] < 50:
            gevent.sleep(0.01)
    assert sw.status().startswith("UP")  # a reply still gets through while the handler sleeps
    assert sw.backlog >= 40
    assert sw.stats["max_backlog"] >= 49


def test_x2_close_kills_and_joins_greenlets(fake):
    switch = Switch("127.0.0.1", fake.port).start()
    assert len(switch._group) >= 3  # supervisor, dispatcher, reader
    switch.close()
    assert len(switch._group) == 0
    assert "exit" in fake.received


def test_x2_start_without_wait_keeps_trying_until_the_switch_is_up():
    import gevent.socket

    s = gevent.socket.socket()
    s.bind(("127.0.0.1", 0))
    port = s.getsockname()[1]
    s.close()
    switch = Switch("127.0.0.1", port, connect_timeout=0.5, reconnect_min_s=0.05, reconnect_max_s=0.1)
    switch.start(wait=False)
    try:
        gevent.sleep(0.3)
        assert not switch.connected
        server = FakeSwitch()
        server.server = __import__("gevent.server").server.StreamServer(("127.0.0.1", port), server._handle)
        server.start()
        try:
            assert switch.wait_connected(timeout=5)
            assert switch.status().startswith("UP")
        finally:
            switch.close()
            server.stop()
    finally:
        switch.close()


def test_x2_waiting_for_hangup_complete_survives_the_hangup(fake, sw):
    sw.track(U1)
    gevent.spawn_later(0.05, fake.emit, event_frame("CHANNEL_HANGUP", U1) + event_frame("CHANNEL_HANGUP_COMPLETE", U1))
    ev = sw.wait_for(U1, "CHANNEL_HANGUP_COMPLETE", timeout=2)
    assert ev.name == "CHANNEL_HANGUP_COMPLETE"


def test_x2_silent_half_open_connection_is_probed_and_replaced(fake):
    switch = Switch("127.0.0.1", fake.port, connect_timeout=0.2, command_timeout=0.3, idle_probe_s=0.3,
                    reconnect_min_s=0.05, reconnect_max_s=0.1).start()
    try:
        fake.stall = True  # the server stops answering anything (a dead peer behind a live socket)
        with gevent.Timeout(5):
            while fake.connections < 2:
                gevent.sleep(0.05)
        fake.stall = False
        assert switch.wait_connected(5)
        assert switch.status().startswith("UP")
        assert any(c == "api status" for c in fake.received)  # the probe
    finally:
        fake.stall = False
        switch.close()


def test_x2_tracked_channels_are_bounded(fake):
    switch = Switch("127.0.0.1", fake.port, max_tracked_channels=3).start()
    try:
        uuids = [f"00000000-0000-0000-0000-00000000000{i}" for i in range(5)]
        for u in uuids:
            switch.track(u)
        assert list(switch._channels) == uuids[2:]
    finally:
        switch.close()

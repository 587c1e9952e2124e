"""R1-R7, X2: the simulated switch's outbound socket (dialplan ``socket host:port async full``).

The test plays the application side: a gevent server on an ephemeral port
that the simulator connects to, driven with raw frames (compared with the
b_outbound capture) and with greenswitch's OutboundSession.
"""
from __future__ import annotations

import json
from pathlib import Path

import gevent
import pytest
from gevent.queue import Queue
from gevent.server import StreamServer
from greenswitch.esl import OutboundSession

from esl_dialer.esl import encode_sendmsg, parse_event
from esl_dialer.sim import SimConfig, SimSwitch
from esl_dialer.sim.testing import RawEslClient, wait_until

CAPTURES = Path(__file__).resolve().parent / "esl-captures"


@pytest.fixture
def app_server():
    accepted: Queue = Queue()
    server = StreamServer(("127.0.0.1", 0), lambda sock, addr: (accepted.put(sock), gevent.sleep(30)))
    server.start()
    yield server, accepted
    server.stop(timeout=1)


@pytest.fixture
def sim(app_server):
    server, _ = app_server
    s = SimSwitch(SimConfig(time_scale=0.05), port=0)
    s.dialplan = {**s.dialplan, "7000": ("socket", f"127.0.0.1:{server.server_port} async full")}
    s.start()
    yield s
    s.stop(timeout=2)


def execute(c: RawEslClient, app: str, arg: str | None = None):
    headers = {"call-command": "execute", "execute-app-name": app}
    if arg is not None:
        headers["execute-app-arg"] = arg
    c.send(encode_sendmsg(None, headers))
    return c.read_until(lambda f: f.content_type == "command/reply")


def until_event(c: RawEslClient, name: str, app: str | None = None, timeout: float = 5.0):
    while True:
        frame = c.read_until(lambda f: f.is_event or f.content_type == "text/disconnect-notice", timeout)
        if frame.content_type == "text/disconnect-notice":
            raise AssertionError(f"disconnected while waiting for {name}")
        ev = parse_event(frame)
        if ev.name == name and (app is None or ev.get("Application") == app):
            return ev


def test_r1_outbound_session_like_capture(sim, app_server):
    _, accepted = app_server
    uuid = sim.inbound_call("7000", "15551230001", dtmf="", variables={"dialer_ivr": "main"})
    c = RawEslClient("127.0.0.1", 0, sock=accepted.get(timeout=5))
    c.command("connect")
    data = c.read_frame()
    cap = [json.loads(line) for line in (CAPTURES / "b_outbound.jsonl").open()] if CAPTURES.exists() else None
    assert "Content-Length" not in data.headers and data.body == b""
    assert data.headers["Event-Name"] == "CHANNEL_DATA" and data.headers["Unique-ID"] == uuid
    assert data.raw_headers["Reply-Text"] == "%2BOK%0A" and data.headers["Reply-Text"] == "+OK\n"
    assert data.headers["Socket-Mode"] == "async" and data.headers["Control"] == "full"
    assert data.headers["Channel-Caller-ID-Number"] == "15551230001"
    assert data.headers["variable_dialer_ivr"] == "main"
    assert data.headers["variable_current_application"] == "socket"
    if cap:
        ours, theirs = list(data.headers), list(cap[0]["headers"])
        assert ours[-4:] == theirs[-4:]  # Content-Type, Reply-Text, Socket-Mode, Control close the block
        # the same non-variable headers, in the same order, as the real FreeSWITCH's connect reply
        assert [k for k in ours if not k.startswith("variable_")] == \
            [k for k in theirs if not k.startswith("variable_")]
    assert c.reply("myevents").reply_text == "+OK Events Enabled"
    assert c.reply("myevents").reply_text == "-ERR aready enabled."
    assert c.reply("linger 5").reply_text == "+OK will linger 5 seconds"
    assert c.reply("divert_events on").reply_text == "+OK events diverted"
    assert c.reply("getvar dialer_ivr").reply_text == "main"
    assert execute(c, "answer").reply_text == "+OK"
    ev = until_event(c, "CHANNEL_EXECUTE_COMPLETE", "answer")
    assert ev["Answer-State"] == "answered" and ev["Application-Response"] == "_none_"
    execute(c, "playback", "tone_stream://%(500,0,440)")
    ev = until_event(c, "CHANNEL_EXECUTE_COMPLETE", "playback")
    assert ev["Application-Response"] == "FILE PLAYED" and ev["variable_playback_ms"] == "500"
    execute(c, "play_and_get_digits",
            "1 1 1 1000 # tone_stream://%(100,0,350) silence_stream://250 dialer_digit \\d")
    ev = until_event(c, "CHANNEL_EXECUTE_COMPLETE", "play_and_get_digits")
    assert ev["variable_read_result"] == "failure"  # nobody pressed anything: timed out, like the capture
    execute(c, "set", "dialer_proxy_token=abc123")
    ev = until_event(c, "CHANNEL_EXECUTE_COMPLETE", "set")
    assert ev["variable_dialer_proxy_token"] == "abc123"
    execute(c, "hangup", "NORMAL_CLEARING")
    names = []
    while True:
        frame = c.read_frame()
        if frame.content_type == "text/disconnect-notice":
            break
        names.append(parse_event(frame).name)
    assert names[:2] == ["CHANNEL_EXECUTE", "CHANNEL_HANGUP"]
    assert names[-1] == "CHANNEL_HANGUP_COMPLETE" or names[-2] == "CHANNEL_HANGUP_COMPLETE"
    assert "CHANNEL_UNPARK" in names and names.count("CHANNEL_STATE") == 2
    assert frame.headers["Content-Disposition"] == "linger" and frame.headers["Linger-Time"] == "5"
    assert frame.headers["Controlled-Session-UUID"] == uuid
    final = c.read_until(lambda f: f.content_type == "text/disconnect-notice", timeout=5)
    assert final.headers["Content-Disposition"] == "disconnect"
    assert final.text.startswith("Disconnected, goodbye.")
    assert c.read_frame() is None


def test_r2_caller_presses_digits_and_is_bridged_to_agent(sim, app_server):
    _, accepted = app_server
    sim.add_user("1001", answer_after_s=0.2)
    uuid = sim.inbound_call("7000", "15551230002", dtmf="2#", talk_s=2)
    c = RawEslClient("127.0.0.1", 0, sock=accepted.get(timeout=5))
    c.command("connect")
    c.read_frame()
    c.reply("myevents")
    execute(c, "answer")
    execute(c, "play_and_get_digits", "1 1 3 2000 # ivr/menu.wav ivr/invalid.wav choice \\d")
    ev = until_event(c, "CHANNEL_EXECUTE_COMPLETE", "play_and_get_digits")
    assert ev["variable_choice"] == "2" and ev["variable_read_result"] == "success"
    assert sim.channels[uuid].dtmf_sent == ["2", "#"]
    execute(c, "bridge", "{dialer_agent=1001}user/1001")
    bridge = until_event(c, "CHANNEL_BRIDGE")
    assert bridge["Bridge-A-Unique-ID"] == uuid
    assert sim.channels[bridge["Bridge-B-Unique-ID"]].variables["dialer_agent"] == "1001"
    # the caller talks 2 simulated seconds after the bridge, then hangs up
    until_event(c, "CHANNEL_HANGUP_COMPLETE", timeout=5)
    assert c.read_until(lambda f: f.content_type == "text/disconnect-notice").headers["Content-Disposition"] \
        == "disconnect"


def test_r3_app_disconnect_ends_socket_app_and_call(sim, app_server):
    _, accepted = app_server
    uuid = sim.inbound_call("7000", "15551230003")
    c = RawEslClient("127.0.0.1", 0, sock=accepted.get(timeout=5))
    c.command("connect")
    c.read_frame()
    assert c.reply("nolinger").reply_text == "+OK will not linger"
    c.close()  # the app goes away: the socket app returns, the dialplan ends, FreeSWITCH hangs up
    assert wait_until(lambda: uuid not in sim.channels, 3)
    assert sim.history_of(uuid).hangup_cause == "NORMAL_CLEARING"


def test_r4_greenswitch_outbound_session(sim, app_server):
    _, accepted = app_server
    uuid = sim.inbound_call("7000", "15551230004", dtmf="7")
    session = OutboundSession(("127.0.0.1", 0), accepted.get(timeout=5))
    session.connect()
    assert session.uuid == uuid and session.caller_id_number == "15551230004"
    session.myevents()
    session.answer()
    session.playback("tone_stream://%(300,0,440)", block=True)
    session.hangup()
    assert wait_until(lambda: uuid not in sim.channels, 3)
    session.stop()
    assert [p.file for p in sim.history_of(uuid).playbacks] == ["tone_stream://%(300,0,440)"]


def test_r5_socket_refused_hangs_up(sim):
    sim.dialplan = {**sim.dialplan, "7001": [("socket", "127.0.0.1:1 async full")]}
    uuid = sim.inbound_call("7001", "15551230005")
    assert wait_until(lambda: uuid not in sim.channels, 7)


def test_r6_static_socket_sendmsg_replies_after_the_app(sim, app_server):
    server, accepted = app_server
    sim.dialplan = {**sim.dialplan, "7002": [("socket", f"127.0.0.1:{server.server_port}")]}  # static
    uuid = sim.inbound_call("7002", "15551230006")
    c = RawEslClient("127.0.0.1", 0, sock=accepted.get(timeout=5))
    c.command("connect")
    assert c.read_frame().headers["Socket-Mode"] == "static"
    execute(c, "answer")
    import time

    started = time.monotonic()
    reply = execute(c, "playback", "silence_stream://4000")  # 4 simulated s = 0.2 real s
    assert reply.reply_text == "+OK" and time.monotonic() - started >= 0.15
    assert [p.status for p in sim.channels[uuid].playbacks] == ["done"]
    c.send(encode_sendmsg(None, {"call-command": "execute", "execute-app-name": "playback",
                                 "execute-app-arg": "silence_stream://100000", "async": "true"}))
    started = time.monotonic()
    assert c.read_until(lambda f: f.content_type == "command/reply").reply_text == "+OK"
    assert time.monotonic() - started < 1.0  # async: true replies at once
    c.send(encode_sendmsg(uuid, {"call-command": "hangup", "hangup-cause": "USER_BUSY"}))
    assert wait_until(lambda: uuid not in sim.channels, 5)
    assert sim.history_of(uuid).hangup_cause == "USER_BUSY"


def test_r7_sendmsg_loops_event_uuid_export_read_record(sim, app_server):
    _, accepted = app_server
    uuid = sim.inbound_call("7000", "15551230007", dtmf="42#")
    c = RawEslClient("127.0.0.1", 0, sock=accepted.get(timeout=5))
    c.command("connect")
    c.read_frame()
    c.reply("myevents")
    execute(c, "answer")
    c.send(encode_sendmsg(None, {"call-command": "execute", "execute-app-name": "playback",
                                 "execute-app-arg": "tone_stream://%(100,0,440)", "loops": "2",
                                 "event-uuid": "aaaaaaaa-0000-0000-0000-000000000001"}))
    evs = [until_event(c, "CHANNEL_EXECUTE_COMPLETE", "playback") for _ in range(2)]
    assert {e["Application-UUID"] for e in evs} == {"aaaaaaaa-0000-0000-0000-000000000001"}
    execute(c, "read", "1 3 ivr/enter.wav entered 2000 #")
    assert until_event(c, "CHANNEL_EXECUTE_COMPLETE", "read")["variable_entered"] == "42"
    execute(c, "export", "dialer_lead=7")
    assert until_event(c, "CHANNEL_EXECUTE_COMPLETE", "export")["variable_dialer_lead"] == "7"
    execute(c, "record_session", "/tmp/call.wav")
    assert until_event(c, "CHANNEL_EXECUTE_COMPLETE", "record_session")
    c.send(encode_sendmsg(None, {"call-command": "execute", "execute-app-name": "set"}, body="dialer_note=a b"))
    assert until_event(c, "CHANNEL_EXECUTE_COMPLETE", "set")["variable_dialer_note"] == "a b"
    execute(c, "transfer", "set:dialer_x=1,hangup:NORMAL_CLEARING inline")
    assert wait_until(lambda: uuid not in sim.channels, 5)
    hist = sim.history_of(uuid)
    assert hist.recordings == ["/tmp/call.wav"] and hist.variables["dialer_x"] == "1"
    assert [p.file for p in hist.playbacks][:2] == ["tone_stream://%(100,0,440)"] * 2


@pytest.mark.skipif(not CAPTURES.exists(), reason="captures not available")
def test_r1_outbound_session_events_match_capture(sim, app_server):
    """The b_outbound session replayed: same events, applications and header names, in order."""
    _, accepted = app_server
    cap = [json.loads(line) for line in (CAPTURES / "b_outbound.jsonl").open()]
    theirs = [d["event"] for d in cap if "event" in d]
    g = gevent.spawn(sim.api.run, "originate",
                     "{origination_caller_id_number=15551230001,dialer_ivr=main}loopback/7000 &park()")
    c = RawEslClient("127.0.0.1", 0, sock=accepted.get(timeout=5))
    c.command("connect")
    c.read_frame()
    ours = []

    def step(line: str | None = None, until: tuple[str, str | None] | None = None, *, msg=None):
        if line is not None:
            c.reply(line)
        if msg is not None:
            c.send(encode_sendmsg(None, msg))
        while until is not None:
            frame = c.read_frame()
            if frame.content_type == "command/reply":
                continue
            if frame.content_type == "text/disconnect-notice":
                return frame
            ev = parse_event(frame)
            ours.append(dict(ev.headers))
            if (ev.name, ev.get("Application")) == until:
                return frame

    def app(name, arg=None):
        msg = {"call-command": "execute", "execute-app-name": name}
        if arg is not None:
            msg["execute-app-arg"] = arg
        return msg

    step("myevents")
    step("linger 5")
    step(msg=app("answer"), until=("CHANNEL_EXECUTE_COMPLETE", "answer"))
    step(msg=app("playback", "tone_stream://%(500,0,440)"), until=("CHANNEL_EXECUTE_COMPLETE", "playback"))
    step(msg=app("play_and_get_digits",
                 "1 1 1 1000 # tone_stream://%(100,0,350) silence_stream://250 dialer_digit \\d"),
         until=("CHANNEL_EXECUTE_COMPLETE", "play_and_get_digits"))
    step(msg=app("set", "dialer_proxy_token=abc123"), until=("CHANNEL_EXECUTE_COMPLETE", "set"))
    notice = step(msg=app("hangup", "NORMAL_CLEARING"), until=("never", None))
    assert notice.headers["Content-Disposition"] == "linger"
    g.join(timeout=5)
    # the socket app parks 20 ms after `connect`: f_outbound_break (myevents sent at once) shows that
    # CHANNEL_PARK, b_outbound (the park won the race against myevents) does not
    assert ours[0]["Event-Name"] == "CHANNEL_PARK"
    ours = ours[1:]
    assert [(e["Event-Name"], e.get("Application")) for e in ours] == \
        [(e["Event-Name"], e.get("Application")) for e in theirs]
    for mine, real in zip(ours, theirs):
        assert [k for k in mine if not k.startswith("variable_")] == \
            [k for k in real if not k.startswith("variable_")], real["Event-Name"]

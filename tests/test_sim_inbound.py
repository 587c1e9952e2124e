"""X2: the simulated switch's inbound event socket, driven over real TCP.

Raw frames (our sans-IO client) where the wire shape matters, greenswitch's
InboundESL where a real client library is the point.  Frames are compared
with the captures from a real FreeSWITCH 1.10.12.
"""
from __future__ import annotations

import json
from pathlib import Path

import gevent
import pytest
from greenswitch import InboundESL

from esl_dialer.esl import parse_event
from esl_dialer.sim import SimConfig, SimSwitch
from esl_dialer.sim.testing import RawEslClient, wait_until

CAPTURES = Path(__file__).resolve().parent / "esl-captures"


@pytest.fixture
def esl(sim):
    conn = InboundESL("127.0.0.1", sim.port, sim.password, timeout=5)
    conn.connect()
    conn.events = []
    conn.register_handle("*", conn.events.append)
    yield conn
    conn.stop()


def captured(name: str) -> list[dict]:
    path = CAPTURES / name
    if not path.exists():
        pytest.skip("captures not available")
    return [d for d in (json.loads(line) for line in path.open()) if "raw" in d]


def test_x2_greeting_and_auth_like_freeswitch(sim):
    c = RawEslClient("127.0.0.1", sim.port)
    greeting = c.read_frame()
    assert greeting.raw_headers == {"Content-Type": "auth/request"}
    assert c.reply("api status").reply_text == "-ERR command not found"  # not authenticated yet
    ok = c.reply("auth ClueCon")
    cap = captured("a_inbound.jsonl")
    assert dict(ok.raw_headers) == cap[1]["headers"]
    c.close()


def test_x2_wrong_password_is_refused_and_disconnected(sim):
    c = RawEslClient("127.0.0.1", sim.port)
    c.read_frame()
    assert c.reply("auth nope").reply_text == "-ERR invalid"
    notice = c.read_frame()
    assert notice.content_type == "text/disconnect-notice"
    assert notice.text.startswith("Disconnected, goodbye.")
    assert c.read_frame() is None  # closed


def test_x2_acl_rude_rejection():
    s = SimSwitch(SimConfig(acl=("10.",)), port=0).start()
    try:
        c = RawEslClient("127.0.0.1", s.port)
        frame = c.read_frame()
        assert frame.content_type == "text/rude-rejection"
        assert frame.text == "Access Denied, go away.\n"
        assert c.read_frame() is None
    finally:
        s.stop(timeout=2)


def test_x2_api_status_shape_matches_capture(raw):
    status = raw.reply("api status")
    cap = captured("a_inbound.jsonl")[2]
    assert status.content_type == "api/response"
    assert set(status.headers) == set(cap["headers"])
    ours, theirs = status.text.splitlines(), cap["body"].splitlines()
    assert len(ours) == len(theirs)
    assert ours[0].startswith("UP 0 years, ") and ours[1] == theirs[1]
    assert ours[2].endswith("session(s) since startup") and ours[-1] == theirs[-1]


def test_x2_unknown_commands(raw):
    api = raw.reply("api nosuchcommand")
    assert api.text == captured("a_inbound.jsonl")[3]["body"] == "-ERR nosuchcommand Command not found!\n"
    assert raw.reply("frobnicate").reply_text == "-ERR command not found"


def test_x2_event_subscription_replies(raw):
    assert raw.reply("event plain CHANNEL_CREATE BACKGROUND_JOB").reply_text == "+OK event listener enabled plain"
    assert raw.reply("event json CHANNEL_ANSWER").reply_text == "+OK event listener enabled json"
    assert raw.reply("event bogus").reply_text == "-ERR no keywords supplied"
    assert raw.reply("nixevent CHANNEL_ANSWER").reply_text == "+OK events nixed"
    assert raw.reply("filter Unique-ID abc").reply_text == "+OK filter added. [Unique-ID]=[abc]"
    assert raw.reply("filter delete Unique-ID abc").reply_text == "+OK filter deleted. [Unique-ID][abc]"
    assert raw.reply("noevents").reply_text == "+OK no longer listening for events"
    assert raw.reply("noevents").reply_text == "-ERR not listening for events"
    assert raw.reply("linger").reply_text == "-ERR not controlling a session"
    assert raw.reply("myevents 00000000-0000-0000-0000-000000000000 plain").reply_text == "-ERR invalid uuid"


def test_x2_exit_says_bye_then_disconnect_notice(raw):
    assert raw.reply("exit").reply_text == "+OK bye"
    notice = raw.read_frame()
    assert notice.content_type == "text/disconnect-notice"
    assert notice.headers["Content-Length"] == str(len(notice.body))
    assert raw.read_frame() is None


def test_x2_api_originate_error_and_bgapi_background_job(raw):
    assert raw.reply("event plain BACKGROUND_JOB").reply_text.startswith("+OK")
    assert raw.reply("api originate error/user_busy &park()").text == "-ERR USER_BUSY\n"
    reply = raw.reply("bgapi originate {origination_uuid=3970570d-366b-4f2a-8d75-0b7d7c130b05}error/no_answer &park()")
    job = reply.headers["Job-UUID"]
    assert reply.reply_text == f"+OK Job-UUID: {job}"
    cap = captured("a_inbound.jsonl")
    assert set(reply.raw_headers) == set(cap[6]["headers"])
    frame = raw.read_until(lambda f: f.content_type == "text/event-plain")
    event = parse_event(frame)
    assert event.name == "BACKGROUND_JOB" and event["Job-UUID"] == job
    assert event.body == "-ERR NO_ANSWER\n"
    assert event["Job-Command"] == "originate"
    assert event["Job-Command-Arg"] == "{origination_uuid=3970570d-366b-4f2a-8d75-0b7d7c130b05}error/no_answer &park()"
    assert list(event.headers)[:13] == list(cap[7]["event"])[:13]  # same global headers in the same order


def test_x2_bgapi_with_client_job_uuid(raw):
    raw.command("bgapi status\nJob-UUID: 11111111-2222-3333-4444-555555555555")
    reply = raw.read_frame()
    assert reply.headers["Job-UUID"] == "11111111-2222-3333-4444-555555555555"


def test_x2_event_json_background_job_body(raw):
    raw.reply("event json BACKGROUND_JOB")
    raw.reply("bgapi originate error/user_busy &park()")
    frame = raw.read_until(lambda f: f.content_type == "text/event-json")
    obj = json.loads(frame.body)
    assert obj["Event-Name"] == "BACKGROUND_JOB" and obj["_body"] == "-ERR USER_BUSY\n"
    assert obj["Content-Length"] == "15"


def test_x2_events_wait_for_blocking_api_reply(raw, sim):
    """Like FreeSWITCH, events queued during `api originate` come after its api/response."""
    raw.reply("event plain ALL")
    raw.command("api originate loopback/9993 &park()")
    first = raw.read_until(lambda f: True)
    assert first.content_type == "api/response" and first.text.startswith("+OK ")
    nxt = raw.read_frame()
    assert parse_event(nxt).name == "CODEC"  # e_timing: a new loopback leg reports its codecs first
    sim.api.run("hupall", "")


def test_x2_greenswitch_client_full_call(sim, esl):
    esl.send("event plain ALL")
    sim.script("15551234567", "answer", ring_s=0.5, talk_s=2)
    reply = esl.send("api originate {origination_uuid=0ca359d5-03f9-41a5-a52d-5921e9ed5d28,dialer_record_id=42}"
                     "sofia/gateway/gw1/15551234567 &park()")
    assert reply.data == "+OK 0ca359d5-03f9-41a5-a52d-5921e9ed5d28\n"
    assert wait_until(lambda: any(e.headers.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE" for e in esl.events), 5)
    names = [e.headers["Event-Name"] for e in esl.events if e.headers.get("Unique-ID") == "0ca359d5-03f9-41a5-a52d-5921e9ed5d28"]
    # the state machine of an originated leg as e_timing shows it on loopback/..-a (switch_core_session_run,
    # switch_ivr_originate), then each callstate change reports itself
    assert names[:7] == ["CHANNEL_OUTGOING", "CHANNEL_STATE", "CHANNEL_CREATE", "CHANNEL_ORIGINATE", "CHANNEL_STATE",
                         "CHANNEL_STATE", "CHANNEL_PROGRESS"]
    assert names[7:10] == ["CHANNEL_CALLSTATE", "CHANNEL_ANSWER", "CHANNEL_CALLSTATE"]
    # e_timing: CHANNEL_STATE CS_DESTROY follows CHANNEL_DESTROY
    assert names[-3:] == ["CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY", "CHANNEL_STATE"]
    assert names.index("CHANNEL_HANGUP") < names.index("CHANNEL_HANGUP_COMPLETE")
    assert "CHANNEL_PARK" in names and "CHANNEL_EXECUTE" in names
    done = [e for e in esl.events if e.headers.get("Event-Name") == "CHANNEL_HANGUP_COMPLETE"][0].headers
    assert done["variable_dialer_record_id"] == "42"
    assert done["Hangup-Cause"] == "NORMAL_CLEARING" and done["variable_hangup_cause_q850"] == "16"
    assert int(done["variable_billsec"]) in (2, 3) and int(done["variable_duration"]) in (2, 3, 4)
    assert done["Caller-Destination-Number"] == "15551234567"


def test_x2_filter_limits_events(raw, sim):
    raw.reply("event plain CHANNEL_CREATE")
    raw.reply("filter Unique-ID 22222222-0000-0000-0000-000000000000")
    raw.reply("api originate loopback/9993 &park()")
    raw.reply("api originate {origination_uuid=22222222-0000-0000-0000-000000000000}loopback/9993 &park()")
    ev = parse_event(raw.read_until(lambda f: f.is_event))
    assert ev.unique_id == "22222222-0000-0000-0000-000000000000"
    sim.api.run("hupall", "")


def test_x2_myevents_uuid_only_that_channel(sim):
    sim.script("15550001111", "answer", ring_s=0.1, talk_s=60)
    uuid = sim.api.run("originate", "sofia/gateway/gw/15550001111 &park()").split()[1]
    c = RawEslClient("127.0.0.1", sim.port)
    c.auth()
    assert c.reply(f"myevents {uuid}").reply_text == "+OK Events Enabled"
    sim.api.run("originate", "loopback/9993 &park()")
    sim.api.run("uuid_kill", uuid)
    seen = set()
    while True:
        ev = parse_event(c.read_until(lambda f: f.is_event))
        seen.add(ev.unique_id)
        if ev.name == "CHANNEL_HANGUP_COMPLETE":
            break
    assert seen == {uuid}
    c.close()
    sim.api.run("hupall", "")


def test_x2_garbage_closes_only_that_connection(sim, raw):
    bad = RawEslClient("127.0.0.1", sim.port)
    bad.read_frame()
    bad.send(b"\x00\xff garbage without colon\nmore\n\n")
    frames = []
    while (f := bad.read_frame()) is not None:
        frames.append(f)
    assert frames and frames[-1].content_type == "text/disconnect-notice"
    huge = RawEslClient("127.0.0.1", sim.port)
    huge.read_frame()
    huge.send(b"auth ClueCon\n\napi status\nContent-Length: 999999999999\n\n")
    assert huge.read_frame().reply_text == "+OK accepted"
    while (f := huge.read_frame()) is not None:
        pass
    # the server and the other connection carry on
    assert raw.reply("api status").text.startswith("UP ")
    assert sim.api.run("status", "").startswith("UP ")


def test_x2_dropped_connection_leaves_channels_alive(sim):
    c = RawEslClient("127.0.0.1", sim.port)
    c.auth()
    c.reply("event plain ALL")
    uuid = c.reply("api originate loopback/9993 &park()").text.split()[1]
    c.sock.close()  # the client vanishes mid-call
    gevent.sleep(0.1)
    assert uuid in sim.channels and sim.channels[uuid].alive
    assert not sim.listeners or all(not l.closed for l in sim.listeners)
    c2 = RawEslClient("127.0.0.1", sim.port)
    c2.auth()
    assert c2.reply(f"api uuid_exists {uuid}").text == "true"
    assert c2.reply(f"api uuid_kill {uuid}").text == "+OK\n"
    assert wait_until(lambda: uuid not in sim.channels, 3)
    c2.close()


def test_x2_slow_listener_is_dropped_after_max_missed(sim, monkeypatch):
    from esl_dialer.sim import wire_listener as server

    monkeypatch.setattr(server, "MAX_QUEUE", 5)
    monkeypatch.setattr(server, "MAX_MISSED", 10)
    c = RawEslClient("127.0.0.1", sim.port)
    c.auth()
    c.reply("event plain ALL")
    listener = next(iter(sim.listeners))
    # fired back to back without yielding: the listener's greenlet cannot write in between
    for _ in range(30):
        sim.fire("CUSTOM", [("Event-Subclass", "sim::test")], subclass="sim::test")
    assert listener.lost_total == 11 and listener.killed
    assert wait_until(lambda: listener.closed, 3)
    c.close()


def test_x2_heartbeat_every_period():
    s = SimSwitch(SimConfig(heartbeat_s=0.05), port=0).start()
    try:
        c = RawEslClient("127.0.0.1", s.port)
        c.auth()
        c.reply("event plain HEARTBEAT")
        ev = parse_event(c.read_until(lambda f: f.is_event, timeout=3))
        assert ev.name == "HEARTBEAT" and ev["Event-Info"] == "System Ready"
        assert {"Up-Time", "Session-Count", "Max-Sessions", "FreeSWITCH-Version"} <= set(ev.headers)
        c.close()
    finally:
        s.stop(timeout=2)


def test_x2_nixevent_and_custom_subclasses(raw, sim):
    raw.reply("event plain ALL")
    raw.reply("nixevent CHANNEL_CREATE")
    raw.reply("api originate loopback/9993 &park()")
    names = set()
    while "CHANNEL_PARK" not in names:
        names.add(parse_event(raw.read_until(lambda f: f.is_event)).name)
    assert "CHANNEL_CREATE" not in names and "CHANNEL_OUTGOING" in names
    raw.reply("noevents")
    raw.reply("event plain CUSTOM sim::wanted")
    sim.fire("CUSTOM", [("Event-Subclass", "sim::other")], subclass="sim::other")
    sim.fire("CUSTOM", [("Event-Subclass", "sim::wanted")], subclass="sim::wanted")
    ev = parse_event(raw.read_until(lambda f: f.is_event))
    assert ev.subclass == "sim::wanted"
    assert raw.reply("sendevent CUSTOM\nEvent-Subclass: sim::wanted\nx: 1").reply_text.startswith("+OK ")
    assert parse_event(raw.read_until(lambda f: f.is_event))["x"] == "1"
    sim.api.run("hupall", "")


def test_x2_variable_names_cannot_break_framing(raw, sim):
    uuid = raw.reply("api originate {a:b=1,good=2}loopback/9993 &park()").text.split()[1]
    assert raw.reply(f"api uuid_getvar {uuid} good").text == "2"
    assert raw.reply(f"api uuid_setvar {uuid} bad:name x").text == "-ERR invalid variable name\n"
    raw.reply("event plain CHANNEL_EXECUTE_COMPLETE")
    raw.send(f"sendmsg {uuid}\ncall-command: execute\nexecute-app-name: set\ncontent-length: 9\n\nx\ny=1 z=2")
    assert raw.read_until(lambda f: f.content_type == "command/reply").reply_text == "+OK"
    ev = parse_event(raw.read_until(lambda f: f.is_event))
    assert ev["Application"] == "set" and ev["Unique-ID"] == uuid
    assert not any("\n" in k for k in ev.headers)
    raw.reply(f"api uuid_kill {uuid}")


def test_x2_show_channels_text_and_log(raw, sim):
    # mod_commands.c show_function: "%s%u total.%s"; no rows as json: "{\"row_count\": 0}\n"
    assert raw.reply("api show channels").text == "\n0 total.\n"
    assert raw.reply("api show channels as json").text == '{"row_count": 0}\n'
    raw.reply("api originate loopback/9993 &park()")
    text = raw.reply("api show channels").text
    assert text.startswith("uuid,direction,created,") and text.endswith("\n\n2 total.\n")
    assert raw.reply("log info").reply_text == "+OK log level info [6]"  # switch_log_str2level
    assert raw.reply("api create_uuid").text.count("-") == 4
    sim.api.run("hupall", "")


from hypothesis import HealthCheck, given, settings  # noqa: E402
from hypothesis import strategies as st  # noqa: E402


@settings(max_examples=25, deadline=None, suppress_health_check=[HealthCheck.function_scoped_fixture])
@given(st.lists(st.binary(min_size=1, max_size=300), min_size=1, max_size=5))
def test_x2_fuzz_server_survives_any_bytes(sim, chunks):
    c = RawEslClient("127.0.0.1", sim.port, timeout=2)
    try:
        c.read_frame()
        c.send(b"auth ClueCon\n\n")
        for chunk in chunks:
            c.send(chunk)
    except OSError:
        pass  # the server may close on garbage; that is allowed
    finally:
        c.close()
    check = RawEslClient("127.0.0.1", sim.port)
    assert check.auth().reply_text == "+OK accepted"
    assert check.reply("api status").text.startswith("UP ")
    check.close()


def test_x2_every_command_through_greenswitch(sim, esl):
    """The command set driven by greenswitch's InboundESL, reply texts as FreeSWITCH's."""
    sim.add_user("1001", answer_after_s=0.1)
    assert esl.send("event plain ALL").headers["Reply-Text"] == "+OK event listener enabled plain"
    assert esl.send("filter Event-Name CHANNEL_ANSWER").headers["Reply-Text"].startswith("+OK filter added.")
    assert esl.send("filter delete all").headers["Reply-Text"].startswith("+OK filter deleted.")
    assert esl.send("nixevent HEARTBEAT").headers["Reply-Text"] == "+OK events nixed"
    a = esl.send("api originate {origination_uuid=" + "a" * 8 + "-0000-0000-0000-000000000001}loopback/9993 &park()")
    ua = a.data.split()[1]
    ub = esl.send("api originate user/1001 &park()").data.split()[1]
    assert esl.send(f"api uuid_bridge {ua} {ub}").data == f"+OK {ub}\n"
    # as on FreeSWITCH, broadcast once CHANNEL_BRIDGE is in (earlier it fails: PLAYBACK ERROR)
    assert wait_until(lambda: any(e.headers.get("Event-Name") == "CHANNEL_BRIDGE" for e in esl.events), 2)
    assert esl.send(f"api uuid_broadcast {ua} tone_stream://%(100,0,440) bleg").data == "+OK Message sent\n"
    assert wait_until(lambda: any(e.headers.get("Event-Name") == "PLAYBACK_START" for e in esl.events), 2)
    assert esl.send(f"api uuid_break {ub} all").data == "+OK\n"
    assert esl.send(f"api uuid_setvar {ua} k v").data == "+OK\n"
    assert esl.send(f"api uuid_getvar {ua} k").data == "v"
    assert esl.send(f"api uuid_getvar {ua} nope").data == "_undef_"
    assert esl.send(f"api uuid_exists {ua}").data == "true"
    assert esl.send(f"api uuid_answer {ua}").data == "+OK\n"
    assert esl.send(f"api uuid_record {ua} start /tmp/x.wav").data == "+OK Success\n"
    assert esl.send(f"api uuid_record {ua} stop /tmp/x.wav").data == "+OK Success\n"
    assert esl.send(f"api uuid_send_dtmf {ub} 5").data == f"+OK {ub} sent DTMF 5.\n"
    assert esl.send("api show calls as json").data.startswith('{"row_count":')
    assert esl.send(f"api uuid_transfer {ub} 9990").data == "+OK\n"
    job = esl.send("bgapi status").headers["Job-UUID"]
    assert wait_until(lambda: any(e.headers.get("Job-UUID") == job for e in esl.events), 3)
    # transferring one leg of a bridge hangs the other up (FreeSWITCH's default)
    assert wait_until(lambda: ua not in sim.channels, 3)
    assert esl.send(f"api uuid_kill {ua} USER_BUSY").data == "-ERR No such channel!\n"
    assert wait_until(lambda: not sim.channels, 5)  # ub ran 9990: answer, sleep, hang up
    assert esl.send("api hupall").data == "+OK hangup all channels with cause MANAGER_REQUEST\n"
    names = {e.headers.get("Event-Name") for e in esl.events}
    assert {"CHANNEL_BRIDGE", "CHANNEL_UNBRIDGE", "PLAYBACK_START", "PLAYBACK_STOP", "RECORD_START",
            "RECORD_STOP", "DTMF", "BACKGROUND_JOB", "CHANNEL_HANGUP_COMPLETE"} <= names
    assert "HEARTBEAT" not in names
    assert esl.send("noevents").headers["Reply-Text"] == "+OK no longer listening for events"

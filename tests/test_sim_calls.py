"""X2, D2-D8: calls in the simulated switch -- originate, bridge, broadcast, variables, kill.

Driven over TCP with the raw client (frames as sent) and checked against the
switch state (``sim.channels`` / ``sim.history``).  time_scale 0.05 keeps
simulated seconds short.
"""
from __future__ import annotations

import json
import wave
from pathlib import Path

import pytest

from esl_dialer.esl import parse_event
from esl_dialer.sim import SimConfig, SimSwitch
from esl_dialer.sim.testing import RawEslClient, wait_until

CAPTURES = Path(__file__).resolve().parent / "esl-captures"
U1 = "14bb429e-32b0-42a7-9c85-99098dfb9f74"
U2 = "e8c67330-833a-4aaf-9034-8bcd6ac684b8"


@pytest.fixture
def sim():
    s = SimSwitch(SimConfig(time_scale=0.05, playback_default_s=2.0), port=0).start()
    yield s
    s.stop(timeout=2)


@pytest.fixture
def c(sim):
    client = RawEslClient("127.0.0.1", sim.port)
    client.auth()
    yield client
    client.close()


def api(c: RawEslClient, line: str) -> str:
    return c.reply(f"api {line}").text


def events_until(c: RawEslClient, name: str, uuid: str | None = None, timeout: float = 5.0) -> list:
    out = []
    while True:
        ev = parse_event(c.read_until(lambda f: f.is_event, timeout))
        out.append(ev)
        if ev.name == name and (uuid is None or ev.unique_id == uuid):
            return out


def test_d2_originate_results_like_freeswitch(sim, c):
    sim.script("15550000001", "busy", ring_s=0.5)
    sim.script("15550000002", "no_answer")
    sim.script("15550000003", "failed", ring_s=0.2)
    sim.script("15550000004", "failed", ring_s=0.2, cause="UNALLOCATED_NUMBER")
    assert api(c, "originate sofia/gateway/gw1/15550000001 &park()") == "-ERR USER_BUSY\n"
    assert api(c, "originate {originate_timeout=2}sofia/gateway/gw1/15550000002 &park()") == "-ERR NO_ANSWER\n"
    assert api(c, "originate sofia/gateway/gw1/15550000003 &park()") == "-ERR NORMAL_TEMPORARY_FAILURE\n"
    assert api(c, "originate sofia/gateway/gw1/15550000004 &park()") == "-ERR UNALLOCATED_NUMBER\n"
    assert api(c, "originate error/user_busy &park()") == "-ERR USER_BUSY\n"
    assert api(c, "originate foo/bar &park()") == "-ERR CHAN_NOT_IMPLEMENTED\n"
    assert api(c, "originate").startswith("-USAGE: <call url>")
    assert api(c, "originate loopback/9992 &park()") == "-ERR USER_BUSY\n"
    assert api(c, "originate loopback/nosuch &park()") == "-ERR NO_ROUTE_DESTINATION\n"
    assert api(c, "originate user/9999 &park()") == "-ERR SUBSCRIBER_ABSENT\n"
    sim.add_user("1002", registered=False)
    assert api(c, "originate user/1002 &park()") == "-ERR USER_NOT_REGISTERED\n"
    assert not sim.channels


def test_d2_ring_longer_than_originate_timeout_is_no_answer(sim, c):
    sim.script("15550000005", "answer", ring_s=10)
    assert api(c, "originate {originate_timeout=1}sofia/gateway/gw1/15550000005 &park()") == "-ERR NO_ANSWER\n"


def test_d2_variables_on_every_leg_event(sim, c):
    c.reply("event plain CHANNEL_CREATE CHANNEL_ANSWER")
    sim.script("15550000006", "answer", ring_s=0.2, talk_s=60)
    reply = api(c, "originate {origination_uuid=" + U1 + ",dialer_campaign=demo,note='a, b'}"
                   "[dialer_record_id=42]sofia/gateway/gw1/15550000006 &park()")
    assert reply == f"+OK {U1}\n"
    evs = events_until(c, "CHANNEL_ANSWER", U1)
    create = next(e for e in evs if e.name == "CHANNEL_CREATE")
    for ev in (create, evs[-1]):
        assert ev["variable_dialer_campaign"] == "demo"
        assert ev["variable_dialer_record_id"] == "42"
        assert ev["variable_note"] == "a, b"
        assert ev["variable_origination_uuid"] == U1
        assert ev["Unique-ID"] == ev["Channel-Call-UUID"] == U1
        assert ev["Call-Direction"] == "outbound"
        assert ev["Caller-Destination-Number"] == "15550000006"
    assert evs[-1]["Answer-State"] == "answered"
    assert api(c, f"uuid_getvar {U1} dialer_record_id") == "42"
    api(c, f"uuid_kill {U1}")


def test_d2_early_media_counts_as_success_unless_ignored(sim, c):
    sim.script("15550000007", "answer", ring_s=5, early_media=True)
    c.reply("event plain CHANNEL_PROGRESS_MEDIA CHANNEL_ANSWER")
    reply = api(c, "originate sofia/gateway/gw1/15550000007 &park()")
    assert reply.startswith("+OK ")
    uuid = reply.split()[1]
    assert not sim.channels[uuid].answered  # +OK before any CHANNEL_ANSWER
    sim.script("15550000008", "answer", ring_s=0.5, early_media=True)
    reply = api(c, "originate {ignore_early_media=true}sofia/gateway/gw1/15550000008 &park()")
    assert sim.channels[reply.split()[1]].answered
    api(c, "hupall")


def test_r1_bridge_broadcast_both_legs_and_kill(sim, c):
    c.reply("event plain ALL")
    assert api(c, "originate {origination_uuid=" + U1 + "}loopback/9993 &park()") == f"+OK {U1}\n"
    assert api(c, "originate {origination_uuid=" + U2 + "}loopback/9993 &park()") == f"+OK {U2}\n"
    assert api(c, f"uuid_bridge {U1} {U2}") == f"+OK {U2}\n"
    evs = events_until(c, "CHANNEL_BRIDGE")
    bridge = evs[-1]
    assert bridge["Bridge-A-Unique-ID"] == U1 and bridge["Bridge-B-Unique-ID"] == U2
    assert bridge["Other-Leg-Unique-ID"] == U2 and bridge["Other-Type"] == "originatee"
    seen = [parse_event(f) for f in c.frames if f.is_event]
    u1 = [(e.name, e.get("Application")) for e in seen if e.unique_id == U1]
    # like the capture: park completes, then uuid_bridge executes, then CHANNEL_BRIDGE
    assert u1.index(("CHANNEL_EXECUTE_COMPLETE", "park")) < u1.index(("CHANNEL_EXECUTE", "uuid_bridge")) \
        < u1.index(("CHANNEL_BRIDGE", None))
    assert api(c, f"uuid_broadcast {U1} tone_stream://%(500,0,440) both") == "+OK Message sent\n"
    evs = []
    while sum(1 for e in evs if e.name == "CHANNEL_EXECUTE_COMPLETE" and e.get("Application") == "playback") < 2:
        evs.append(parse_event(c.read_until(lambda f: f.is_event)))
    starts = {e.unique_id for e in evs if e.name == "PLAYBACK_START"}
    stops = {e.unique_id: e for e in evs if e.name == "PLAYBACK_STOP"}
    assert starts == set(stops) == {U1, U2}
    assert stops[U1]["Playback-File-Path"] == "tone_stream://%(500,0,440)"
    assert stops[U1]["Playback-Status"] == "done" and stops[U1]["variable_playback_ms"] == "500"
    assert [p.file for p in sim.channels[U2].playbacks] == ["tone_stream://%(500,0,440)"]
    assert api(c, f"uuid_getvar {U1} dialer_missing_var") == "_undef_"
    assert api(c, f"uuid_setvar {U1} dialer_agent 1001") == "+OK\n"
    assert api(c, f"uuid_getvar {U1} dialer_agent") == "1001"
    assert api(c, f"uuid_exists {U1}") == "true"
    shown = json.loads(api(c, "show channels as json"))
    assert shown["row_count"] == 4
    if CAPTURES.exists():
        cap = next(json.loads(line) for line in (CAPTURES / "a_inbound.jsonl").open()
                   if '"sent": "api show channels as json"' in line)
        assert list(shown["rows"][0]) == list(json.loads(cap["body"])["rows"][0])
        assert api(c, "show channels as json").startswith('{"row_count":4,"rows":[{"uuid":')
    assert api(c, f"uuid_kill {U1}") == "+OK\n"
    events_until(c, "CHANNEL_HANGUP_COMPLETE", U2)
    assert api(c, f"uuid_exists {U1}") == "false"
    assert api(c, "uuid_kill 00000000-0000-0000-0000-000000000000") == "-ERR No such channel!\n"
    assert wait_until(lambda: not sim.channels, 3)
    hist = sim.history_of(U1)
    assert [k for _, k, _ in hist.log].count("bridge") == 1 and hist.hangup_cause == "NORMAL_CLEARING"


def test_r1_bridge_errors_and_hupall(sim, c):
    assert api(c, f"uuid_bridge {U1} {U2}") == f"-ERR Invalid uuid {U1}\n"
    api(c, "originate loopback/9993 &park()")
    api(c, "originate {dialer_campaign=x}loopback/9993 &park()")
    assert len(sim.channels) == 4
    assert api(c, "hupall NORMAL_CLEARING dialer_campaign x") == \
        "+OK hangup all channels matching [dialer_campaign]=[x] with cause NORMAL_CLEARING\n"
    assert wait_until(lambda: len(sim.channels) == 2, 3)
    assert api(c, "hupall NORMAL_CLEARING") == "+OK hangup all channels with cause NORMAL_CLEARING\n"
    assert wait_until(lambda: not sim.channels, 3)


def test_d4_agent_phone_bridge_app_and_hangup_after_talk(sim, c):
    sim.add_user("1001", answer_after_s=0.3)
    sim.script("15550000009", "answer", ring_s=0.2, talk_s=3)
    c.reply("event plain CHANNEL_BRIDGE CHANNEL_UNBRIDGE CHANNEL_HANGUP_COMPLETE")
    reply = api(c, "originate {origination_uuid=" + U1 + "}sofia/gateway/gw1/15550000009 &bridge(user/1001)")
    assert reply == f"+OK {U1}\n"
    bridge = events_until(c, "CHANNEL_BRIDGE")[-1]
    agent = bridge["Bridge-B-Unique-ID"]
    assert bridge["Bridge-A-Unique-ID"] == U1 and sim.history_of(agent).name.startswith("sofia/internal/1001")
    evs = events_until(c, "CHANNEL_HANGUP_COMPLETE", agent)
    done = next(e for e in evs if e.name == "CHANNEL_HANGUP_COMPLETE" and e.unique_id == U1)
    leg = sim.history_of(U1)
    assert leg.hangup_at - leg.bridged_at == pytest.approx(3.0, abs=0.6)  # talked 3 s after the bridge
    assert int(done["variable_billsec"]) in (3, 4) and done["variable_bridge_epoch"] != "0"
    assert done["variable_bridge_uuid"] == agent


def test_d3_hangup_while_waiting_and_machine(sim, c):
    sim.script("15550000010", "hangup_while_waiting", ring_s=0.2, talk_s=1)
    uuid = api(c, "originate sofia/gateway/gw1/15550000010 &park()").split()[1]
    assert wait_until(lambda: uuid not in sim.channels, 3)
    assert sim.history_of(uuid).answered and sim.history_of(uuid).hangup_cause == "NORMAL_CLEARING"
    sim.script("15550000011", "machine", ring_s=0.2, talk_s=2)
    uuid = api(c, "originate sofia/gateway/gw1/15550000011 &amd()").split()[1]
    assert wait_until(lambda: sim.history_of(uuid).variables.get("amd_result") == "MACHINE", 3)


def test_x2_sim_script_over_esl(sim, c):
    assert api(c, "sim_script 15550000012 busy 0.1 0") == "+OK\n"
    assert api(c, "originate sofia/gateway/gw1/15550000012 &park()") == "-ERR USER_BUSY\n"
    assert api(c, "sim_script 15550000012 maybe 1 1").startswith("-USAGE: sim_script")
    assert api(c, "sim_user 2001 0.1") == "+OK\n"
    assert api(c, "originate user/2001 &park()").startswith("+OK ")
    api(c, "hupall")


def test_r2_transfer_break_answer_record_dtmf(sim, c, tmp_path):
    path = tmp_path / "hello.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\x00\x00" * 8000 * 4)  # 4 s
    sim.dialplan = {**sim.dialplan, "8000": [("answer", ""), ("playback", str(path)), ("park", "")]}
    c.reply("event plain PLAYBACK_START PLAYBACK_STOP DTMF RECORD_START CHANNEL_ANSWER")
    uuid = sim.inbound_call("8000", "15551112222", dtmf="")
    start = events_until(c, "PLAYBACK_START", uuid)[-1]
    assert start["Playback-File-Path"] == str(path)
    assert api(c, f"uuid_break {uuid}") == "+OK\n"
    stop = events_until(c, "PLAYBACK_STOP", uuid)[-1]
    assert stop["Playback-Status"] == "break"
    assert api(c, f"uuid_record {uuid} start /tmp/rec.wav") == "+OK Success\n"
    assert events_until(c, "RECORD_START", uuid)[-1]["Record-File-Path"] == "/tmp/rec.wav"
    assert api(c, f"uuid_send_dtmf {uuid} 1#") == f"+OK {uuid} sent DTMF 1#.\n"
    digits = [e["DTMF-Digit"] for e in events_until(c, "DTMF", uuid)]
    assert digits[-1] == "1"
    assert api(c, f"uuid_transfer {uuid} 9990 XML default") == "+OK\n"
    assert wait_until(lambda: uuid not in sim.channels, 5)  # 9990: answer, sleep 1 s, hang up
    log = [k for _, k, _ in sim.history_of(uuid).log]
    assert "transfer" in log and log[-1] == "hangup"
    assert sim.history_of(uuid).recordings == ["/tmp/rec.wav"]
    # a file that lasts 4 s plays 4 simulated seconds
    assert sim.apps.file_seconds(str(path)) == pytest.approx(4.0)
    assert sim.apps.file_seconds("/no/such.wav") == 2.0


def test_r2_uuid_answer_inbound_caller(sim, c):
    sim.dialplan = {**sim.dialplan, "8001": [("park", "")]}
    uuid = sim.inbound_call("8001", "15553334444")
    assert wait_until(lambda: sim.channels[uuid].state.name != "CS_NEW", 2)
    assert not sim.channels[uuid].answered
    assert api(c, f"uuid_answer {uuid}") == "+OK\n"
    assert sim.channels[uuid].answered
    calls = api(c, "show calls")
    assert uuid in calls and "total." in calls
    api(c, f"uuid_kill {uuid}")


def test_r3_eavesdrop_app(sim, c):
    target = api(c, "originate loopback/9993 &park()").split()[1]
    sim.add_user("3001", answer_after_s=0.1)
    spy = api(c, f"originate user/3001 &eavesdrop({target})").split()[1]
    assert wait_until(lambda: sim.channels.get(spy) is not None
                      and sim.channels[spy].current_app == "eavesdrop", 3)
    api(c, f"uuid_kill {target}")
    assert wait_until(lambda: spy not in sim.channels, 3)  # eavesdrop ends with its target


def test_d2_deterministic_with_seed():
    from esl_dialer.sim import NumberRule
    from esl_dialer.sim.config import Dist

    def outcomes(seed):
        s = SimSwitch(SimConfig(seed=seed, default_rule=NumberRule(
            rates={"answer": 0.5, "busy": 0.3, "no_answer": 0.2}, ring=Dist("uniform", 1, 8, 1, 8))), port=0)
        return [(p.outcome, round(p.ring_s, 6)) for p in (s._plan_for("1555", {}) for _ in range(50))]

    assert outcomes(7) == outcomes(7)
    assert outcomes(7) != outcomes(8)
    counts = {o for o, _ in outcomes(7)}
    assert counts == {"answer", "busy", "no_answer"}


def test_r1_uuid_transfer_both_setvar_multi_dump_and_history(sim, c):
    a = api(c, "originate loopback/9993 &park()").split()[1]
    b = api(c, "originate loopback/9993 &park()").split()[1]
    api(c, f"uuid_bridge {a} {b}")
    assert wait_until(lambda: sim.channels[a].bridged_to == b, 2)
    assert api(c, f"uuid_setvar_multi {a} x=1;y=2") == "+OK\n"
    dump = api(c, f"uuid_dump {a}")
    assert "variable_x: 1\n" in dump and f"Unique-ID: {a}\n" in dump
    sim.dialplan = {**sim.dialplan, "8100": [("park", "")]}
    assert api(c, f"uuid_transfer {a} -both 8100 XML default") == "+OK\n"
    assert wait_until(lambda: sim.channels[a].current_app == "park" and sim.channels[b].current_app == "park", 3)
    assert sim.channels[a].alive and sim.channels[b].alive and sim.channels[a].bridged_to is None
    assert api(c, "uuid_transfer nosuch 8100") == "-ERR No such channel!\n"
    notes = [d for _, kind, d in sim.channels[a].log if kind == "api"]
    assert notes[:2] == [f"uuid_bridge {a} {b}", f"uuid_setvar_multi {a} x=1;y=2"]
    api(c, "hupall")

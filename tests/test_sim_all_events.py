"""Under `event plain ALL` the simulated switch sends the events FreeSWITCH 1.10.12 sends (e_timing).

The state machine (CHANNEL_STATE for each state), the callstate changes
(CHANNEL_CALLSTATE), a new loopback leg's CODEC pair and CHANNEL_UUID,
CHANNEL_ORIGINATE, CALL_UPDATE at the caller-id flip and PRIVATE_COMMAND for a
queued message, per leg in the order the capture shows; and none of them is
built when no client asked for it.
"""
from __future__ import annotations

import time

import pytest

from esl_dialer.esl import parse_event
from esl_dialer.sim import SimConfig, SimSwitch
from esl_dialer.sim import model_switch
from esl_dialer.sim.testing import wait_until

A = "5869b8d5-a818-4a23-9e23-ebf8f1abc20d"

# e_timing, role 1-a (`originate {origination_uuid=...}loopback/9993 &park()`) up to CHANNEL_PARK
A_LEG = ["CODEC", "CODEC", "CHANNEL_UUID", "CHANNEL_OUTGOING", "CHANNEL_STATE CS_INIT", "CHANNEL_CREATE",
         "CHANNEL_ORIGINATE", "CHANNEL_STATE CS_ROUTING", "CHANNEL_STATE CS_CONSUME_MEDIA", "CHANNEL_ANSWER",
         "CHANNEL_CALLSTATE", "CALL_UPDATE", "CHANNEL_STATE CS_EXECUTE", "CHANNEL_EXECUTE park", "CHANNEL_PARK"]
# ... and its loopback partner, role 1-b (extension 9993: answer, park)
B_LEG = ["CODEC", "CODEC", "CHANNEL_STATE CS_INIT", "CHANNEL_CREATE", "CHANNEL_CALLSTATE",
         "CHANNEL_STATE CS_ROUTING", "CHANNEL_STATE CS_EXECUTE", "CHANNEL_EXECUTE answer", "CHANNEL_ANSWER",
         "CHANNEL_CALLSTATE", "CHANNEL_EXECUTE_COMPLETE answer", "CHANNEL_EXECUTE park", "CHANNEL_PARK"]
# ... and the end of both after uuid_kill of a parked (unbridged) pair
END = ["CHANNEL_STATE CS_HANGUP", "CHANNEL_CALLSTATE", "CHANNEL_STATE CS_REPORTING", "CHANNEL_HANGUP_COMPLETE",
       "CHANNEL_DESTROY", "CHANNEL_STATE CS_DESTROY"]


def key(ev) -> str:
    name = ev.name
    if name == "CHANNEL_STATE":
        return f"{name} {ev.get('Channel-State')}"
    if name.startswith("CHANNEL_EXECUTE"):
        return f"{name} {ev.get('Application')}"
    return name


@pytest.fixture
def sim():
    s = SimSwitch(SimConfig(time_scale=1.0), port=0).start()
    yield s
    s.stop(timeout=2)


def collect(raw, until, timeout: float = 5.0) -> list:
    out = []
    deadline = time.monotonic() + timeout
    while not until(out):
        frame = raw.read_frame(timeout=max(0.1, deadline - time.monotonic()))
        assert frame is not None, [key(e) for e in out]
        if frame.content_type == "text/event-plain":
            out.append(parse_event(frame))
    return out


def parked_pair(raw) -> tuple[list, str]:
    raw.reply("event plain ALL")
    raw.command(f"api originate {{origination_uuid={A}}}loopback/9993 &park()")
    events = collect(raw, lambda evs: sum(e.name == "CHANNEL_PARK" for e in evs) == 2)
    b = next(e.get("Unique-ID") for e in events if e.get("variable_loopback_leg") == "B")
    return events, b


def leg(events, uuid, first_uuid=None) -> list:
    return [e for e in events if e.get("Unique-ID") and e.get("Unique-ID") in (uuid, first_uuid)]


def test_a_loopback_pair_reports_its_state_machine_in_the_captured_order(raw):
    events, b = parked_pair(raw)
    first = next(e for e in events if e.name == "CHANNEL_UUID").get("Old-Unique-ID")
    assert [key(e) for e in leg(events, A, first)] == A_LEG
    assert [key(e) for e in leg(events, b)] == B_LEG
    raw.command(f"api uuid_kill {A}")
    ends = collect(raw, lambda evs: sum(e.name == "CHANNEL_STATE" and e.get("Channel-State") == "CS_DESTROY"
                                        for e in evs) == 2)
    for uuid in (A, b):
        assert [key(e) for e in leg(ends, uuid) if key(e) in END] == END


def test_codec_events_carry_the_legs_first_uuid_until_channel_uuid_renames_it(raw):
    events, _ = parked_pair(raw)
    codec_a = [e for e in events if e.name == "CODEC"][:2]
    renamed = next(e for e in events if e.name == "CHANNEL_UUID")
    assert renamed.get("Unique-ID") == A and renamed.get("Old-Unique-ID") != A
    assert {e.get("Unique-ID") for e in codec_a} == {renamed.get("Old-Unique-ID")}
    assert [h for h in codec_a[0].headers if h.startswith(("channel-", "Channel-W"))] == [
        "channel-read-codec-name", "channel-read-codec-rate", "channel-read-codec-bit-rate"]
    assert codec_a[1].get("Channel-Write-codec-bit-rate") == "128000"  # FreeSWITCH's odd duplicate name
    assert [e.get("Event-Calling-Function") for e in codec_a] == [
        "switch_core_session_set_read_codec", "switch_core_session_set_write_codec"]


def test_callstate_events_name_the_old_and_the_new_callstate(raw):
    events, b = parked_pair(raw)
    changes = [(e.get("Original-Channel-Call-State"), e.get("Channel-Call-State"), e.get("Channel-Call-State-Number"))
               for e in leg(events, b) if e.name == "CHANNEL_CALLSTATE"]
    assert changes == [("DOWN", "RINGING", "2"), ("RINGING", "ACTIVE", "4")]
    assert [(e.get("Original-Channel-Call-State"), e.get("Channel-Call-State"))
            for e in leg(events, A) if e.name == "CHANNEL_CALLSTATE"] == [("DOWN", "ACTIVE")]
    update = next(e for e in events if e.name == "CALL_UPDATE")
    assert update.get("Direction") == "RECV" and update.get("variable_channel_cid_flipped") == "yes"


def test_a_broadcast_reports_its_private_event_after_the_application_ran(raw):
    parked_pair(raw)
    raw.command(f"api uuid_broadcast {A} silence_stream://100")
    evs = collect(raw, lambda evs: any(e.name == "PRIVATE_COMMAND" for e in evs))
    mine = [key(e) for e in leg(evs, A)]
    assert mine == ["CHANNEL_EXECUTE playback", "PLAYBACK_START", "PLAYBACK_STOP", "CHANNEL_EXECUTE_COMPLETE playback",
                    "PRIVATE_COMMAND"], mine
    private = next(e for e in evs if e.name == "PRIVATE_COMMAND")
    names = list(private.headers)
    # switch_ivr_broadcast's message; no leg argument means SMF_HOLD_BLEG (e_timing, parked leg)
    assert names[names.index("Event-Sequence") + 1:names.index("Channel-State")] == [
        "call-command", "execute-app-name", "execute-app-arg", "event-lock", "lead-frames", "hold-bleg"]
    assert private.get("execute-app-arg") == "silence_stream://100"
    raw.command(f"api uuid_broadcast {A} silence_stream://100 aleg")
    evs = collect(raw, lambda evs: any(e.name == "PRIVATE_COMMAND" for e in evs))
    assert next(e for e in evs if e.name == "PRIVATE_COMMAND").get("hold-bleg") is None


def test_uuid_park_parks_on_the_next_media_frame_not_with_the_reply(raw):
    parked_pair(raw)
    raw.command(f"api uuid_park {A}")
    t_reply = None
    seen = {}
    deadline = time.monotonic() + 5
    while "CHANNEL_PARK" not in seen and time.monotonic() < deadline:
        frame = raw.read_frame()
        now = time.monotonic()
        if frame.content_type == "api/response":
            t_reply = now
        elif frame.content_type == "text/event-plain":
            ev = parse_event(frame)
            if ev.get("Unique-ID") == A and ev.name in ("CHANNEL_UNPARK", "CHANNEL_PARK"):
                seen[ev.name] = now
    assert t_reply is not None and set(seen) == {"CHANNEL_UNPARK", "CHANNEL_PARK"}
    assert 0.015 <= seen["CHANNEL_UNPARK"] - t_reply < 0.5  # e_timing: 20 ms (the old sim: 0)


def test_events_no_one_subscribed_to_are_not_built(sim, raw, monkeypatch):
    built = []
    real = model_switch.channel_headers
    monkeypatch.setattr(model_switch, "channel_headers", lambda ch, **kw: built.append(ch.uuid) or real(ch, **kw))
    raw.reply("event plain CHANNEL_ANSWER")
    raw.command(f"api originate {{origination_uuid={A}}}loopback/9993 &park()")
    answers = collect(raw, lambda evs: len(evs) == 2)
    assert [e.name for e in answers] == ["CHANNEL_ANSWER"] * 2
    assert wait_until(lambda: len(sim.channels) == 2, 2)
    assert len(built) == 2  # CODEC, CHANNEL_STATE, CALLSTATE, ORIGINATE, ... cost only a sequence number

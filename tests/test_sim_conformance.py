"""Conformance: every capture's command script, replayed against the simulator, gives frames of the same shape.

One test per ``*.script.json`` (see :mod:`conformance` for what "same shape"
means: replies, per-channel event order, header names, the README's timing
pairs).  Every capture must conform: any difference fails its test.
The scripts run in real time (time_scale 1) because timing is compared.
"""
from __future__ import annotations

import copy

import pytest

import conformance as conf


@pytest.mark.slow
@pytest.mark.parametrize("name", conf.script_names())
def test_replayed_capture_has_the_shape_of_the_real_switch(name):
    script, real = conf.load_capture(name)
    ours = conf.run_on_simulator(script, prelude=conf.PRELUDES.get(name))
    diffs = conf.compare(real, ours)
    assert not diffs, conf.report(name, diffs)


def test_every_script_has_its_capture_and_every_known_gap_names_one():
    scripts = {p.name[: -len(".script.json")] for d in conf.CAPTURE_DIRS if d.is_dir() for p in d.glob("*.script.json")}
    assert scripts == set(conf.script_names())  # a script without its .jsonl would be skipped silently
    assert {"a_inbound", "c_callcenter", "d_json", "e_timing", "f_outbound_break"} <= scripts  # vendored


# --- the harness itself finds what differs (no simulator needed) --------------------------------------
def _capture(name="a_inbound"):
    return copy.deepcopy(conf.load_capture(name)[1])


def test_a_capture_conforms_to_itself():
    for name in conf.script_names():
        frames = conf.load_capture(name)[1]
        assert conf.compare(frames, frames) == [], name


def test_a_missing_channel_event_is_an_order_difference():
    real, ours = _capture(), _capture()
    k = next(i for i, d in enumerate(ours) if (d.get("event") or {}).get("Event-Name") == "CHANNEL_ANSWER")
    del ours[k]
    diffs = conf.compare(real, ours)
    assert any("event order differs" in d for d in diffs)
    assert any("CHANNEL_ANSWER" in d and "sim []" in d for d in diffs)


def test_an_api_event_of_a_command_no_one_sent_is_another_clients_but_one_of_ours_counts():
    real, ours = _capture(), _capture()
    k = next(i for i, d in enumerate(ours) if (d.get("sent") or "").startswith("api uuid_exists"))

    def api_event(command):
        return {"t": ours[k]["t"], "headers": {"Content-Type": "text/event-plain"},
                "event": {"Event-Name": "API", "API-Command": command}}
    # e_timing has two such events (`status`, `show` at 1.9 s) that the capture's cleaning missed
    assert conf.compare(real, ours[:k + 1] + [api_event("hostname")] + ours[k + 1:]) == []
    diffs = conf.compare(real, ours[:k + 1] + [api_event("uuid_exists")] + ours[k + 1:])
    assert any(d.startswith("events without channel") for d in diffs)


def test_a_reply_with_another_first_token_or_newline_is_a_difference():
    real, ours = _capture(), _capture()
    for d in ours:
        if d.get("sent") == "api uuid_kill 00000000-0000-0000-0000-000000000000":
            d["body"] = "+OK\n"
        if (d.get("sent") or "").startswith("api uuid_getvar") and d["body"] == "_undef_":
            d["body"] = "_undef_\n"
    diffs = conf.compare(real, ours)
    assert any("uuid_kill <uuid>" in d and "first token real '-ERR' sim '+OK'" in d for d in diffs)
    assert any("uuid_getvar" in d and "trailing newline real False sim True" in d for d in diffs)


def test_a_renamed_or_reordered_header_is_a_difference():
    real, ours = _capture(), _capture()
    for d in ours:
        ev = d.get("event")
        if ev and ev.get("Event-Name") == "CHANNEL_BRIDGE":
            d["event"] = {("Other-Leg-UUID" if k == "Other-Leg-Unique-ID" else k): v for k, v in ev.items()}
    diffs = conf.compare(real, ours)
    assert "headers of CHANNEL_BRIDGE: missing ['Other-Leg-Unique-ID'] extra ['Other-Leg-UUID']" in diffs


def test_an_event_too_early_or_too_late_is_a_timing_difference():
    real, ours = _capture("a_inbound"), _capture("a_inbound")
    key = "uuid_bridge reply -> CHANNEL_BRIDGE (A)"
    assert key in conf.measure_timing(real)
    for d in ours:
        if (d.get("event") or {}).get("Event-Name") == "CHANNEL_BRIDGE":
            d["t"] -= 0.060  # at once after the reply, as a simulator without a media clock would
    assert any(d.startswith(f"timing {key}: real 61 ms") for d in conf.compare(real, ours))
    late = _capture("a_inbound")
    for d in late:
        if (d.get("event") or {}).get("Event-Name") == "CHANNEL_BRIDGE":
            d["t"] += 1.0
    assert any(d.startswith(f"timing {key}") for d in conf.compare(real, late))


def test_timing_bounds_are_the_captures_range_widened_for_a_loaded_machine():
    lo, hi = conf.timing_bounds([0.020, 0.022])
    assert lo == pytest.approx(0.015) and hi == pytest.approx(0.122)
    lo, hi = conf.timing_bounds([1.002, 1.004])
    assert lo == pytest.approx(0.9018) and hi == pytest.approx(1.255)


def _reorder_leg(frames: list[dict], role: str, order: list[str]) -> list[dict]:
    """``frames`` with the events of ``role`` permuted (in place of each other) into ``order`` of event keys."""
    roles = conf.roles(frames)
    idx = [i for i, d in enumerate(frames) if isinstance(d.get("event"), dict)
           and roles.get(d["event"].get("Unique-ID")) == role
           and (d["event"].get("Application"), d["event"].get("Application-Data")) not in conf.IGNORED_APPS]
    pool = [frames[i] for i in idx]
    out = list(frames)
    for i, key in zip(idx, order):
        pick = next(d for d in pool if conf.event_key(d["event"]) == key)
        pool.remove(pick)
        out[i] = pick
    return out


def test_an_order_the_real_switch_showed_on_another_leg_is_accepted_but_no_other():
    """The real switch races (a_inbound: the two B legs got the same events in different orders)."""
    real = _capture("a_inbound")
    shape = conf.shape(real)
    b3 = [conf.event_key(e) for e in shape.channels["3-b"]]
    b4 = [conf.event_key(e) for e in shape.channels["4-b"]]
    assert b3 != b4 and sorted(b3) == sorted(b4)
    as_other_leg = _reorder_leg(real, "3-b", b4)
    assert not [d for d in conf.compare(real, as_other_leg) if "event order" in d]
    made_up = list(b3)
    k = made_up.index("CHANNEL_ANSWER")
    made_up[k - 1], made_up[k] = made_up[k], made_up[k - 1]
    diffs = conf.compare(real, _reorder_leg(real, "3-b", made_up))
    assert any(d.startswith("channel 3-b: event order differs") for d in diffs)


def test_the_harness_measures_the_timing_table_of_the_captures_readme():
    if "e_timing" not in conf.script_names():
        pytest.skip("e_timing.jsonl not available")
    t = {k: (round(min(v) * 1000), round(max(v) * 1000), len(v))
         for k, v in conf.measure_timing(conf.load_capture("e_timing")[1]).items()}
    assert t["uuid_bridge reply -> CHANNEL_UNPARK (A)"] == (20, 22, 10)
    assert t["uuid_bridge reply -> CHANNEL_BRIDGE (A)"] == (61, 63, 10)
    assert t["uuid_kill reply -> CHANNEL_HANGUP (other leg)"] == (20, 23, 10)
    assert t["uuid_kill reply -> CHANNEL_HANGUP_COMPLETE (other leg)"] == (21, 25, 10)
    assert t["uuid_kill reply -> CHANNEL_UNBRIDGE (A)"] == (20, 26, 10)
    assert t["uuid_broadcast (sent right after the uuid_bridge reply) reply -> CHANNEL_EXECUTE (A)"][2] == 3
    assert "uuid_broadcast (sent right after the uuid_bridge reply) reply -> PLAYBACK_START (A)" not in t  # lost
    assert t["uuid_broadcast (bridged) reply -> PLAYBACK_START (B)"] == (361, 361, 2)
    assert t["uuid_broadcast (parked leg) reply -> PLAYBACK_START (A)"] == (201, 202, 5)
    assert t["PLAYBACK_START -> PLAYBACK_STOP (tone-1s.wav, done)"] == (1002, 1004, 8)
    assert t["uuid_break reply -> PLAYBACK_STOP break #1"] == (21, 21, 1)
    if "f_outbound_break" in conf.script_names():
        f = {k: (round(min(v) * 1000), round(max(v) * 1000), len(v))
             for k, v in conf.measure_timing(conf.load_capture("f_outbound_break")[1]).items()}
        assert f["sendmsg execute playback #1 reply -> CHANNEL_EXECUTE"] == (20, 21, 4)
        assert f["uuid_break all reply -> PLAYBACK_STOP break #3"] == (61, 61, 1)  # innermost first, one per 20 ms

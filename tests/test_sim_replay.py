"""X2: replay the command scripts of the captures against the simulator.

For every channel, the sequence of (Event-Name, Application) the simulator
sends must equal what the real FreeSWITCH 1.10.12 sent for the same
commands, and each of those events must carry the same non-variable header
names in the same order (caller-ID flip after originate, transfer source
after uuid_bridge, Other-Leg-* while bridged included).  Legs are matched by origination_uuid (A legs) and
other_loopback_leg_uuid (B legs).  Interleaving *between* legs is thread
timing in FreeSWITCH and is not compared.
"""
from __future__ import annotations

import json
import re
import uuid as uuid_mod
from pathlib import Path

import gevent
import pytest

from esl_dialer.esl import encode_command, parse_event
from esl_dialer.sim import SimConfig, SimSwitch
from esl_dialer.sim.testing import RawEslClient

CAPTURES = Path(__file__).resolve().parent / "esl-captures"
SCALE = 0.2
IGNORED_APPS = {("set", "open=true")}  # a helper step of the captured dialplan only


def per_leg(events: list[dict]) -> dict[str, list[tuple[str, str | None]]]:
    out: dict[str, list] = {}
    for ev in events:
        uid = ev.get("Unique-ID")
        if not uid or (ev.get("Application"), ev.get("Application-Data")) in IGNORED_APPS:
            continue
        out.setdefault(uid, []).append((ev["Event-Name"], ev.get("Application")))
    return out


def leg_map(events: list[dict], a_legs: list[str]) -> dict[str, str]:
    """Role of each leg: 'uuidN-a' for A legs and 'uuidN-b' for their loopback partner."""
    roles = {}
    for i, uid in enumerate(a_legs):
        roles[uid] = f"{i}-a"
    for ev in events:
        uid = ev.get("Unique-ID")
        if ev.get("Event-Name") == "CHANNEL_CREATE" and uid in roles and roles[uid].endswith("-a"):
            other = ev.get("variable_other_loopback_leg_uuid")
            if other and other not in roles:
                roles[other] = roles[uid][:-2] + "-b"
    return roles


def replay(sim: SimSwitch, script: list[dict]) -> tuple[list[dict], list[str], list[str]]:
    c = RawEslClient("127.0.0.1", sim.port)
    c.auth()
    frames: list = []

    def reader():
        while True:
            frame = c.read_frame(timeout=60)
            if frame is None:
                return
            frames.append(frame)

    g = gevent.spawn(reader)
    fresh: dict[str, str] = {}
    a_legs: list[str] = []
    replies = []
    for step in script:
        if "send" in step:
            line = re.sub(r"\{(uuid\d+)\}", lambda m: fresh.setdefault(m.group(1), str(uuid_mod.uuid4())),
                          step["send"])
            for m in re.finditer(r"origination_uuid=([0-9a-f-]{36})", line):
                a_legs.append(m.group(1))
            before = sum(1 for f in frames if not f.is_event)
            c.send(encode_command(line))
            deadline = 10
            while sum(1 for f in frames if not f.is_event) == before and deadline > 0:
                gevent.sleep(0.005)
                deadline -= 0.005
            replies.append(line)
        elif "wait_event" in step:
            for _ in range(2000):
                if any(f.is_event and parse_event(f).name == step["wait_event"] for f in frames[-5:]):
                    break
                gevent.sleep(0.005)
        elif "wait_s" in step:
            gevent.sleep(step["wait_s"] * SCALE)
    gevent.sleep(0.3)
    c.close()
    g.kill()
    events = [dict(parse_event(f).headers) for f in frames if f.is_event]
    return events, a_legs, replies


@pytest.mark.slow
@pytest.mark.skipif(not CAPTURES.exists(), reason="captures not available")
@pytest.mark.parametrize("name", ["a_inbound", "d_json"])
def test_x2_replay_capture_per_leg_event_order_matches_freeswitch(name):
    script = json.loads((CAPTURES / f"{name}.script.json").read_text())
    captured = [json.loads(line) for line in (CAPTURES / f"{name}.jsonl").open()]
    cap_events = [d["event"] for d in captured if "event" in d]
    cap_a = [m for d in captured if d.get("sent")
             for m in re.findall(r"origination_uuid=([0-9a-f-]{36})", d["sent"])]
    sim = SimSwitch(SimConfig(time_scale=SCALE), port=0).start()
    try:
        events, a_legs, _ = replay(sim, script)
    finally:
        sim.stop(timeout=2)
    theirs_roles, ours_roles = leg_map(cap_events, cap_a), leg_map(events, a_legs)
    theirs = {theirs_roles[u]: seq for u, seq in per_leg(cap_events).items() if u in theirs_roles}
    ours = {ours_roles[u]: seq for u, seq in per_leg(events).items() if u in ours_roles}
    assert set(ours) == set(theirs)
    # every event of every leg carries the same non-variable headers, in the same order
    def by_role(evs, roles):
        out: dict[str, list[dict]] = {}
        for ev in evs:
            uid = ev.get("Unique-ID")
            if uid in roles and (ev.get("Application"), ev.get("Application-Data")) not in IGNORED_APPS:
                out.setdefault(roles[uid], []).append(ev)
        return out

    ours_ev, theirs_ev = by_role(events, ours_roles), by_role(cap_events, theirs_roles)
    for role in sorted(theirs_ev):
        for mine, real in zip(ours_ev[role], theirs_ev[role]):
            assert [k for k in mine if not k.startswith("variable_")] == \
                [k for k in real if not k.startswith("variable_")], (role, real["Event-Name"])
    for role in sorted(theirs):
        assert ours[role] == theirs[role], "\n".join(map(str, [role, *zip(ours[role], theirs[role]), len(ours[role]), len(theirs[role]), ours[role][-3:], theirs[role][-3:]]))
    # and the non-channel events: one BACKGROUND_JOB per bgapi
    assert [e["Event-Name"] for e in events if "Unique-ID" not in e] == \
        [e["Event-Name"] for e in cap_events if "Unique-ID" not in e]

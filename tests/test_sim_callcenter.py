"""The simulator's mod_callcenter subset against FreeSWITCH 1.10.12 (c_callcenter.jsonl) and mod_callcenter.c.

The capture's command script is replayed over TCP: every reply and every
CUSTOM callcenter::info event (actions in order, header names in order, CC-*
values) must match what the real switch sent.  The other tests drive the
model in-process (a recording listener, fast simulated clock) and check the
queue rules of mod_callcenter.c: strategies, tiers, break status, one call per
agent, no-answer handling and callers leaving.
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
from esl_dialer.sim.cmd_callcenter import separate
from esl_dialer.sim.testing import RawEslClient, wait_until

CAPTURES = Path(__file__).resolve().parent / "esl-captures"
SUBCLASS = "callcenter::info"
UUID = re.compile(r"^[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}$")


# -- replay of the capture ---------------------------------------------------------------
def replay(sim: SimSwitch, script: list[dict], scale: float) -> tuple[list[tuple[str, str]], list[dict], list[str]]:
    """Send the script; returns (sent line, reply body) pairs, the events and the origination uuids."""
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
    sent: list[str] = []
    try:
        for step in script:
            if "send" in step:
                line = re.sub(r"\{(uuid\d+)\}", lambda m: fresh.setdefault(m.group(1), str(uuid_mod.uuid4())),
                              step["send"])
                before = sum(1 for f in frames if not f.is_event)
                c.send(encode_command(line))
                assert wait_until(lambda: sum(1 for f in frames if not f.is_event) > before, 10, 0.002), line
                sent.append(line)
            elif "wait_s" in step:
                gevent.sleep(step["wait_s"] * scale)
        gevent.sleep(0.2)
    finally:
        c.close()
        g.kill()
    replies = [f for f in frames if not f.is_event and f.content_type in ("api/response", "command/reply")]
    bodies = [(line, f.body.decode() if f.content_type == "api/response" else f.headers.get("Reply-Text", ""))
              for line, f in zip(sent, replies)]
    events = [dict(parse_event(f).headers) for f in frames if f.is_event]
    return bodies, events, list(fresh.values())


def _captured() -> tuple[list[tuple[str, str]], list[dict]]:
    rows = [json.loads(line) for line in (CAPTURES / "c_callcenter.jsonl").open()]
    replies = [(r["sent"], r["body"] if r["headers"].get("Content-Type") == "api/response"
                else r["headers"].get("Reply-Text", "")) for r in rows if r.get("sent") and r["sent"] != "auth ***"]
    return replies, [r["event"] for r in rows if "event" in r]


def _table(body: str) -> tuple[list[str], list[list[str]]]:
    lines = body.split("\n")
    assert lines[-2:] == ["+OK", ""], body
    if len(lines) == 2:
        return [], []
    return lines[0].split("|"), [line.split("|") for line in lines[1:-2]]


@pytest.mark.slow
@pytest.mark.skipif(not CAPTURES.exists(), reason="captures not available")
def test_capture_script_gives_the_replies_and_callcenter_events_of_freeswitch():
    scale = 0.5
    script = json.loads((CAPTURES / "c_callcenter.script.json").read_text())
    real_replies, real_events = _captured()
    sim = SimSwitch(SimConfig(time_scale=scale), port=0).start()
    try:
        ours, events, call_uuids = replay(sim, script, scale)
    finally:
        sim.stop(timeout=2)
    assert [line.split(" ", 2)[:2] for line, _ in ours] == [line.split(" ", 2)[:2] for line, _ in real_replies]

    # the real switch's database still held two members abandoned by an earlier run
    stale = {row[2] for row in _table(real_replies[2][1])[1]}
    assert len(stale) == 2
    member_cols = ["queue", "instance_id", "cid_number", "cid_name", "rejoined_epoch", "bridge_epoch",
                   "abandoned_epoch", "base_score", "skill_score", "serving_agent", "serving_system", "state"]
    for (line, mine), (_, real) in zip(ours, real_replies):
        if line.endswith("queue list"):
            head, rows = _table(real)
            my_head, my_rows = _table(mine)
            assert my_head == head and len(my_rows) == len(rows) == 1
            skip = head.index("calls_abandoned")
            assert [v for i, v in enumerate(my_rows[0]) if i != skip] == [v for i, v in enumerate(rows[0]) if i != skip]
        elif "queue list members" in line:
            head, rows = _table(real)
            rows = [r for r in rows if r[2] not in stale]
            my_head, my_rows = _table(mine)
            assert len(my_rows) == len(rows), line
            if rows:
                assert my_head == head
                pick = [head.index(c) for c in member_cols]
                assert [[r[i] for i in pick] for r in my_rows] == [[r[i] for i in pick] for r in rows]
                assert [r[head.index("session_uuid")] for r in my_rows] == call_uuids[:len(rows)]
                scores = [int(r[-1]) for r in my_rows]
                assert scores == sorted(scores, reverse=True) and scores[0] > 0
        elif "queue count members" in line:
            assert int(mine) == int(real) - len(stale)
        elif " agent list " in f"{line} ":
            head, rows = _table(real)
            my_head, my_rows = _table(mine)
            assert my_head == head and len(my_rows) == 1
            epochs = {head.index("last_offered_call"), head.index("last_status_change")}
            assert [v for i, v in enumerate(my_rows[0]) if i not in epochs] == \
                [v for i, v in enumerate(rows[0]) if i not in epochs]
            assert all(int(my_rows[0][i]) > 0 for i in epochs)
        elif "originate" in line:
            assert mine.startswith("+OK Job-UUID: ") and real.startswith("+OK Job-UUID: ")
        else:
            assert mine == real, line

    cc_mine = [e for e in events if e.get("Event-Subclass") == SUBCLASS]
    assert len(cc_mine) == len(events), "only the subscribed CUSTOM subclass arrives"
    assert [e["CC-Action"] for e in cc_mine] == [e["CC-Action"] for e in real_events]
    names: dict[str, str] = {}  # the real switch's member uuids -> ours, by first appearance
    for mine, real in zip(cc_mine, real_events):
        action = real["CC-Action"]
        assert [k for k in mine if not k.startswith("variable_")] == \
            [k for k in real if not k.startswith("variable_")], action
        for key in ("Event-Calling-File", "Event-Calling-Function", "Event-Calling-Line-Number"):
            assert mine[key] == real[key], (action, key)
        for key, value in real.items():
            if not key.startswith("CC-"):
                continue
            if UUID.match(value):
                assert names.setdefault(value, mine[key]) == mine[key], (action, key)
            elif key.endswith("-Time"):
                assert int(mine[key]) > 0, (action, key)
            else:
                assert mine[key] == value, (action, key)
    members = [e for e in cc_mine if "Unique-ID" in e]
    assert all(e["variable_cc_side"] == "member" and e["variable_cc_queue"] == "support@default" for e in members)
    assert {e["Unique-ID"] for e in members} == set(call_uuids)


# -- in-process helpers --------------------------------------------------------------------
SCALE = 0.05  # one simulated second is 50 ms


class Recorder:
    """A listener on the switch's event fan-out that keeps every event."""

    def __init__(self) -> None:
        self.events: list = []

    def may_want(self, name: str) -> bool:
        return True

    def offer(self, event) -> None:
        self.events.append(event)

    def cc(self, action: str | None = None, **match: str) -> list[dict]:
        out = []
        for ev in self.events:
            if ev.subclass != SUBCLASS or (action and ev.get("CC-Action") != action):
                continue
            h = dict(ev.headers)
            if all(h.get(k.replace("_", "-")) == v for k, v in match.items()):
                out.append(h)
        return out


@pytest.fixture
def sim():
    sw = SimSwitch(SimConfig(time_scale=SCALE), port=0)
    rec = Recorder()
    sw.listeners.add(rec)
    sw.rec = rec
    sw.dialplan["5000"] = [("callcenter", "sales@test"), ("hangup", "USER_BUSY")]
    try:
        yield sw
    finally:
        sw.stop(timeout=2)


def cfg(sw: SimSwitch, line: str) -> str:
    return sw.api.run("callcenter_config", line)


def add_agent(sw: SimSwitch, name: str, ext: str, *, level: int = 1, position: int = 1, answer_after: float = 0.5,
              status: str = "Available", contact: str | None = None, queue: str = "sales@test") -> None:
    sw.add_user(ext, answer_after_s=answer_after)
    assert cfg(sw, f"agent add {name} callback") == "+OK\n"
    assert cfg(sw, f"agent set contact {name} {contact or f'user/{ext}'}") == "+OK\n"
    assert cfg(sw, f"tier add {queue} {name} {level} {position}") == "+OK\n"
    assert cfg(sw, f"agent set status {name} '{status}'") == "+OK\n"


def caller(sw: SimSwitch, number: str = "15550001", patience: float = 1000.0) -> str:
    return sw.inbound_call("5000", number, patience_s=patience, talk_s=1000.0)


def agent_row(sw: SimSwitch, name: str) -> dict[str, str]:
    head, rows = _table(cfg(sw, f"agent list {name}"))
    return dict(zip(head, rows[0]))


def sim_wait(sw: SimSwitch, pred, sim_seconds: float = 40.0) -> bool:
    return wait_until(pred, timeout=max(2.0, sim_seconds * SCALE * 3), step=0.005)


# -- strategies and rules --------------------------------------------------------------------
def test_longest_idle_agent_is_offered_the_call_before_agents_in_better_positions(sim):
    sim.callcenter.configure_queue("sales@test", strategy="longest-idle-agent")
    for i, name in enumerate(("a@test", "b@test", "c@test")):
        add_agent(sim, name, f"10{i}", position=i + 1)
    now = sim.callcenter.now()
    for name, idle in (("a@test", 5), ("b@test", 100), ("c@test", 50)):
        sim.callcenter.agents[name].last_bridge_end = now - idle
    member = caller(sim)
    assert sim_wait(sim, lambda: sim.rec.cc("bridge-agent-start"))
    assert [e["CC-Agent"] for e in sim.rec.cc("agent-offering")] == ["b@test"]
    start = sim.rec.cc("bridge-agent-start")[0]
    assert sim.find(member).bridged_to == start["CC-Agent-UUID"]
    assert sim.find(start["CC-Agent-UUID"]).variables["cc_agent"] == "b@test"
    assert agent_row(sim, "b@test")["state"] == "In a queue call"


def test_ring_all_rings_every_agent_and_the_first_to_answer_wins(sim):
    sim.callcenter.configure_queue("sales@test", strategy="ring-all")
    for i, (name, delay) in enumerate((("a@test", 3.0), ("b@test", 1.0), ("c@test", 5.0))):
        add_agent(sim, name, f"20{i}", position=i + 1, answer_after=delay)
    member = caller(sim)
    assert sim_wait(sim, lambda: sim.rec.cc("bridge-agent-start") and len(sim.rec.cc("bridge-agent-fail")) == 2)
    assert sorted(e["CC-Agent"] for e in sim.rec.cc("agent-offering")) == ["a@test", "b@test", "c@test"]
    assert [e["CC-Agent"] for e in sim.rec.cc("bridge-agent-start")] == ["b@test"]
    fails = sim.rec.cc("bridge-agent-fail")
    assert sorted(e["CC-Agent"] for e in fails) == ["a@test", "c@test"]
    assert {e["CC-Hangup-Cause"] for e in fails} == {"LOSE_RACE"}
    assert sim.find(member).bridged_to == sim.rec.cc("bridge-agent-start")[0]["CC-Agent-UUID"]
    for name in ("a@test", "c@test"):  # losing a race is not a missed call
        assert agent_row(sim, name)["no_answer_count"] == "0"


def test_lower_tier_level_is_offered_first_whatever_the_idle_time(sim):
    sim.callcenter.configure_queue("sales@test", strategy="longest-idle-agent")
    add_agent(sim, "low@test", "301", level=2, position=1)
    add_agent(sim, "top@test", "302", level=1, position=9)
    now = sim.callcenter.now()
    sim.callcenter.agents["low@test"].last_bridge_end = now - 500
    sim.callcenter.agents["top@test"].last_bridge_end = now - 1
    caller(sim)
    assert sim_wait(sim, lambda: sim.rec.cc("bridge-agent-start"))
    assert [e["CC-Agent"] for e in sim.rec.cc("agent-offering")] == ["top@test"]


def test_round_robin_goes_on_after_the_last_agent_offered_even_when_the_first_is_free(sim):
    sim.callcenter.configure_queue("sales@test", strategy="round-robin")
    for i, name in enumerate(("r1@test", "r2@test", "r3@test")):
        add_agent(sim, name, f"35{i}", position=i + 1)
    caller(sim, "15550001")
    assert sim_wait(sim, lambda: sim.rec.cc("bridge-agent-start"))
    sim.hangup(sim.find(sim.rec.cc("bridge-agent-start")[0]["CC-Agent-UUID"]), "NORMAL_CLEARING")
    assert sim_wait(sim, lambda: agent_row(sim, "r1@test")["state"] == "Waiting")
    gevent.sleep(1.2 * SCALE)  # r1 is idle again, a second later (wrap-up compares whole seconds)
    caller(sim, "15550002")
    assert sim_wait(sim, lambda: len(sim.rec.cc("bridge-agent-start")) == 2)
    assert [e["CC-Agent"] for e in sim.rec.cc("agent-offering")] == ["r1@test", "r2@test"]


def test_tier_rules_hold_a_caller_at_level_one_until_the_wait_is_over(sim):
    sim.callcenter.configure_queue("sales@test", tier_rules_apply=True, tier_rule_wait_second=3,
                                   tier_rule_wait_multiply_level=False, tier_rule_no_agent_no_wait=False)
    add_agent(sim, "busy@test", "401", level=1)
    assert cfg(sim, "agent set state busy@test Idle") == "+OK\n"  # logged in but taking no call
    add_agent(sim, "spare@test", "402", level=2)
    caller(sim)
    assert sim_wait(sim, lambda: sim.rec.cc("agent-offering"))
    joined = int(sim.rec.cc("member-queue-start")[0]["Event-Date-Timestamp"])
    offered = int(sim.rec.cc("agent-offering")[0]["Event-Date-Timestamp"])
    assert sim.rec.cc("agent-offering")[0]["CC-Agent"] == "spare@test"
    assert offered - joined >= 2_000_000  # 3 s in whole seconds: never before 2 s (at once without the rule)


def test_an_agent_on_break_is_offered_nothing(sim):
    sim.callcenter.configure_queue("sales@test")
    add_agent(sim, "pause@test", "501", position=1, status="On Break")
    caller(sim)
    gevent.sleep(3 * SCALE * 3)  # three simulated seconds of dispatching
    assert sim.rec.cc("agent-offering") == []
    add_agent(sim, "work@test", "502", position=2)
    assert sim_wait(sim, lambda: sim.rec.cc("bridge-agent-start"))
    assert [e["CC-Agent"] for e in sim.rec.cc("agent-offering")] == ["work@test"]


def test_an_agent_is_never_offered_two_calls_at_once(sim):
    sim.callcenter.configure_queue("sales@test")
    add_agent(sim, "solo@test", "601", answer_after=1.0)
    first, second = caller(sim, "15550001"), caller(sim, "15550002")
    assert sim_wait(sim, lambda: sim.rec.cc("bridge-agent-start"))
    gevent.sleep(2 * SCALE * 3)
    assert len(sim.rec.cc("agent-offering")) == 1
    assert cfg(sim, "queue count members sales@test") == "2\n"
    agent_leg = sim.find(sim.rec.cc("bridge-agent-start")[0]["CC-Agent-UUID"])
    sim.hangup(agent_leg, "NORMAL_CLEARING")  # the agent ends the first call
    assert sim_wait(sim, lambda: len(sim.rec.cc("bridge-agent-start")) == 2)
    offers = sim.rec.cc("agent-offering")
    assert [e["CC-Member-Session-UUID"] for e in offers] == [first, second]
    ends = sim.rec.cc("bridge-agent-end")
    assert int(offers[1]["Event-Sequence"]) > int(ends[0]["Event-Sequence"])
    row = agent_row(sim, "solo@test")
    assert row["calls_answered"] == "2" and row["state"] == "In a queue call"


def test_agent_that_does_not_answer_is_counted_rested_and_the_next_agent_gets_the_call(sim):
    sim.callcenter.configure_queue("sales@test", strategy="top-down")
    add_agent(sim, "deaf@test", "701", position=1, answer_after=100.0, contact="[leg_timeout=2]user/701")
    assert cfg(sim, "agent set max_no_answer deaf@test 1") == "+OK\n"
    add_agent(sim, "ok@test", "702", position=2)
    member = caller(sim)
    assert sim_wait(sim, lambda: sim.rec.cc("bridge-agent-start"))
    fail = sim.rec.cc("bridge-agent-fail")
    assert [(e["CC-Agent"], e["CC-Hangup-Cause"]) for e in fail] == [("deaf@test", "NO_ANSWER")]
    assert [e["CC-Agent"] for e in sim.rec.cc("agent-offering")] == ["deaf@test", "ok@test"]
    assert sim.rec.cc("agent-max-no-answer", CC_Agent="deaf@test")[0]["CC-Agent-No-Answer-Status"] == "On Break"
    assert sim.rec.cc("agent-status-change", CC_Agent="deaf@test")[-1]["CC-Agent-Status"] == "On Break"
    row = agent_row(sim, "deaf@test")
    assert (row["status"], row["state"], row["no_answer_count"]) == ("On Break", "Waiting", "1")
    assert sim.find(member).bridged_to == sim.rec.cc("bridge-agent-start")[0]["CC-Agent-UUID"]
    head, rows = _table(cfg(sim, "queue list tiers sales@test"))
    assert dict((r[1], r[2]) for r in rows) == {"deaf@test": "No Answer", "ok@test": "Active Inbound"}


def test_caller_hanging_up_while_waiting_ends_with_cause_cancel(sim):
    sim.callcenter.configure_queue("sales@test")
    member = caller(sim, patience=2.0)
    assert sim_wait(sim, lambda: sim.rec.cc("member-queue-end"))
    end = sim.rec.cc("member-queue-end")[0]
    assert (end["CC-Cause"], end["CC-Cancel-Reason"], end["Unique-ID"]) == ("Cancel", "BREAK_OUT", member)
    assert [e["CC-Count"] for e in sim.rec.cc("members-count")] == ["1", "0"]
    head, rows = _table(cfg(sim, "queue list members sales@test"))
    row = dict(zip(head, rows[0]))
    assert (row["state"], row["session_uuid"]) == ("Abandoned", "") and int(row["abandoned_epoch"]) > 0
    assert sim_wait(sim, lambda: sim.history_of(member).hangup_at is not None)
    assert sim.history_of(member).variables["cc_cause"] == "cancel"
    assert _table(cfg(sim, "queue list"))[1][-1][15] == "1"  # calls_abandoned


def test_caller_hanging_up_while_an_agent_rings_cancels_the_agent_leg(sim):
    sim.callcenter.configure_queue("sales@test")
    add_agent(sim, "slow@test", "801", answer_after=30.0)
    member = caller(sim, patience=2.0)
    assert sim_wait(sim, lambda: sim.rec.cc("member-queue-end"))
    actions = [e["CC-Action"] for e in sim.rec.cc() if e["CC-Action"] not in ("agent-add", "agent-contact-change",
                                                                              "agent-status-change")]
    assert actions == ["member-queue-start", "members-count", "agent-state-change", "agent-offering",
                       "bridge-agent-fail", "agent-state-change", "member-queue-end", "members-count"]
    assert sim.rec.cc("bridge-agent-fail")[0]["CC-Hangup-Cause"] == "ORIGINATOR_CANCEL"
    assert agent_row(sim, "slow@test")["no_answer_count"] == "0"
    assert sim.find(member) is None or not sim.find(member).alive


def test_max_wait_time_cancels_with_timeout_and_the_dialplan_goes_on(sim):
    sim.callcenter.configure_queue("sales@test", max_wait_time=2)
    member = caller(sim)
    assert sim_wait(sim, lambda: sim.history_of(member).hangup_at is not None)
    end = sim.rec.cc("member-queue-end")[0]
    assert (end["CC-Cause"], end["CC-Cancel-Reason"]) == ("Cancel", "TIMEOUT")
    assert sim.history_of(member).hangup_cause == "USER_BUSY"  # the next step of the dialplan ran


def test_answered_call_ends_with_bridge_agent_end_and_member_queue_end_terminated(sim):
    sim.callcenter.configure_queue("sales@test")
    add_agent(sim, "talk@test", "901")
    member = caller(sim)
    assert sim_wait(sim, lambda: sim.rec.cc("bridge-agent-start"))
    agent_uuid = sim.rec.cc("bridge-agent-start")[0]["CC-Agent-UUID"]
    assert agent_row(sim, "talk@test")["uuid"] == agent_uuid
    gevent.sleep(2 * SCALE * 2)
    sim.hangup(sim.find(agent_uuid), "NORMAL_CLEARING")
    assert sim_wait(sim, lambda: sim.rec.cc("member-queue-end"))
    end = sim.rec.cc("bridge-agent-end")[0]
    assert (end["CC-Agent-Bridged"], end["CC-Hangup-Cause"], end["Unique-ID"]) == ("true", "SUCCESS", agent_uuid)
    queue_end = sim.rec.cc("member-queue-end")[0]
    assert (queue_end["CC-Cause"], queue_end["Unique-ID"], queue_end["CC-Agent"]) == ("Terminated", member, "talk@test")
    assert sim_wait(sim, lambda: agent_row(sim, "talk@test")["state"] == "Waiting")
    row = agent_row(sim, "talk@test")
    assert row["uuid"] == "" and row["calls_answered"] == "1" and int(row["talk_time"]) >= 1
    assert cfg(sim, "queue count members sales@test") == "0\n"
    assert sim_wait(sim, lambda: sim.history_of(member).hangup_at is not None)
    v = sim.history_of(member).variables
    assert (v["cc_cause"], v["cc_agent"], v["cc_agent_bridged"]) == ("answered", "talk@test", "true")


# -- the callcenter_config command itself ----------------------------------------------------
def test_callcenter_config_replies_like_mod_callcenter(sim):
    assert cfg(sim, "").startswith("-USAGE: \ncallcenter_config <target> <args>,\n")
    assert cfg(sim, "agent") == "-ERR Invalid!\n"
    assert cfg(sim, "agent add x@t") == "-ERR Invalid!\n"
    assert cfg(sim, "agent add x@t robot") == "-ERR Agent type invalid!\n"
    assert cfg(sim, "agent add x@t Callback") == "+OK\n"
    assert cfg(sim, "agent add x@t callback") == "-ERR Agent already exist!\n"
    assert cfg(sim, "agent set status x@t Busy") == "-ERR Invalid Agent Status!\n"
    assert cfg(sim, "agent set state x@t Sleeping") == "-ERR Invalid Agent State!\n"
    assert cfg(sim, "agent set colour x@t red") == "-ERR Invalid Agent Update KEY!\n"
    assert cfg(sim, "agent set status y@t Available") == "-ERR Agent not found!\n"
    assert cfg(sim, "agent set status x@t 'Available (On Demand)'") == "+OK\n"
    assert cfg(sim, "agent get status x@t") == "Available (On Demand)"
    assert cfg(sim, "agent get colour x@t") == "-ERR Invalid Agent Update KEY!\n"
    assert cfg(sim, "tier add nowhere@t x@t") == "-ERR Queue not found!\n"
    assert cfg(sim, "tier add support@default y@t") == "-ERR Agent not found!\n"
    assert cfg(sim, "tier add support@default x@t 2 3") == "+OK\n"
    assert cfg(sim, "tier add support@default x@t") == "-ERR Tier already exist!\n"
    assert cfg(sim, "tier set state support@default x@t Bogus") == "-ERR Invalid Tier State!\n"
    assert cfg(sim, "tier set level support@default x@t 4") == "+OK\n"
    assert cfg(sim, "tier list") == "queue|agent|state|level|position\nsupport@default|x@t|Ready|4|3\n+OK\n"
    assert cfg(sim, "queue count") == "1\n"
    assert cfg(sim, "queue count agents support@default") == "1\n"
    assert cfg(sim, "queue list members support@default") == "+OK\n"
    assert cfg(sim, "queue load nowhere@t") == "-ERR Invalid Queue not found!\n"
    assert cfg(sim, "queue reload support@default") == "+OK\n"
    assert cfg(sim, "tier del support@default x@t") == "+OK\n"
    assert cfg(sim, "agent del x@t") == "+OK\n"
    assert cfg(sim, "agent list") == "+OK\n"
    assert [e["CC-Action"] for e in sim.rec.cc()] == ["agent-add", "agent-status-change", "agent-status-get"]


def test_separate_splits_like_switch_separate_string():
    assert separate("agent set status a@b 'Available (On Demand)'") == \
        ["agent", "set", "status", "a@b", "Available (On Demand)"]
    assert separate("a  b c d e f g h i") == ["a", "b", "c", "d", "e", "f", "g", "h i"]


# -- [callcenter] in the sim TOML ----------------------------------------------------------
CC_TOML = """
[users.1001]
answer_after = 0.5

[dialplan]
"5000" = "callcenter sales@default"

[callcenter]
agent_originate_timeout = 30

[callcenter.queues."sales@default"]
strategy = "ring-all"
moh_sound = "local_stream://moh"
max_wait_time = 120

[[callcenter.agents]]
name = "1001@default"
contact = "user/1001"
status = "Available"
max_no_answer = 3

[[callcenter.tiers]]
queue = "sales@default"
agent = "1001@default"
level = 2
"""


def test_queues_agents_and_tiers_come_from_the_toml_callcenter_table(tmp_path):
    from esl_dialer.sim import load_sim_config
    path = tmp_path / "sim.toml"
    path.write_text(CC_TOML)
    sw = SimSwitch(load_sim_config(path).with_overrides(time_scale=SCALE), port=0)
    rec = Recorder()
    sw.listeners.add(rec)
    try:
        assert list(sw.callcenter.queues) == ["sales@default"]  # replaces the vanilla support@default
        assert sw.callcenter.agent_originate_timeout == 30
        head, rows = _table(cfg(sw, "queue list"))
        row = dict(zip(head, rows[0]))
        assert (row["strategy"], row["max_wait_time"], row["moh_sound"]) == ("ring-all", "120", "local_stream://moh")
        assert (agent_row(sw, "1001@default")["status"], agent_row(sw, "1001@default")["max_no_answer"]) == \
            ("Available", "3")
        assert cfg(sw, "tier list") == "queue|agent|state|level|position\nsales@default|1001@default|Ready|2|1\n+OK\n"
        member = sw.inbound_call("5000", "15550009", patience_s=1000.0, talk_s=1000.0)
        assert wait_until(lambda: rec.cc("bridge-agent-start"), 5, 0.005)
        assert sw.find(member).bridged_to == rec.cc("bridge-agent-start")[0]["CC-Agent-UUID"]
    finally:
        sw.stop(timeout=2)


@pytest.mark.parametrize("table, message", [
    ('[callcenter]\nqueue = {}', ":2: callcenter.queue: unknown key; did you mean 'queues'?"),
    ('[callcenter.queues."q@x"]\nstrategi = "ring-all"', ":2: callcenter.queues.q@x.strategi: unknown key; did you mean 'strategy'?"),
    ('[callcenter.queues."q@x"]\nmax_wait_time = "10"', ":2: callcenter.queues.q@x.max_wait_time: expected an integer"),
    ('[[callcenter.agents]]\nname = "a"\nstatus = "Busy"', "unknown status 'Busy'"),
    ('[[callcenter.tiers]]\nqueue = "support@default"\nagent = "nobody"', "must be ones defined here"),
])
def test_the_callcenter_table_rejects_unknown_keys_and_values(tmp_path, table, message):
    from esl_dialer.sim import SimConfigError, load_sim_config
    path = tmp_path / "sim.toml"
    path.write_text(table + "\n")
    with pytest.raises(SimConfigError, match=re.escape(message)):
        load_sim_config(path)


def test_uuid_standby_agent_is_bridged_on_its_own_channel_and_keeps_it(sim):
    sim.callcenter.configure_queue("sales@test")
    reply = sim.originate_command("{origination_uuid=7a1e0000-0000-4000-8000-000000000001,park_after_bridge=true}"
                                  "loopback/9993 &park()")
    agent_uuid = reply.split()[1]
    assert cfg(sim, "agent add desk@test uuid-standby") == "+OK\n"
    assert cfg(sim, f"agent set uuid desk@test {agent_uuid}") == "+OK\n"
    assert cfg(sim, "tier add sales@test desk@test") == "+OK\n"
    assert cfg(sim, "agent set status desk@test Available") == "+OK\n"
    member = caller(sim)
    assert sim_wait(sim, lambda: sim.rec.cc("bridge-agent-start"))
    assert sim.rec.cc("bridge-agent-start")[0]["CC-Agent-UUID"] == agent_uuid
    assert sim.find(member).bridged_to == agent_uuid
    sim.hangup(sim.find(member), "NORMAL_CLEARING")
    assert sim_wait(sim, lambda: sim.rec.cc("member-queue-end"))
    assert sim.rec.cc("bridge-agent-end")[0]["CC-Agent-Bridged"] == "true"
    assert sim.find(agent_uuid).alive  # back in park, still the agent's line
    assert sim_wait(sim, lambda: agent_row(sim, "desk@test")["state"] == "Waiting")
    assert agent_row(sim, "desk@test")["uuid"] == agent_uuid

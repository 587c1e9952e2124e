"""Issue 15 point 5: a killed worker's legs and the worker restarted with the same identity.

On the simulated switch over TCP (real ESL through the Switch adapter): a
worker is killed without cleanup (its greenlets and its ESL connection just
end, the switch keeps its channels), a new worker with the same identity
starts.  There must never be two waiting legs for the agent; the legs left
behind are reused or hung up (decision rules: esl_dialer.worker_legs).
"""
from __future__ import annotations

import gevent
import pytest

from esl_dialer import switch as sw
from esl_dialer import worker_legs
from esl_dialer.messages import AgentState
from esl_dialer.sim import SimConfig, SimSwitch
from esl_dialer.worker import AgentWorker, WorkerSettings
from esl_dialer.worker_legs import Leg, plan
from worker_harness import ControllerProcess, make_campaign, wait_until

AGENT = "1001"
OWNER = "1001@ctl:5000"


# -- the decision (pure) --------------------------------------------------------------


def leg(uuid, *, owner=OWNER, agent=AGENT, role="agent", answered=True, bridged=None, app="park", created=1.0,
        hungup=False):
    return Leg(uuid, owner, agent, role, answered, bridged, app, created, hungup)


def test_reconcile_reuses_the_newest_parked_leg_and_hangs_up_the_rest():
    p = plan([leg("old", created=1.0), leg("new", created=2.0), leg("ringing", answered=False, app=None),
              leg("party", role="call", app="park"), leg("talking-party", role="call", bridged="x")], OWNER, AGENT)
    assert p.reuse == "new"
    assert sorted(p.hangup) == ["old", "party", "ringing"]
    assert p.wait == [] and not p.may_originate


def test_reconcile_waits_for_an_agent_leg_in_a_conversation():
    p = plan([leg("talking", bridged="party-uuid"), leg("parked")], OWNER, AGENT)
    assert p.wait == ["talking"] and p.reuse is None and p.hangup == ["parked"]
    assert not p.may_originate  # no second waiting leg while the first is in a call


def test_reconcile_spares_the_calls_the_running_worker_tracks():
    """The worker's own leg dropped mid-campaign: its ringing calls carry its mark but are not left-overs."""
    p = plan([leg("ringing-call", role="call", answered=False, app=None), leg("orphan", role="call")],
             OWNER, AGENT, live={"ringing-call"})
    assert p.hangup == ["orphan"] and p.may_originate


def test_reconcile_leaves_other_owners_and_agents_alone():
    p = plan([leg("theirs", owner="1001@other:5000"), leg("colleague", agent="1002"),
              leg("unmarked", owner=None), leg("gone", hungup=True)], OWNER, AGENT)
    assert p.reuse is None and p.hangup == [] and p.wait == [] and p.may_originate


def test_leg_from_a_uuid_dump():
    dump = {"Answer-State": "answered", "Channel-State": "CS_EXECUTE", "variable_dialer_owner": OWNER,
            "variable_dialer_agent": AGENT, "variable_dialer_role": "agent",
            "variable_current_application": "park", "Caller-Channel-Created-Time": "1700000000000000"}
    parsed = Leg.from_dump("u1", dump)
    assert parsed.parked and parsed.owner == OWNER and parsed.created == 1700000000.0
    assert not Leg.from_dump("u1", {**dump, "variable_bridge_to": "u2"}).parked
    assert not Leg.from_dump("u1", {**dump, "Answer-State": "early"}).parked
    assert not Leg.from_dump("u1", {**dump, "variable_current_application": "playback"}).parked
    # park_after_bridge parks with switch_ivr_park_session: state CS_PARK, current_application stale
    assert Leg.from_dump("u1", {**dump, "variable_current_application": "bridge", "Channel-State": "CS_PARK"}).parked


def test_owner_id_is_the_agent_at_the_controller():
    assert worker_legs.owner_id("1001", "http://10.0.0.5:5000/") == "1001@10.0.0.5:5000"
    assert worker_legs.owner_id("1001", "https://ctl.example.com") == "1001@ctl.example.com"


# -- on the simulator over TCP ----------------------------------------------------------------



@pytest.fixture
def rig(db, db_url, tmp_path):
    camp = make_campaign(db, agents=[AGENT], records=0)
    sim = SimSwitch(SimConfig(seed=3), host="127.0.0.1", port=0).start()
    sim.add_user(AGENT, answer_after_s=0.2)
    ctl = ControllerProcess(db_url).start()
    switches: list[sw.Switch] = []
    workers: list[AgentWorker] = []

    def connect(name: str) -> sw.Switch:
        s = sw.Switch("127.0.0.1", sim.port, sim.password, name=name).start()
        switches.append(s)
        return s

    def worker(s: sw.Switch) -> AgentWorker:
        w = AgentWorker(WorkerSettings(agent=AGENT, controller=ctl.url, token=camp.tokens[AGENT],
                                       data_dir=tmp_path / "w", heartbeat_s=0.5, http_timeout_s=1.0), s).start()
        workers.append(w)
        return w

    try:
        yield sim, connect, worker
    finally:
        for w in workers:
            if not w.stopping.is_set():
                w.stop(timeout=2, drain_s=0.5)
        for s in switches:
            s.close()
        ctl.kill()
        sim.stop()


def kill(w: AgentWorker, s: sw.Switch) -> None:
    """Like a killed process: greenlets end and the ESL connection closes; nothing is hung up."""
    w.stopping.set()
    w.group.kill(timeout=2)
    w.store.close()
    s.close()


def agent_legs(sim: SimSwitch) -> list[str]:
    return sorted(u for u, ch in list(sim.channels.items())
                  if ch.variables.get("dialer_role") == "agent" and ch.variables.get("dialer_agent") == AGENT)


def all_agent_legs_ever(sim: SimSwitch) -> set[str]:
    chans = list(sim.history) + list(sim.channels.values())
    return {ch.uuid for ch in chans if ch.variables.get("dialer_role") == "agent"}


def marks(role: str, owner: str) -> dict:
    return {"dialer_role": role, "dialer_agent": AGENT, "dialer_owner": owner, "park_after_bridge": "true",
            "hangup_after_bridge": "false"}


@pytest.mark.slow
def test_restarted_worker_reuses_a_parked_leg_and_hangs_up_orphans(rig):
    sim, connect, worker = rig
    s1 = connect("first")
    w1 = worker(s1)
    wait_until(lambda: w1.agent_leg is not None and w1.core.state is AgentState.IDLE, timeout=15)
    first_leg = w1.agent_leg
    owner = w1.s.owner
    # an older crash left a second waiting leg, and a party nobody tracks any more
    sim.script("15550001", "answer", ring_s=0.2, talk_s=600.0)
    extra = s1.originate(f"user/{AGENT}", variables=marks("agent", owner), originate_timeout=10)
    party = s1.originate("sofia/gateway/sim/15550001", variables={**marks("call", owner)}, originate_timeout=10)
    foreign = s1.originate(f"user/{AGENT}", variables=marks("agent", "1001@elsewhere:1"), originate_timeout=10)
    assert extra.ok and party.ok and foreign.ok
    kill(w1, s1)
    assert set(agent_legs(sim)) == {first_leg, extra.uuid, foreign.uuid}  # the switch kept them

    w2 = worker(connect("second"))
    wait_until(lambda: w2.agent_leg is not None and w2.core.state is AgentState.IDLE, timeout=15)
    wait_until(lambda: party.uuid not in sim.channels and first_leg not in sim.channels, timeout=10)
    # exactly one waiting leg of ours: the newest one left behind, reused (no new originate)
    assert w2.agent_leg == extra.uuid
    assert agent_legs(sim) == sorted([extra.uuid, foreign.uuid])  # another owner's leg is not ours to touch
    assert all_agent_legs_ever(sim) == {first_leg, extra.uuid, foreign.uuid}

    # the reused leg is watched like an own one: when it drops the worker makes a new one
    s2 = w2.switch
    assert s2.kill(extra.uuid)
    wait_until(lambda: w2.agent_leg not in (None, extra.uuid) and w2.core.state is AgentState.IDLE, timeout=15)
    ours = [u for u in agent_legs(sim) if sim.channels[u].variables.get("dialer_owner") == owner]
    assert ours == [w2.agent_leg]


@pytest.mark.slow
def test_restarted_worker_waits_for_the_agent_leg_in_a_conversation(rig):
    sim, connect, worker = rig
    s1 = connect("first")
    w1 = worker(s1)
    wait_until(lambda: w1.agent_leg is not None and w1.core.state is AgentState.IDLE, timeout=15)
    leg1, owner = w1.agent_leg, w1.s.owner
    sim.script("15550002", "answer", ring_s=0.2, talk_s=600.0)
    party = s1.originate("sofia/gateway/sim/15550002", variables=marks("call", owner), originate_timeout=10)
    assert party.ok
    s1.bridge(party.uuid, leg1, wait_s=3.0)  # the predecessor had put this party through
    kill(w1, s1)

    w2 = worker(connect("second"))
    gevent.sleep(2.5)  # several reconcile rounds
    # the conversation goes on, no second leg, the agent is not offered calls meanwhile (D6)
    assert w2.agent_leg is None and w2.core.state is AgentState.OFFLINE
    assert agent_legs(sim) == [leg1] and party.uuid in sim.channels

    control = connect("control")
    assert control.kill(party.uuid)  # the party hangs up: park_after_bridge parks the agent again
    wait_until(lambda: w2.agent_leg == leg1 and w2.core.state is AgentState.IDLE, timeout=15)
    assert agent_legs(sim) == [leg1] and all_agent_legs_ever(sim) == {leg1}

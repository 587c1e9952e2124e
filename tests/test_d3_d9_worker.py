"""Dialing worker features against the real controller (its own process) and an
in-process fake switch with exact timings: D3, D4, D5, D6, D7, D8, D9, X1.

The end-to-end run over TCP against the simulated switch is
tests/test_worker_e2e.py.
"""
from __future__ import annotations


import gevent
import gevent.event
import pytest
import sqlalchemy as sa

from esl_dialer import switch as sw
from esl_dialer.messages import AgentState, DialMode
from esl_dialer.worker import AgentWorker, WorkerSettings
from worker_harness import ControllerProcess, FakeSwitch, Outcome, attempts_by_record, make_campaign, wait_until

pytestmark = pytest.mark.slow


def settings(ext, ctl, camp, tmp_path, **kw):
    base = dict(agent=ext, controller=ctl.url, token=camp.tokens[ext], data_dir=tmp_path / "w",
                lease_batch=5, low_water=2, heartbeat_s=0.5, dial_interval_s=0.02, http_timeout_s=1.0,
                greetings_dir="/greet", abandon_message="/snd/abandon.wav")
    base.update(kw)
    return WorkerSettings(**base)


@pytest.fixture
def controller(db_url):
    ctl = ControllerProcess(db_url).start()
    yield ctl
    ctl.kill()


def test_d3_d4_d6_first_answer_greeting_both_legs_no_dial_while_talking(db, controller, tmp_path):
    camp = make_campaign(db, agents=["1001"], records=12)
    switch = FakeSwitch(lambda n: Outcome("answer" if int(n[-1]) % 3 == 0 else "no_answer", ring_s=0.1, talk_s=0.4))
    w = AgentWorker(settings("1001", controller, camp, tmp_path, mode=DialMode.POWER, ratio=3.0), switch).start()
    try:
        wait_until(lambda: len(switch.originated) >= 12 and not w.core.calls and w.store.stats().pending_results == 0, 30)
    finally:
        w.stop(timeout=2)
    leg = [u for u, ch in switch.channels.items() if ch.number == "1001"][0]
    answered = [u for u, ch in switch.channels.items() if ch.answered and u != leg]
    assert answered
    # D3: each answered party was bridged to the agent's waiting leg (no overflow: one line answered at a time here
    # or the agent was busy, in which case it was abandoned for lack of other agents)
    bridged = {a for a, b in switch.bridges if b == leg}
    assert bridged
    for a in bridged:
        # D4: the agent's own greeting to both legs, right after the bridge
        assert (a, "/greet/1001.wav", "both") in switch.broadcasts
        assert "/greet/1001.wav" in switch.channels[a].playbacks
    assert switch.channels[leg].playbacks.count("/greet/1001.wav") == len(bridged)
    # D5: a screen pop per connected call with the party's details
    pops = {p["call_uuid"]: p for p in w.screen_pops}
    for a in bridged:
        assert pops[a]["name"].startswith("Party ") and pops[a]["city"] == "Springfield" and pops[a]["local_time"]
    # D6: no originate while the agent was talking (bridge .. hang-up of its call)
    talk = []
    for a in bridged:
        t0 = next(t for t, n, u in switch.log if n == "CHANNEL_BRIDGE" and u == a)
        t1 = next(t for t, n, u in switch.log if n == "CHANNEL_HANGUP_COMPLETE" and u == a)
        talk.append((t0, t1))
    originates = [t for t, n, u in switch.log if n == "originate"]
    assert not [t for t in originates for (a, b) in talk if a < t < b]
    assert w.core.dialed_while_talking == 0
    # every attempt recorded once
    atts = attempts_by_record(db)
    assert sorted(len(v) for v in atts.values()) == [1] * 12
    results = {a.call_uuid: a.result for v in atts.values() for a in v}
    assert all(results[u] in ("answered", "abandoned") for u in answered)
    assert all(results[u] == "answered" for u in bridged)


def test_d7_overflow_to_idle_agent_then_abandon_when_all_busy(db, controller, tmp_path):
    from controller.models import Agent

    camp = make_campaign(db, agents=["1001", "1002"], records=3)
    switch = FakeSwitch(lambda n: Outcome("answer", ring_s=0.3, talk_s=2.5))
    # 1002 only takes calls (preview mode: it dials nothing by itself)
    w2 = AgentWorker(settings("1002", controller, camp, tmp_path, mode=DialMode.PREVIEW, lease_batch=0, low_water=0), switch).start()
    wait_until(lambda: w2.core.state is AgentState.IDLE and w2.reported_state is AgentState.IDLE)
    w1 = AgentWorker(settings("1001", controller, camp, tmp_path, mode=DialMode.POWER, ratio=3.0), switch).start()
    try:
        wait_until(lambda: len(switch.originated) >= 3, 15)
        wait_until(lambda: not w1.core.calls and w1.store.stats().pending_results == 0, 20)
    finally:
        w1.stop(timeout=2)
        w2.stop(timeout=2)
    legs = {ch.number: u for u, ch in switch.channels.items() if ch.number in ("1001", "1002")}
    to1 = [a for a, b in switch.bridges if b == legs["1001"]]
    to2 = [a for a, b in switch.bridges if b == legs["1002"]]
    assert len(to1) == 1 and len(to2) == 1, (to1, to2)
    # the overflow call got 1002's greeting on both legs and a screen pop on 1002's console
    assert (to2[0], "/greet/1002.wav", "both") in switch.broadcasts
    pop = [p for p in w2.screen_pops if p["call_uuid"] == to2[0]]
    assert pop and pop[0]["overflow"] is True and pop[0]["name"].startswith("Party ")
    assert w2.stats.overflow_taken == 1
    # the third party heard the abandon message and was hung up
    third = [u for _, u, _ in switch.originated if u not in to1 + to2]
    assert len(third) == 1
    assert (third[0], "/snd/abandon.wav", "aleg") in switch.broadcasts
    assert not switch.channels[third[0]].alive
    atts = {a.call_uuid: a for v in attempts_by_record(db).values() for a in v}
    assert atts[to1[0]].result == "answered"
    assert atts[to2[0]].result == "answered"
    assert atts[third[0]].result == "abandoned" and atts[third[0]].abandoned is True
    # D8: both agents reported back idle after their calls
    with db.session() as s:
        states = dict(s.execute(sa.select(Agent.extension, Agent.state)).all())
    assert states == {"1001": AgentState.OFFLINE, "1002": AgentState.OFFLINE}  # workers stopped: offline


def test_d8_state_changes_reported_at_once(db, controller, tmp_path):
    from controller.models import Agent

    camp = make_campaign(db, agents=["1001"], records=1)
    switch = FakeSwitch(lambda n: Outcome("answer", ring_s=0.2, talk_s=1.5))
    w = AgentWorker(settings("1001", controller, camp, tmp_path, heartbeat_s=30.0), switch).start()
    seen = []

    def state():
        with db.session() as s:
            return s.scalar(sa.select(Agent.state).where(Agent.extension == "1001"))

    try:
        with gevent.Timeout(15):
            while True:
                st = state()
                if not seen or seen[-1] != st:
                    seen.append(st)
                if AgentState.TALKING in seen and st is AgentState.IDLE:
                    break
                gevent.sleep(0.05)
    finally:
        w.stop(timeout=2)
    # with a 30-s heartbeat, only the immediate reports can show these changes
    assert AgentState.TALKING in seen and seen[-1] is AgentState.IDLE
    assert seen.index(AgentState.TALKING) < len(seen) - 1


def test_d9_dial_check_refuses_dnc_added_after_lease(db, controller, tmp_path):
    from controller.models import DncEntry

    camp = make_campaign(db, agents=["1001"], records=4)
    gate = gevent.event.Event()
    switch = FakeSwitch(lambda n: Outcome("busy", ring_s=0.05), agent_gate=gate)
    w = AgentWorker(settings("1001", controller, camp, tmp_path, lease_batch=4, low_water=1), switch).start()
    try:
        wait_until(lambda: w.store.held_count() == 4)
        banned = camp.numbers[camp.record_ids[1]]
        with db.session() as s:
            s.add(DncEntry(number=banned, source="test"))
        gate.set()  # the agent answers: dialing starts now
        wait_until(lambda: w.stats.placed == 3 and not w.core.calls and w.store.stats().pending_results == 0)
    finally:
        w.stop(timeout=2)
    assert banned not in [n for n, _, _ in switch.originated]
    assert w.stats.refused.get("dnc") == 1
    atts = attempts_by_record(db)
    assert atts[camp.record_ids[1]][0].result == "dnc" and atts[camp.record_ids[1]][0].call_uuid is None


def test_d2_preview_mode_dials_only_on_click(db, controller, tmp_path):
    camp = make_campaign(db, agents=["1001"], records=5)
    switch = FakeSwitch(lambda n: Outcome("busy", ring_s=0.05))
    w = AgentWorker(settings("1001", controller, camp, tmp_path, mode=DialMode.PREVIEW), switch).start()
    try:
        wait_until(lambda: w.store.held_count() >= 2 and w.core.state is AgentState.IDLE)
        gevent.sleep(0.5)
        assert switch.originated == []
        assert w.preview_dial()
        wait_until(lambda: len(switch.originated) == 1)
        gevent.sleep(0.5)
        assert len(switch.originated) == 1  # one click, one call
    finally:
        w.stop(timeout=2)


def test_p6_disposition_given_in_wrapup_reaches_the_controller(db, controller, tmp_path):
    camp = make_campaign(db, agents=["1001"], records=1)
    switch = FakeSwitch(lambda n: Outcome("answer", ring_s=0.05, talk_s=0.3))
    w = AgentWorker(settings("1001", controller, camp, tmp_path, wrapup_s=30.0), switch).start()
    try:
        wait_until(lambda: w.core.state is AgentState.WRAPUP)
        assert w.store.stats().pending_results == 0 and not attempts_by_record(db)  # waits for the disposition
        w.set_disposition("sale")
        assert w.core.state is AgentState.IDLE  # the disposition ends the wrap-up
        wait_until(lambda: bool(attempts_by_record(db)))
    finally:
        w.stop(timeout=2)
    (att,) = attempts_by_record(db)[camp.record_ids[0]]
    assert (att.result, att.disposition) == ("answered", "sale")


def test_p10_stop_hangs_up_live_calls_and_keeps_their_results(db, controller, tmp_path):
    camp = make_campaign(db, agents=["1001"], records=3)
    switch = FakeSwitch(lambda n: Outcome("answer", ring_s=0.05, talk_s=60.0))
    w = AgentWorker(settings("1001", controller, camp, tmp_path, mode=DialMode.POWER, ratio=2.0), switch).start()
    try:
        wait_until(lambda: w.core.state is AgentState.TALKING)
        placed = len(switch.originated)
    finally:
        w.stop(timeout=2, drain_s=0.3)
    atts = [a for v in attempts_by_record(db).values() for a in v]
    assert len(atts) == placed  # every placed call has its result, none lost to the stop
    assert {a.hangup_cause for a in atts} == {"MANAGER_REQUEST"}
    assert all(not ch.alive for ch in switch.channels.values())


def test_d10_web_lead_dialed_ahead_of_the_list(db, controller, tmp_path):
    from controller.services.distribution import set_campaign_api_key

    from esl_dialer.client import ControllerClient

    camp = make_campaign(db, agents=["1001"], records=40)
    key = set_campaign_api_key(db, camp.id)
    switch = FakeSwitch(lambda n: Outcome("busy", ring_s=0.15))
    w = AgentWorker(settings("1001", controller, camp, tmp_path, lease_batch=5, low_water=2), switch).start()
    lead = "+14155552671"
    try:
        wait_until(lambda: len(switch.originated) >= 6)
        # the affiliated site posts a lead (its own key, not a worker token)
        site = ControllerClient(controller.url, "unused")
        site._headers = lambda extra=None: {"X-API-Key": key, "Content-Type": "application/json"}
        body = site.request("POST", "/api/v1/leads", {"campaign": "c1", "number": lead, "name": "Web Lead"})
        at_post = len(switch.originated)
        assert body["id"]
        wait_until(lambda: lead in [n for n, _, _ in switch.originated])
    finally:
        w.stop(timeout=2, drain_s=1)
    order = [n for n, _, _ in switch.originated]
    pos = order.index(lead)
    # dialed by the next free line after what the worker already held (one lease batch at most),
    # ahead of the 30-odd list records still in the pool
    assert pos <= at_post + 5, (pos, at_post)
    assert len(order) < 40


def test_d4_no_greeting_when_channel_bridge_never_comes(db, controller, tmp_path, caplog):
    """uuid_bridge replied +OK but CHANNEL_BRIDGE did not follow: no greeting into a half-made bridge, and a log."""
    camp = make_campaign(db, agents=["1001"], records=3)

    class NoBridgeEvent(FakeSwitch):
        def bridge(self, a, b, wait_s=None):
            self.bridges.append((a, b))
            if wait_s is not None:
                raise sw.SwitchTimeout(f"no CHANNEL_BRIDGE on {a} within {wait_s} s")

    switch = NoBridgeEvent(lambda n: Outcome("answer", ring_s=0.1, talk_s=0.3))
    w = AgentWorker(settings("1001", controller, camp, tmp_path, mode=DialMode.PROGRESSIVE), switch).start()
    try:
        wait_until(lambda: w.stats.greeting_skipped >= 1, 10)
    finally:
        w.stop(timeout=2)
    assert w.stats.greeting_skipped >= 1
    assert switch.bridges and not switch.broadcasts
    assert "greeting not played" in caplog.text

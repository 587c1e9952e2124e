"""Pure pacing decisions (SPEC D2, D6, D7, X1): exact assertions, no I/O, injected clock."""
from __future__ import annotations

import math

import pytest

from esl_dialer.messages import AgentState, DialMode
from esl_dialer.pacing import (
    OutcomeModel,
    PacingConfig,
    PacingError,
    PowerPacer,
    PredictivePacer,
    PreviewPacer,
    ProgressivePacer,
    make_pacer,
)
from esl_dialer.team import AgentView, TeamSnapshot, agent_share
from esl_dialer.vicidial import VicidialAdaptAverage

IDLE, TALKING, WRAPUP, PAUSED = AgentState.IDLE, AgentState.TALKING, AgentState.WRAPUP, AgentState.PAUSED


class FakeClock:
    def __init__(self, now: float = 1000.0) -> None:
        self.now = now

    def __call__(self) -> float:
        return self.now


def team(now, states, ringing=(), waiting=()):
    """states: list of (state, seconds in that state)."""
    agents = tuple(AgentView(f"a{i}", st, now - age) for i, (st, age) in enumerate(states))
    return TeamSnapshot(now, agents, tuple(ringing), tuple(waiting))


def pacer(mode, clock=None, **kw):
    return make_pacer(PacingConfig(mode=mode, **kw), clock or FakeClock())


def teach(p, answers=200, releases=800, ring=8.0, talk=100.0, wrap=10.0):
    """Feed a pacer a history (interleaved): answer rate answers/(answers+releases)."""
    per = releases // answers
    for i in range(answers):
        p.call_answered(ring + (i % 5) - 2)
        p.call_connected(0.0)
        p.talk_finished(talk * (0.5 + (i % 10) / 9.0))
        p.wrapup_done(wrap)
        for _ in range(per):
            p.call_no_answer(25.0)
    p.model.rebuild()


# -- modes -----------------------------------------------------------------------------
def test_make_pacer_picks_the_mode():
    assert isinstance(pacer(DialMode.PREVIEW), PreviewPacer)
    assert isinstance(pacer(DialMode.PROGRESSIVE), ProgressivePacer)
    assert isinstance(pacer(DialMode.POWER), PowerPacer)
    assert isinstance(pacer(DialMode.PREDICTIVE), PredictivePacer)


def test_d2_progressive_one_line_per_idle_agent():
    p = pacer(DialMode.PROGRESSIVE)
    snap = team(1000, [(IDLE, 5), (IDLE, 1), (IDLE, 0), (TALKING, 30), (WRAPUP, 2), (PAUSED, 9)])
    assert p.lines_to_place(snap) == 3
    snap = team(1000, [(IDLE, 5), (IDLE, 1), (IDLE, 0), (TALKING, 30)], ringing=[995, 999])
    assert p.lines_to_place(snap) == 1
    snap = team(1000, [(IDLE, 5), (TALKING, 30)], ringing=[995], waiting=[999.5])
    assert p.lines_to_place(snap) == 0


def test_d2_power_places_ratio_lines_per_free_agent():
    p = pacer(DialMode.POWER, ratio=2.5)
    assert p.lines_to_place(team(1000, [(IDLE, 1), (IDLE, 2), (TALKING, 40)])) == 5
    assert p.lines_to_place(team(1000, [(IDLE, 1), (IDLE, 2), (TALKING, 40)], ringing=[998, 999])) == 3
    assert p.lines_to_place(team(1000, [(IDLE, 1)])) == 3  # 2.5 rounds to 3
    assert p.lines_to_place(team(1000, [(TALKING, 1), (WRAPUP, 2)])) == 0
    assert pacer(DialMode.POWER, ratio=1.0).lines_to_place(team(1000, [(IDLE, 1), (IDLE, 3)])) == 2


def test_d2_preview_dials_nothing_until_the_agent_clicks():
    p = pacer(DialMode.PREVIEW)
    snap = team(1000, [(IDLE, 60), (IDLE, 30)])
    assert p.lines_to_place(snap) == 0
    p.preview_dial("a1")
    assert p.lines_to_place(snap) == 1
    assert p.lines_to_place(snap) == 0  # one click, one call
    p.preview_dial("a0")
    busy = team(1000, [(TALKING, 60), (IDLE, 30)])
    assert p.lines_to_place(busy) == 0  # a0 is talking: the click waits
    assert p.lines_to_place(snap) == 1


def test_config_rejects_bad_values():
    with pytest.raises(PacingError):
        PacingConfig(ratio=-1)
    with pytest.raises(PacingError):
        PacingConfig(abandon_target=0)
    with pytest.raises(PacingError):
        PacingConfig(theta0=0.0)
    with pytest.raises(PacingError):
        PacingConfig(mode="predictive")


# -- predictive --------------------------------------------------------------------------
def test_predictive_learns_answer_rate_ring_and_talk_times():
    p = pacer(DialMode.PREDICTIVE)
    teach(p, answers=200, releases=800)
    m = p.model
    # a sliding window of the last 600 outcomes (120 answers) plus the weak prior
    assert m.p == pytest.approx((120 + OutcomeModel.P_PRIOR * OutcomeModel.P_WEIGHT) / (600 + OutcomeModel.P_WEIGHT))
    assert 0.19 < m.p < 0.21
    assert m.ring_F(5.0) < 0.2 < 0.8 < m.ring_F(11.0)
    assert m.release_survival(20.0) > 0.9 and m.release_survival(26.0) < 0.01
    assert m.wrap_done_by(5.0, 4.0) == 0.0 and m.wrap_done_by(5.0, 6.0) == 1.0


def test_x1_predictive_with_nobody_logged_in_places_nothing():
    p = pacer(DialMode.PREDICTIVE)
    assert p.lines_to_place(team(1000, [])) == 0
    assert p.lines_to_place(team(1000, [(PAUSED, 10)])) == 0


def test_x1_predictive_dials_ahead_for_idle_agents_and_less_for_busy_ones():
    p = pacer(DialMode.PREDICTIVE)
    teach(p)
    all_idle = p.lines_to_place(team(1000, [(IDLE, 1)] * 10))
    # answer rate 0.2: several lines per idle agent, but not absurdly many
    assert 20 <= all_idle <= 60
    all_busy = p.lines_to_place(team(1000, [(TALKING, 5)] * 10))
    assert all_busy < all_idle / 4
    with_calls = p.lines_to_place(team(1000, [(IDLE, 1)] * 10, ringing=[999.0] * 30))
    assert with_calls < all_idle - 20


def test_x1_predictive_backs_off_when_measured_abandonment_nears_target():
    clock = FakeClock()
    calm, hot = pacer(DialMode.PREDICTIVE, clock), pacer(DialMode.PREDICTIVE, clock)
    teach(calm)
    teach(hot)
    for _ in range(6):  # 6 of 200 answers dropped: exactly at the 3% target
        hot.call_abandoned(2.0)
    snap = team(1000, [(IDLE, 1), (IDLE, 1), (TALKING, 40), (TALKING, 80), (TALKING, 150), (WRAPUP, 4)],
                ringing=[995.0, 997.0])
    assert hot.threshold() < calm.threshold()
    assert hot.threshold() == pytest.approx(calm.threshold() * math.exp(-0.3 * 6), rel=1e-9)
    assert hot.lines_to_place(snap) < calm.lines_to_place(snap)
    # far over target: the threshold hits its floor and the risky calls stop
    for _ in range(30):
        hot.call_abandoned(2.0)
    assert hot.threshold() == hot.config.theta_min
    assert hot.lines_to_place(team(1000, [(TALKING, 5)] * 6)) == 0


def test_x1_predictive_marginal_risk_grows_with_each_extra_line():
    p = pacer(DialMode.PREDICTIVE)
    teach(p)
    snap = team(1000, [(IDLE, 1), (TALKING, 30), (TALKING, 60), (WRAPUP, 3)])
    risks = [p.marginal_risk(snap, n) for n in range(12)]
    assert all(b >= a - 1e-12 for a, b in zip(risks, risks[1:]))
    assert risks[0] < 0.01 and risks[-1] > 0.1
    assert p.expected_abandons(snap, 12) > p.expected_abandons(snap, 0)


def test_x1_waiting_party_makes_predictive_hold_back():
    p = pacer(DialMode.PREDICTIVE)
    teach(p)
    free = team(1000, [(IDLE, 1), (TALKING, 30)])
    queued = team(1000, [(TALKING, 1), (TALKING, 30)], waiting=[999.5])
    assert p.lines_to_place(queued) < p.lines_to_place(free)


def test_abandon_rate_and_window():
    clock = FakeClock(0.0)
    p = pacer(DialMode.PREDICTIVE, clock)
    for _ in range(10):
        p.call_answered(5.0)
    p.call_abandoned(2.0)
    assert p.abandon_rate == pytest.approx(0.1)
    assert p.window_rate() == pytest.approx(0.1)
    clock.now = 4000.0  # past the 1-hour window
    assert p.window_rate() == 0.0
    assert p.abandon_rate == pytest.approx(0.1)
    p.new_day()
    assert p.abandon_rate == 0.0


# -- team share (D6, D7) ------------------------------------------------------------------
def test_d7_team_lines_split_over_agents_that_may_dial():
    snap = team(1000, [(IDLE, 5), (TALKING, 30), (WRAPUP, 2), (IDLE, 9)])
    shares = {a.agent_id: agent_share(5, snap, a.agent_id) for a in snap.agents}
    # free agents first (longest idle first), then wrap-up; the talking agent's worker dials nothing (D6)
    assert shares == {"a3": 2, "a0": 2, "a2": 1, "a1": 0}
    assert agent_share(0, snap, "a0") == 0
    assert agent_share(5, snap, "nobody") == 0
    p = pacer(DialMode.PROGRESSIVE)
    assert p.agent_share(snap, "a3") == 1 and p.agent_share(snap, "a0") == 1 and p.agent_share(snap, "a1") == 0


# -- VICIdial baseline --------------------------------------------------------------------
def test_vicidial_adapt_average_raises_level_when_agents_wait_and_halves_on_drops():
    clock = FakeClock(0.0)
    v = VicidialAdaptAverage(PacingConfig(), clock)
    idle = team(0, [(IDLE, 0)] * 4)
    assert v.lines_to_place(idle) == 4  # L = 1.0: one line per agent not in wrap-up
    t = 0.5
    while t <= 15.0:
        clock.now = t
        v.lines_to_place(team(t, [(IDLE, 0)] * 4, ringing=[0.0] * 4))
        t += 0.5
    assert v.level == 2.0  # every sample: 4 ready of 4 agents -> diff 1 -> L x 2
    clock.now = 15.5
    v.call_placed(60)
    for _ in range(10):
        v.call_answered(5.0)
    for _ in range(6):
        v.call_abandoned(2.0)
    busy = lambda t: team(t, [(TALKING, 1)] * 4, ringing=[t] * 8)  # noqa: E731 - no ready agent: diff 0
    while t <= 30.0:
        clock.now = t
        v.lines_to_place(busy(t))
        t += 0.5
    # update at 30 s: L stays 2.0, then 6 of 10 answers dropped within the last minute
    # (and > 20 calls in it) halve it; the day's rate is not refreshed until 60 s
    assert v.level == 1.0
    while t <= 60.0:
        clock.now = t
        v.lines_to_place(busy(t))
        t += 0.5
    # 45 s: floor 1.0, minute rule -> 0.5; 60 s: floor 1.0, minute rule -> 0.5, day rule -> 0.25
    assert v.level == 0.25
    assert v.lines_to_place(busy(60.0)) == 0  # not a 2.5-s placement instant

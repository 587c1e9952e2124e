"""Team rules (D7) and the virtual-time simulator (X2): invariants and a short predictive shift."""
from __future__ import annotations

import pytest
from click.testing import CliRunner

from esl_dialer.messages import AgentState, DialMode
from esl_dialer.pacing import PacingConfig, make_pacer
from esl_dialer.team import Connect, Team, TeamError
from esl_dialer.vicidial import VicidialAdaptAverage
from esl_dialer.vsim import InvariantError, SimConfig, SimError, Simulation, simulate


def factory(mode, **kw):
    def build(clock):
        return make_pacer(PacingConfig(mode=mode, **kw), clock)

    return build


# -- team rules ------------------------------------------------------------------------
def test_d7_answered_party_goes_to_longest_idle_agent():
    t = Team()
    t.login("a", 10.0)
    t.login("b", 5.0)
    t.login("c", 7.0)
    assert t.answered("call1", 20.0) == Connect("call1", "b", 0.0)
    assert t.answered("call2", 21.0) == Connect("call2", "c", 0.0)
    assert t.agent("b").state is AgentState.TALKING
    assert t.call_of("b") == "call1"


def test_d7_party_waits_fcfs_and_is_abandoned_only_after_two_seconds():
    t = Team()
    t.login("a", 0.0)
    assert t.answered("c1", 10.0).agent_id == "a"
    assert t.answered("c2", 11.0) is None
    assert t.answered("c3", 11.5) is None
    assert t.next_deadline() == 13.0
    assert t.expire(12.9) == []
    t.set_state("a", AgentState.WRAPUP, 12.0)
    # the agent frees at 12.9: the oldest party (c2) gets it after 1.9 s
    assert t.agent_free("a", 12.9) == Connect("c2", "a", pytest.approx(1.9))
    assert t.expire(13.4) == []
    assert t.expire(13.6) == [("c3", 11.5)]
    assert t.waiting_since() == ()


def test_d7_expired_party_is_never_connected():
    t = Team()
    t.login("a", 0.0)
    t.answered("c1", 1.0)
    t.answered("c2", 2.0)  # waits
    t.set_state("a", AgentState.WRAPUP, 3.0)
    assert t.agent_free("a", 4.5) is None  # c2 waited 2.5 s: not connected...
    assert t.expire(4.5) == [("c2", 2.0)]  # ...but reported as abandoned


def test_d7_agent_never_gets_two_calls_and_misuse_is_an_error():
    t = Team()
    t.login("a", 0.0)
    t.answered("c1", 1.0)
    with pytest.raises(TeamError):
        t.answered("c1", 1.5)
    with pytest.raises(TeamError):
        t.login("a", 2.0)
    with pytest.raises(TeamError):
        t.set_state("zz", AgentState.WRAPUP, 2.0)
    with pytest.raises(TeamError):
        t.set_state("a", AgentState.IDLE, 2.0)
    with pytest.raises(TeamError):
        Team(max_wait_s=-1)


# -- simulator invariants ----------------------------------------------------------------
@pytest.mark.parametrize(
    "build",
    [
        factory(DialMode.PROGRESSIVE),
        factory(DialMode.POWER, ratio=4.0),  # over-dials: many waits and abandons
        factory(DialMode.PREDICTIVE),
        lambda clock: VicidialAdaptAverage(PacingConfig(), clock),
    ],
    ids=["progressive", "power4", "predictive", "vicidial"],
)
def test_x2_vsim_invariants_hold(build):
    cfg = SimConfig(agents=6, answer_rate=0.3, talk_mean=60.0, hours=0.5, seed=3)
    sim = Simulation(cfg, build, check=True)
    original = sim._start_talk
    connects = []

    def start_talk(conn):  # an agent never has two calls at once
        assert conn.agent_id not in sim._talk_start, f"{conn.agent_id} already talking"
        assert sim.team.call_of(conn.agent_id) == conn.call_id
        connects.append(conn)
        original(conn)

    sim._start_talk = start_talk
    r = sim.run()  # check=True raises InvariantError on any broken rule
    assert len(connects) == r.connected
    assert len({c.call_id for c in connects}) == r.connected  # each party connected once
    assert r.placed == r.answered + r.no_answer  # conservation of calls
    assert r.answered == r.connected + r.abandoned
    assert r.max_connect_s <= cfg.max_wait_s
    assert 0 <= r.occupancy <= 1
    assert r.talk_s <= cfg.agents * cfg.hours * 3600


def test_x2_vsim_overdialling_abandons_and_reports_it():
    r = simulate(SimConfig(agents=4, answer_rate=0.5, talk_mean=60.0, hours=0.5, seed=1),
                 factory(DialMode.POWER, ratio=5.0), check=True)
    assert r.abandoned > 0
    assert r.abandon_rate == pytest.approx(r.abandoned / r.answered)
    assert r.worst_hour_abandon_rate >= r.abandon_rate - 1e-9


def test_x2_vsim_is_deterministic_per_seed():
    cfg = SimConfig(agents=5, answer_rate=0.25, talk_mean=60.0, hours=0.5, seed=7)
    a = simulate(cfg, factory(DialMode.PREDICTIVE))
    b = simulate(cfg, factory(DialMode.PREDICTIVE))
    assert a == b
    c = simulate(SimConfig(agents=5, answer_rate=0.25, talk_mean=60.0, hours=0.5, seed=8), factory(DialMode.PREDICTIVE))
    assert c != a


def test_x2_progressive_never_abandons():
    r = simulate(SimConfig(agents=5, answer_rate=0.3, talk_mean=60.0, hours=1, seed=2), factory(DialMode.PROGRESSIVE))
    assert r.abandoned == 0 and r.mean_connect_s == 0.0


def test_x2_bad_simulation_parameters_are_rejected():
    with pytest.raises(SimError):
        SimConfig(agents=0)
    with pytest.raises(SimError):
        SimConfig(answer_rate=1.5)
    with pytest.raises(SimError):
        SimConfig(ring_min=20, ring_max=10)
    assert issubclass(InvariantError, AssertionError)


@pytest.mark.slow
def test_x1_short_predictive_shift_keeps_abandonment_under_target():
    cfg = SimConfig(agents=10, answer_rate=0.3, talk_mean=90.0, hours=2.0, seed=11, enforce_d6=True)
    ours = simulate(cfg, factory(DialMode.PREDICTIVE), check=True)
    progressive = simulate(cfg, factory(DialMode.PROGRESSIVE))
    assert ours.abandon_rate <= 0.03
    assert ours.answered > 300
    assert ours.occupancy > progressive.occupancy + 0.15


# -- CLI ---------------------------------------------------------------------------------
def test_x2_dialer_simulate_prints_the_figures():
    from controller.cli import main

    res = CliRunner().invoke(main, ["simulate", "--agents", "5", "--answer-rate", "0.3", "--talk-mean", "60",
                                    "--mode", "progressive", "--hours", "0.25"])
    assert res.exit_code == 0, res.output
    for label in ("occupancy:", "abandonment rate:", "worst 1-hour abandon:", "calls per agent-hour:",
                  "answer-to-agent connect:"):
        assert label in res.output
    assert "abandonment rate:        0.00% (0 of" in res.output
    bad = CliRunner().invoke(main, ["simulate", "--answer-rate", "0"])
    assert bad.exit_code == 2
    assert "answer rate must be in (0, 1]" in bad.output
    js = CliRunner().invoke(main, ["simulate", "--agents", "3", "--hours", "0.1", "--mode", "power", "--json"])
    assert js.exit_code == 0 and '"occupancy"' in js.output

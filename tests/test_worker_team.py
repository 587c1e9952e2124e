"""Team pacing of the agents hosted by one process (D2, D7): one pacer, disjoint shares."""
from __future__ import annotations

from esl_dialer.call_state import Call
from esl_dialer.messages import AgentState, DialMode
from esl_dialer.worker import WorkerSettings
from esl_dialer.worker_host import WorkerHost
from worker_harness import FakeSwitch


def host(tmp_path, mode=DialMode.PROGRESSIVE, n=3, **kw):
    settings = [WorkerSettings(agent=f"100{i}", controller="http://127.0.0.1:9", token=f"t{i}",
                               data_dir=tmp_path, mode=mode, **kw) for i in range(1, n + 1)]
    return WorkerHost(settings, FakeSwitch())


def stock(h, n=5):
    for i, w in enumerate(h.workers):
        w.store.add_leased([{"id": 100 * i + k, "number": f"+1202555{100 * i + k:04d}"} for k in range(n)], 600)


def test_d7_team_shares_are_disjoint_and_skip_talking_agents(tmp_path):
    h = host(tmp_path)
    assert h.team is not None and all(w.pacer is h.team.pacer for w in h.workers)
    stock(h)
    w1, w2, w3 = h.workers
    for i, w in enumerate(h.workers):
        w.core.login(float(i))
    w2.core.placed(Call("a", {"id": 1}), 5.0)
    w2.core.answered("a", 6.0)
    assert w2.core.state is AgentState.TALKING
    snap = h.team.snapshot(10.0)
    assert snap.free == 2 and snap.talking == 1
    shares = {w.s.agent: h.team.lines_for(w.s.agent, 10.0) for w in h.workers}
    assert shares == {"1001": 1, "1002": 0, "1003": 1}  # progressive: one line per free agent
    # a team call already ringing (placed by 1001) counts for the whole team
    w1.core.placed(Call("b", {"id": 2}), 11.0)
    shares = {w.s.agent: h.team.lines_for(w.s.agent, 12.0) for w in h.workers}
    assert sum(shares.values()) == 1 and shares["1002"] == 0
    # a worker with nothing left to dial gets no share: its line goes to one that can dial
    for rid in w3.store.held_ids():
        w3.store.drop(rid)
    shares = {w.s.agent: h.team.lines_for(w.s.agent, 12.0) for w in h.workers}
    assert shares == {"1001": 1, "1002": 0, "1003": 0}
    for w in h.workers:
        w.store.close()


def test_d2_power_team_lines_and_preview_stays_per_agent(tmp_path):
    h = host(tmp_path, mode=DialMode.POWER, ratio=2.0)
    stock(h)
    for i, w in enumerate(h.workers):
        w.core.login(float(i))
    assert sum(h.team.lines_for(w.s.agent, 5.0) for w in h.workers) == 6
    for w in h.workers:
        w.store.close()
    p = host(tmp_path / "p", mode=DialMode.PREVIEW)
    assert p.team is None and len({id(w.pacer) for w in p.workers}) == 3
    for w in p.workers:
        w.store.close()
    one = host(tmp_path / "one", n=1)
    assert one.team is None
    one.workers[0].store.close()

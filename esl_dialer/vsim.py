"""Virtual-time simulation of a dialing team (SPEC X2): no sockets, a heap of events.

It runs the real pacing code (``esl_dialer.pacing``) and the real team rules
(``esl_dialer.team``: longest-idle agent first, 2-second wait, FCFS) against
the call model of the pacing benchmark (issue 5):

* N agents logged in for the shift, all free at the start;
* a call is answered by a live person with probability p after a ring time
  uniform on [ring_min, ring_max] s, else released as no-answer at
  ``no_answer_s`` s;
* an answered party waits at most 2 s for an agent, else it is abandoned;
* talk time log-normal with mean ``talk_mean`` and coefficient of variation
  ``talk_cv``; a fixed wrap-up after each call; no trunk limit.

Each call's fate (answered?, ring time, talk time) is drawn from its own
random stream indexed by the call's sequence number, so two pacing methods
run with the same seed see the same sequence of prospects (common random
numbers make comparisons and the ratio sweep far less noisy).

Occupancy = talk time inside the shift / (N x shift).  Abandonment =
abandoned / live answers.  Calls are placed only during the shift; calls
still in progress at its end are played out.
"""
from __future__ import annotations

import dataclasses
import heapq
import math
import random
from typing import Callable, Dict, List, Optional, Tuple

from .messages import AgentState
from .pacing import Pacer
from .team import MAX_WAIT_S, Connect, Team, agent_share

PacerFactory = Callable[[Callable[[], float]], Pacer]

# event kinds (ordered: at equal times, earlier kinds are processed first)
_WRAP_END, _TALK_END, _NO_ANSWER, _ANSWER, _EXPIRE, _TICK = range(6)


class SimError(ValueError):
    """Invalid simulation parameters."""


class InvariantError(AssertionError):
    """The simulation broke one of its own rules (a bug, never bad input)."""


@dataclasses.dataclass(frozen=True)
class SimConfig:
    agents: int = 20
    answer_rate: float = 0.3
    talk_mean: float = 120.0
    talk_cv: float = 1.0
    wrap_s: float = 10.0
    ring_min: float = 3.0
    ring_max: float = 15.0
    no_answer_s: float = 25.0
    max_wait_s: float = MAX_WAIT_S
    hours: float = 8.0
    seed: int = 0
    #: D6: only workers whose agent has no active call may originate (the team's
    #: lines are split over free and wrap-up agents; with all agents talking, none).
    enforce_d6: bool = False

    def __post_init__(self) -> None:
        if self.agents < 1:
            raise SimError("agents must be >= 1")
        if not 0 < self.answer_rate <= 1:
            raise SimError("answer rate must be in (0, 1]")
        if self.talk_mean <= 0 or self.talk_cv < 0 or self.wrap_s < 0:
            raise SimError("talk mean must be > 0, talk CV and wrap-up >= 0")
        if not 0 <= self.ring_min <= self.ring_max <= self.no_answer_s:
            raise SimError("need 0 <= ring_min <= ring_max <= no_answer_s")
        if self.hours <= 0 or self.hours > 24 * 31:
            raise SimError("hours must be in (0, 744]")


@dataclasses.dataclass(frozen=True)
class SimResult:
    agents: int
    shift_s: float
    placed: int
    answered: int
    connected: int
    abandoned: int
    no_answer: int
    talk_s: float
    occupancy: float
    abandon_rate: float
    worst_hour_abandon_rate: float
    calls_per_agent_hour: float  # connected calls
    dials_per_agent_hour: float
    mean_connect_s: float  # answer -> agent, connected calls
    max_connect_s: float
    max_ringing: int

    def as_dict(self) -> Dict[str, float]:
        return dataclasses.asdict(self)


class Simulation:
    """One shift.  ``run()`` returns a ``SimResult``; ``check=True`` audits invariants."""

    def __init__(self, config: SimConfig, pacer_factory: PacerFactory, check: bool = False) -> None:
        self.cfg = config
        self.now = 0.0
        self.pacer = pacer_factory(self._clock)
        self.team = Team(config.max_wait_s)
        self.check = check
        self._heap: List[Tuple[float, int, int, object]] = []
        self._seq = 0
        self._ringing: Dict[int, float] = {}
        self._calls: Dict[int, Tuple[bool, float, float]] = {}
        self._answered_at: Dict[int, float] = {}
        self._talk_start: Dict[str, float] = {}
        self._fate_seed = config.seed * 1_000_003 + 17
        sigma2 = math.log(1.0 + config.talk_cv**2)
        self._talk_sigma = math.sqrt(sigma2)
        self._talk_mu = math.log(config.talk_mean) - sigma2 / 2.0
        self.shift_s = config.hours * 3600.0
        # counters
        self.placed = self.answered = self.connected = self.abandoned = self.no_answer = 0
        self.talk_s = 0.0
        self._connect_wait_sum = 0.0
        self._connect_wait_max = 0.0
        self._max_ringing = 0
        self._minute_answered = [0] * (int(self.shift_s // 60) + 2)
        self._minute_abandoned = [0] * (int(self.shift_s // 60) + 2)
        self._agent_ids = [f"a{i:03d}" for i in range(config.agents)]

    def _clock(self) -> float:
        return self.now

    # -- fates ---------------------------------------------------------------------
    def _fate(self, call_id: int) -> Tuple[bool, float, float]:
        rng = random.Random(self._fate_seed + call_id * 7919)
        c = self.cfg
        live = rng.random() < c.answer_rate
        ring = rng.uniform(c.ring_min, c.ring_max) if live else c.no_answer_s
        talk = rng.lognormvariate(self._talk_mu, self._talk_sigma) if c.talk_cv > 0 else c.talk_mean
        return live, ring, talk

    def _push(self, t: float, kind: int, payload: object) -> None:
        self._seq += 1
        heapq.heappush(self._heap, (t, kind, self._seq, payload))

    # -- main loop -----------------------------------------------------------------
    def run(self) -> SimResult:
        for agent_id in self._agent_ids:
            self.team.login(agent_id, 0.0)
        self._push(0.0, _TICK, None)
        handlers = {
            _WRAP_END: self._on_wrap_end,
            _TALK_END: self._on_talk_end,
            _NO_ANSWER: self._on_no_answer,
            _ANSWER: self._on_answer,
            _EXPIRE: self._on_expire,
            _TICK: self._on_tick,
        }
        heap = self._heap
        while heap:
            t, kind, _, payload = heapq.heappop(heap)
            self.now = t
            handlers[kind](payload)
        return self._result()

    def _dial(self) -> None:
        if self.now >= self.shift_s:
            return
        snap = self.team.snapshot(self.now, self._ringing.values())
        n = self.pacer.lines_to_place(snap)
        if n <= 0:
            return
        if self.cfg.enforce_d6:
            n = sum(agent_share(n, snap, a.agent_id) for a in snap.agents)
        for _ in range(n):
            call_id = self.placed
            self.placed += 1
            live, ring, talk = self._fate(call_id)
            self._calls[call_id] = (live, ring, talk)
            self._ringing[call_id] = self.now
            self.pacer.call_placed()
            self._push(self.now + ring, _ANSWER if live else _NO_ANSWER, call_id)
        if len(self._ringing) > self._max_ringing:
            self._max_ringing = len(self._ringing)

    def _on_tick(self, _payload: object) -> None:
        self._dial()
        nxt = self.now + self.pacer.tick_s
        if nxt < self.shift_s:
            self._push(nxt, _TICK, None)

    def _on_no_answer(self, call_id: int) -> None:
        placed_at = self._ringing.pop(call_id)
        self.no_answer += 1
        self.pacer.call_no_answer(self.now - placed_at)
        if self.pacer.reacts_to_release:
            self._dial()

    def _on_answer(self, call_id: int) -> None:
        placed_at = self._ringing.pop(call_id)
        self.answered += 1
        self._count_minute(self._minute_answered)
        self._answered_at[call_id] = self.now
        self.pacer.call_answered(self.now - placed_at)
        conn = self.team.answered(call_id, self.now)
        if conn is None:
            self._push(self.now + self.cfg.max_wait_s, _EXPIRE, call_id)
        else:
            self._start_talk(conn)

    def _on_expire(self, call_id: int) -> None:
        # the deadline event fires exactly max_wait_s after the answer; expire()
        # drops strictly-older parties, so nudge past the boundary
        for dropped, answered_at in self.team.expire(self.now + 1e-9):
            if self.check and self.now - answered_at < self.cfg.max_wait_s - 1e-6:
                raise InvariantError(f"call {dropped} abandoned after {self.now - answered_at:.3f} s")
            self.abandoned += 1
            self._count_minute(self._minute_abandoned, self._answered_at[dropped])
            self.pacer.call_abandoned(self.now - answered_at)
        self._dial()

    def _start_talk(self, conn: Connect) -> None:
        if self.check and conn.wait_s > self.cfg.max_wait_s + 1e-6:
            raise InvariantError(f"call {conn.call_id} connected after {conn.wait_s:.3f} s")
        self.connected += 1
        self._connect_wait_sum += conn.wait_s
        self._connect_wait_max = max(self._connect_wait_max, conn.wait_s)
        self.pacer.call_connected(conn.wait_s)
        talk = self._calls[conn.call_id][2]
        self._talk_start[conn.agent_id] = self.now
        self._push(self.now + talk, _TALK_END, conn.agent_id)

    def _on_talk_end(self, agent_id: str) -> None:
        start = self._talk_start.pop(agent_id)
        end = self.now
        if start < self.shift_s:
            self.talk_s += min(end, self.shift_s) - start
        self.pacer.talk_finished(end - start)
        self.team.set_state(agent_id, AgentState.WRAPUP, self.now)
        self._push(self.now + self.cfg.wrap_s, _WRAP_END, agent_id)
        self._dial()

    def _on_wrap_end(self, agent_id: str) -> None:
        self.pacer.wrapup_done(self.cfg.wrap_s)
        conn = self.team.agent_free(agent_id, self.now)
        if conn is not None:
            self._start_talk(conn)
        self._dial()

    # -- accounting ----------------------------------------------------------------
    def _count_minute(self, bins: List[int], at: Optional[float] = None) -> None:
        t = self.now if at is None else at
        i = min(int(t // 60), len(bins) - 1)
        bins[i] += 1

    def _worst_hour(self) -> float:
        ans, ab = self._minute_answered, self._minute_abandoned
        n = len(ans)
        span = min(60, n)
        worst = 0.0
        a_sum = sum(ans[:span])
        b_sum = sum(ab[:span])
        for start in range(0, max(1, n - span + 1)):
            if start:
                a_sum += ans[start + span - 1] - ans[start - 1]
                b_sum += ab[start + span - 1] - ab[start - 1]
            if a_sum:
                worst = max(worst, b_sum / a_sum)
        return worst

    def _result(self) -> SimResult:
        if self.check:
            if self.placed != self.answered + self.no_answer + len(self._ringing):
                raise InvariantError("placed calls != answered + no-answer + ringing")
            if self.answered != self.connected + self.abandoned:
                raise InvariantError("answered != connected + abandoned")
            if self._ringing or self.team.waiting_since():
                raise InvariantError("calls left in progress after the run")
        c = self.cfg
        agent_hours = c.agents * c.hours
        return SimResult(
            agents=c.agents,
            shift_s=self.shift_s,
            placed=self.placed,
            answered=self.answered,
            connected=self.connected,
            abandoned=self.abandoned,
            no_answer=self.no_answer,
            talk_s=self.talk_s,
            occupancy=self.talk_s / (c.agents * self.shift_s),
            abandon_rate=self.abandoned / self.answered if self.answered else 0.0,
            worst_hour_abandon_rate=self._worst_hour(),
            calls_per_agent_hour=self.connected / agent_hours,
            dials_per_agent_hour=self.placed / agent_hours,
            mean_connect_s=self._connect_wait_sum / self.connected if self.connected else 0.0,
            max_connect_s=self._connect_wait_max,
            max_ringing=self._max_ringing,
        )


def simulate(config: SimConfig, pacer_factory: PacerFactory, check: bool = False) -> SimResult:
    """Run one shift of ``config`` with the pacer built by ``pacer_factory(clock)``."""
    return Simulation(config, pacer_factory, check=check).run()

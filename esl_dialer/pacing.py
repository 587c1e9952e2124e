"""How many lines to dial now: preview, progressive, power and predictive pacing.

Pure module (STYLE "pure modules"): no I/O, no gevent, no ``time`` calls.  The
clock is injected (``clock()`` returns seconds on any monotonic scale), so the
same code runs in a worker in real time and in ``esl_dialer.vsim`` in virtual
time.

Usage from a worker::

    pacer = Pacer(PacingConfig(mode=DialMode.PREDICTIVE), clock=time.monotonic)
    pacer.call_placed()                 # after each originate
    pacer.call_answered(ring_s)         # live answer after ring_s seconds
    pacer.call_no_answer(ring_s)        # released unanswered (also busy/failed)
    pacer.call_connected(wait_s)        # party bridged to an agent after wait_s
    pacer.call_abandoned(wait_s)        # party dropped (no agent within 2 s)
    pacer.talk_finished(talk_s)         # agent hung up, enters wrap-up
    pacer.wrapup_done(wrap_s)           # agent free again
    n = pacer.lines_to_place(team)      # team lines to originate now
    mine = pacer.agent_share(team, my_agent_id, n)

Predictive pacing (``PredictivePacer``) looks ``horizon`` seconds ahead on a
one-second grid.  For every agent it computes the probability of being free
(talk ended and wrap-up done) by each grid time plus the 2-s grace, from a
log-normal talk-time model conditioned on the talk time already elapsed; for
every call ringing it computes the probability of a live answer by each grid
time, conditioned on how long it has rung (answered calls ring for a learnt
distribution, unanswered ones until a learnt release time).  Answered parties
are matched to agents first come first served; by Hall's theorem the number
left without an agent within 2 s is ``max_t (answers by t - agents free by t+2)``,
so the expected abandons are approximated by ``max_t E[(D_t - S_t)^+]`` with a
normal approximation of each sum of independent Bernoulli terms.  A new call
is placed while its marginal abandon probability (increase of expected
abandons per expected live answer) is under a threshold ``theta``; ``theta``
is steered by the abandon budget actually left (``target x answered - abandoned``,
less a safety margin, over the day and over the last hour), so the pacer spends
budget while under the target and backs off as the measured rate nears it.
"""
from __future__ import annotations

import bisect
import collections
import dataclasses
import logging
import math
from typing import Callable, Deque, Dict, Hashable, List, Optional, Set, Tuple

from .messages import AgentState, DialMode
from .team import FREE_STATES, TeamSnapshot, agent_share

logger = logging.getLogger(__name__)

Clock = Callable[[], float]

_SQRT2 = math.sqrt(2.0)
_INV_SQRT_2PI = 1.0 / math.sqrt(2.0 * math.pi)


class PacingError(ValueError):
    """Invalid pacing configuration or input."""


@dataclasses.dataclass(frozen=True)
class PacingConfig:
    """Pacing settings; the defaults are the one configuration the benchmark uses.

    ``ratio``: lines per free agent in power mode.
    ``abandon_target``: the legal/campaign limit on abandoned / live answers.
    ``margin_z``: predictive pacing keeps ``margin_z`` standard deviations of the
    abandon count (``sqrt(target x answered)``) of the day's budget in reserve.
    ``theta0``/``kappa``: marginal-risk threshold when the budget is balanced, and
    how strongly one abandon of budget (spent or saved) moves it (factor e^kappa).
    ``window_s``: length of the rolling window also held to ``abandon_target``.
    ``horizon_s``: longest look-ahead (answers later than this are not expected).
    ``max_lines_per_agent``: safety cap on ringing lines per active agent.
    """

    mode: DialMode = DialMode.PREDICTIVE
    ratio: float = 2.0
    abandon_target: float = 0.03
    margin_z: float = 1.0
    theta0: float = 0.02
    kappa: float = 0.3
    theta_min: float = 0.002
    theta_max: float = 0.6
    window_s: float = 3600.0
    horizon_s: float = 40.0
    max_lines_per_agent: float = 6.0
    tick_s: float = 1.0
    refresh_s: float = 20.0

    def __post_init__(self) -> None:
        if not isinstance(self.mode, DialMode):
            raise PacingError(f"unknown dial mode {self.mode!r}")
        if self.ratio < 0 or not math.isfinite(self.ratio):
            raise PacingError("ratio must be a finite number >= 0")
        if not 0 < self.abandon_target < 1 or self.margin_z < 0:
            raise PacingError("need 0 < abandon_target < 1 and margin_z >= 0")
        if not 0 < self.theta_min <= self.theta0 <= self.theta_max:
            raise PacingError("need 0 < theta_min <= theta0 <= theta_max")
        if self.tick_s <= 0 or self.horizon_s < 2 or self.window_s <= 0:
            raise PacingError("tick_s, horizon_s and window_s must be positive")


# --------------------------------------------------------------------------------------
# Estimators: learn from observed outcomes, start from weak priors.
# --------------------------------------------------------------------------------------
class OutcomeModel:
    """Answer probability, ring-time, release-time, talk-time and wrap-up estimates.

    Every estimate blends a weak prior with a sliding window of recent
    observations, so it follows a list or a time of day that changes.  The
    priors are deliberately on the cautious side (more answers, longer talks
    than typical) so that a cold start under-dials rather than abandons.
    """

    RING_GRID = 120  # seconds covered by the ring-time tables

    def __init__(self, window: int = 600) -> None:
        self.answers: Deque[float] = collections.deque(maxlen=window)  # ring times of live answers
        self.releases: Deque[float] = collections.deque(maxlen=window)  # ring times of unanswered calls
        self.talks: Deque[float] = collections.deque(maxlen=window)
        self.wraps: Deque[float] = collections.deque(maxlen=window)
        self.outcomes: Deque[bool] = collections.deque(maxlen=window)
        self.version = 0
        self._build()

    # priors
    P_PRIOR, P_WEIGHT = 0.5, 4.0
    RING_PRIOR_LO, RING_PRIOR_HI, RING_PRIOR_WEIGHT = 2.0, 20.0, 3.0
    RELEASE_PRIOR, RELEASE_PRIOR_WEIGHT = 30.0, 2.0
    TALK_PRIOR_MEDIAN, TALK_PRIOR_S2, TALK_PRIOR_WEIGHT = 150.0, 0.5, 5.0
    WRAP_PRIOR, WRAP_PRIOR_WEIGHT = 15.0, 1.0

    def observe_answer(self, ring_s: float) -> None:
        self.answers.append(max(0.0, ring_s))
        self.outcomes.append(True)

    def observe_release(self, ring_s: float) -> None:
        self.releases.append(max(0.0, ring_s))
        self.outcomes.append(False)

    def observe_talk(self, talk_s: float) -> None:
        self.talks.append(max(0.5, talk_s))

    def observe_wrap(self, wrap_s: float) -> None:
        self.wraps.append(max(0.0, wrap_s))

    def rebuild(self) -> None:
        self._build()
        self.version += 1

    def _build(self) -> None:
        n = len(self.outcomes)
        hits = sum(self.outcomes)
        self.p = (hits + self.P_PRIOR * self.P_WEIGHT) / (n + self.P_WEIGHT)
        # ring-time CDF of answered calls on a 1-s grid (prior: uniform lo..hi)
        g = self.RING_GRID
        hist = [0.0] * (g + 1)
        lo, hi, w = self.RING_PRIOR_LO, self.RING_PRIOR_HI, self.RING_PRIOR_WEIGHT
        for s in range(int(lo), int(hi)):
            hist[s + 1] += w / (hi - lo)
        for r in self.answers:
            _spread(hist, r)
        total = sum(hist)
        cdf, acc = [], 0.0
        for h in hist:
            acc += h
            cdf.append(acc / total)
        self.ring_cdf = cdf
        # survival of unanswered calls (released at a learnt time)
        rel = sorted(self.releases)
        self._release_sorted = rel
        self._release_weight = self.RELEASE_PRIOR_WEIGHT
        # quantile of answered ring time that bounds the look-ahead
        self.ring_p99 = next((i for i, c in enumerate(cdf) if c >= 0.995), g)
        # talk: log-normal fitted on logs
        logs = [math.log(t) for t in self.talks]
        w = self.TALK_PRIOR_WEIGHT
        m0 = math.log(self.TALK_PRIOR_MEDIAN)
        k = len(logs)
        mu = (sum(logs) + w * m0) / (k + w)
        ss = sum((x - mu) ** 2 for x in logs) + w * (self.TALK_PRIOR_S2 + (m0 - mu) ** 2)
        self.talk_mu = mu
        self.talk_sigma = max(0.05, math.sqrt(ss / (k + w)))
        # wrap-up: empirical sample (prior: one observation)
        wraps = sorted(self.wraps) if self.wraps else [self.WRAP_PRIOR]
        self._wrap_sorted = wraps
        self.wrap_mean = (sum(self.wraps) + self.WRAP_PRIOR * self.WRAP_PRIOR_WEIGHT) / (
            len(self.wraps) + self.WRAP_PRIOR_WEIGHT
        )

    # conditional probabilities -------------------------------------------------
    def ring_F(self, t: float) -> float:
        if t <= 0:
            return 0.0
        g = self.RING_GRID
        if t >= g:
            return 1.0
        i = int(t)
        c = self.ring_cdf
        return c[i] + (c[i + 1] - c[i]) * (t - i)

    def release_survival(self, t: float) -> float:
        """P(an unanswered call is still ringing after t seconds)."""
        rel = self._release_sorted
        n = len(rel)
        above = n - bisect.bisect_right(rel, t)
        prior = self._release_weight if t < self.RELEASE_PRIOR else 0.0
        return (above + prior) / (n + self._release_weight)

    def talk_F(self, t: float) -> float:
        if t <= 0:
            return 0.0
        return 0.5 * (1.0 + math.erf((math.log(t) - self.talk_mu) / (self.talk_sigma * _SQRT2)))

    def wrap_done_by(self, elapsed: float, more: float) -> float:
        """P(wrap-up done within ``more`` s | it has lasted ``elapsed`` s)."""
        ws = self._wrap_sorted
        i = bisect.bisect_right(ws, elapsed)
        left = len(ws) - i
        if left == 0:  # longer than every wrap-up seen: assume it ends soon
            return 0.5 if more > 0 else 0.0
        return (bisect.bisect_right(ws, elapsed + more) - i) / left


def _spread(hist: List[float], r: float) -> None:
    """Add one observation to a 1-s histogram (bin i+1 holds (i, i+1])."""
    i = int(r)
    if i + 1 < len(hist):
        hist[i + 1] += 1.0
    else:
        hist[-1] += 1.0


def _expected_excess(mean: float, var: float) -> float:
    """E[(Y)^+] for Y ~ Normal(mean, var)."""
    if var <= 1e-12:
        return mean if mean > 0 else 0.0
    s = math.sqrt(var)
    z = mean / s
    return s * _INV_SQRT_2PI * math.exp(-0.5 * z * z) + mean * 0.5 * (1.0 + math.erf(z / _SQRT2))


# --------------------------------------------------------------------------------------
# The pacers
# --------------------------------------------------------------------------------------
class Pacer:
    """Feedback in, decisions out.  Subclasses implement ``_lines``.

    Counters (``answered``, ``abandoned``) are for the current day; call
    ``new_day()`` at the start of a campaign day (the target is per day/campaign).
    """

    #: whether a call released unanswered is worth an immediate new decision
    reacts_to_release = True

    def __init__(self, config: PacingConfig, clock: Clock) -> None:
        self.config = config
        self.clock = clock
        self.tick_s = config.tick_s
        self.model = OutcomeModel()
        self.placed = 0
        self.answered = 0
        self.abandoned = 0
        self.connected = 0
        self._window: Deque[Tuple[float, bool]] = collections.deque()
        self._window_answered = 0
        self._window_abandoned = 0
        self._preview_clicks: Set[Hashable] = set()
        self._last_refresh = -math.inf
        self._dirty = False

    # -- feedback from the worker ------------------------------------------------
    def call_placed(self, n: int = 1) -> None:
        self.placed += n

    def call_answered(self, ring_s: float) -> None:
        self.answered += 1
        self.model.observe_answer(ring_s)
        self._window_push(False)
        self._dirty = True

    def call_no_answer(self, ring_s: float) -> None:
        self.model.observe_release(ring_s)
        self._dirty = True

    def call_connected(self, wait_s: float) -> None:
        self.connected += 1

    def call_abandoned(self, wait_s: float = 0.0) -> None:
        self.abandoned += 1
        self._window_push(True)

    def talk_finished(self, talk_s: float) -> None:
        self.model.observe_talk(talk_s)
        self._dirty = True

    def wrapup_done(self, wrap_s: float) -> None:
        self.model.observe_wrap(wrap_s)
        self._dirty = True

    def preview_dial(self, agent_id: Hashable) -> None:
        """Preview mode: the agent clicked "dial"; one line for that agent when free."""
        self._preview_clicks.add(agent_id)

    def new_day(self) -> None:
        self.answered = self.abandoned = self.connected = self.placed = 0
        self._window.clear()
        self._window_answered = self._window_abandoned = 0

    # -- decisions ---------------------------------------------------------------
    def lines_to_place(self, team: TeamSnapshot) -> int:
        """Number of new team lines to originate now (>= 0)."""
        now = self.clock()
        if self._dirty and now - self._last_refresh >= self._refresh_interval():
            self.model.rebuild()
            self._last_refresh = now
            self._dirty = False
        n = self._lines(team, now)
        return max(0, int(n))

    def agent_share(self, team: TeamSnapshot, agent_id: Hashable, total: Optional[int] = None) -> int:
        """How many of the team's new lines this agent's worker originates (see ``team.agent_share``)."""
        if total is None:
            total = self.lines_to_place(team)
        return agent_share(total, team, agent_id)

    @property
    def abandon_rate(self) -> float:
        return self.abandoned / self.answered if self.answered else 0.0

    def window_rate(self) -> float:
        self._window_trim(self.clock())
        return self._window_abandoned / self._window_answered if self._window_answered else 0.0

    # -- internals ---------------------------------------------------------------
    def _refresh_interval(self) -> float:
        # learn fast while data is scarce, then every refresh_s
        return 3.0 if len(self.model.outcomes) < 200 else self.config.refresh_s

    def _window_push(self, abandoned: bool) -> None:
        now = self.clock()
        if abandoned:
            self._window_abandoned += 1
            self._window.append((now, True))
        else:
            self._window_answered += 1
            self._window.append((now, False))
        self._window_trim(now)

    def _window_trim(self, now: float) -> None:
        limit = now - self.config.window_s
        w = self._window
        while w and w[0][0] < limit:
            _, ab = w.popleft()
            if ab:
                self._window_abandoned -= 1
            else:
                self._window_answered -= 1

    def _lines(self, team: TeamSnapshot, now: float) -> int:  # pragma: no cover - abstract
        raise NotImplementedError


class PreviewPacer(Pacer):
    """Nothing is dialled until the agent clicks; then one line for that agent when free."""

    def _lines(self, team: TeamSnapshot, now: float) -> int:
        n = 0
        for a in team.agents:
            if a.agent_id in self._preview_clicks and a.state in FREE_STATES:
                self._preview_clicks.discard(a.agent_id)
                n += 1
        return n


class ProgressivePacer(Pacer):
    """One line per free agent: free agents minus calls already ringing or waiting."""

    def _lines(self, team: TeamSnapshot, now: float) -> int:
        return team.free - len(team.ringing) - len(team.waiting)


class PowerPacer(Pacer):
    """A fixed ratio of ringing lines per free agent (rounded to the nearest line)."""

    def _lines(self, team: TeamSnapshot, now: float) -> int:
        target = math.floor(self.config.ratio * team.free + 0.5)
        return target - len(team.ringing) - len(team.waiting)


class PredictivePacer(Pacer):
    """Adaptive pacing that keeps the expected abandonment under the target (module docstring)."""

    reacts_to_release = False  # a release only lowers expected answers a little: next tick is enough

    def __init__(self, config: PacingConfig, clock: Clock) -> None:
        super().__init__(config, clock)
        self._talk_memo: Dict[int, Tuple[Tuple[float, ...], Tuple[float, ...]]] = {}
        self._wrap_memo: Dict[int, Tuple[Tuple[float, ...], Tuple[float, ...]]] = {}
        self._ring_memo: Dict[int, Tuple[Tuple[float, ...], Tuple[float, ...]]] = {}
        self._memo_version = -1
        self._grid: Tuple[float, ...] = ()
        self.theta = config.theta0
        self.last_expected_abandons = 0.0

    # threshold steering ---------------------------------------------------------
    def threshold(self) -> float:
        """Marginal abandon risk allowed for the next call, from the budget left."""
        cfg = self.config
        self._window_trim(self.clock())
        # abandons still allowed today, less a safety margin of z standard deviations of
        # the abandon count: small volumes (few answers) get a larger relative margin
        allowed = cfg.abandon_target * self.answered
        slack_day = allowed - self.abandoned - cfg.margin_z * math.sqrt(allowed + 1.0)
        # the last hour is held to the target itself; it only bites when it is nearly spent
        slack_hour = cfg.abandon_target * self._window_answered - self._window_abandoned
        slack = min(slack_day, slack_hour)
        theta = cfg.theta0 * math.exp(cfg.kappa * slack)
        self.theta = min(cfg.theta_max, max(cfg.theta_min, theta))
        return self.theta

    # the look-ahead tables -------------------------------------------------------
    def _ensure_tables(self) -> None:
        m = self.model
        if self._memo_version == m.version and self._grid:
            return
        self._memo_version = m.version
        self._talk_memo.clear()
        self._wrap_memo.clear()
        self._ring_memo.clear()
        h = int(min(self.config.horizon_s, max(4, m.ring_p99 + 1)))
        self._grid = tuple(float(k) for k in range(h + 1))
        self._new_call = tuple(m.p * m.ring_F(t) for t in self._grid)

    # Each memo entry holds (q, q(1-q)) on the grid: the probability that the
    # agent / call has done its part by grid time t, and its Bernoulli variance.
    def _talk_vec(self, elapsed: float) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
        # the log-normal's hazard changes slowly after the first minute: coarser keys there
        key = int(elapsed) if elapsed < 60 else int(elapsed / 5.0) * 5
        vec = self._talk_memo.get(key)
        if vec is None:
            m = self.model
            e = key + 0.5
            f0 = m.talk_F(e)
            surv = 1.0 - f0
            wrap = m.wrap_mean
            grace = 2.0
            if surv <= 1e-12:
                q = tuple(1.0 for _ in self._grid)
            else:
                q = tuple(
                    max(0.0, (m.talk_F(e + t + grace - wrap) - f0) / surv) if t + grace > wrap else 0.0
                    for t in self._grid
                )
            vec = (q, tuple(x * (1.0 - x) for x in q))
            self._talk_memo[key] = vec
        return vec

    def _wrap_vec(self, elapsed: float) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
        key = int(elapsed * 4)
        vec = self._wrap_memo.get(key)
        if vec is None:
            m = self.model
            e = key / 4.0
            q = tuple(m.wrap_done_by(e, t + 2.0) for t in self._grid)
            vec = (q, tuple(x * (1.0 - x) for x in q))
            self._wrap_memo[key] = vec
        return vec

    def _ring_vec(self, elapsed: float) -> Tuple[Tuple[float, ...], Tuple[float, ...]]:
        key = int(elapsed * 2)
        vec = self._ring_memo.get(key)
        if vec is None:
            m = self.model
            e = key / 2.0
            f0 = m.ring_F(e)
            alive_ans = m.p * (1.0 - f0)
            denom = alive_ans + (1.0 - m.p) * m.release_survival(e)
            if denom <= 1e-12:
                a = tuple(0.0 for _ in self._grid)
            else:
                a = tuple(m.p * (m.ring_F(e + t) - f0) / denom for t in self._grid)
            vec = (a, tuple(x * (1.0 - x) for x in a))
            self._ring_memo[key] = vec
        return vec

    def _base(self, team: TeamSnapshot, now: float) -> Tuple[List[float], List[float], int]:
        """Mean and variance of (answers by t) - (agents free by t+2) on the grid, before new calls."""
        self._ensure_tables()
        qs: List[Tuple[float, ...]] = []
        qvs: List[Tuple[float, ...]] = []
        free = 0
        active = 0
        talk_vec, wrap_vec, ring_vec = self._talk_vec, self._wrap_vec, self._ring_vec
        for a in team.agents:
            st = a.state
            if st in FREE_STATES:
                free += 1
                active += 1
                continue
            if st is AgentState.TALKING:
                q, qv = talk_vec(now - a.since)
            elif st is AgentState.WRAPUP:
                q, qv = wrap_vec(now - a.since)
            else:
                continue
            active += 1
            qs.append(q)
            qvs.append(qv)
        counts: Dict[int, int] = {}
        for placed_at in team.ringing:
            key = int((now - placed_at) * 2)
            counts[key] = counts.get(key, 0) + 1
        ans: List[Tuple[float, ...]] = []
        ansv: List[Tuple[float, ...]] = []
        for key, c in counts.items():
            am, av = ring_vec(key / 2.0)
            for _ in range(c):
                ans.append(am)
                ansv.append(av)
        base = float(len(team.waiting) - free)
        k = len(self._grid)
        # column sums run in C (sum over zip(*rows)): the hot loop of the simulator
        supply = [sum(col) for col in zip(*qs)] if qs else [0.0] * k
        demand = [sum(col) for col in zip(*ans)] if ans else [0.0] * k
        var_s = [sum(col) for col in zip(*qvs)] if qvs else [0.0] * k
        var_d = [sum(col) for col in zip(*ansv)] if ansv else [0.0] * k
        mean = [base + d - s_ for d, s_ in zip(demand, supply)]
        var = [x + y for x, y in zip(var_s, var_d)]
        return mean, var, active

    def expected_abandons(self, team: TeamSnapshot, extra: int = 0) -> float:
        """Expected abandons among answers within the look-ahead if ``extra`` calls are placed now.

        Sum of the marginal risks of the ``extra`` calls on top of the risk already
        committed (``max_t E[(D_t - S_t)^+]``, a lower bound used for diagnostics).
        """
        mean, var, _ = self._base(team, self.clock())
        total = max(_expected_excess(m, v) for m, v in zip(mean, var))
        for n in range(extra):
            total += self._marginal(mean, var, n)
        return total

    def marginal_risk(self, team: TeamSnapshot, placed: int = 0) -> float:
        """P(the next call is answered and adds an abandon), given ``placed`` new calls before it."""
        mean, var, _ = self._base(team, self.clock())
        return self._marginal(mean, var, placed)

    def _marginal(self, mean: List[float], var: List[float], n: int) -> float:
        """Increase of expected abandons from one more call on top of ``n`` new ones.

        With cumulative answers D_t and agents free by t+2 S_t, FCFS leaves
        ``max_t (D_t - S_t)^+`` parties without an agent; one more party answered
        at time a raises that by one when ``max_{t>=a} (D_t - S_t) >= 0``.  Its
        probability is bounded below by ``max_{t>=a} P(D_t - S_t >= 0)`` (normal
        approximation, continuity-corrected), and weighted by the new call's
        answer-time distribution.
        """
        g = self._new_call
        k = len(mean)
        probs = [0.0] * k
        for i in range(k):
            x = g[i]
            m = mean[i] + n * x + 0.5
            v = var[i] + n * x * (1.0 - x)
            if v <= 1e-12:
                probs[i] = 1.0 if m >= 0 else 0.0
            else:
                probs[i] = 0.5 * (1.0 + math.erf(m / math.sqrt(2.0 * v)))
        risk = 0.0
        tail = 0.0
        for i in range(k - 1, 0, -1):
            if probs[i] > tail:
                tail = probs[i]
            risk += (g[i] - g[i - 1]) * tail
        return risk

    def _lines(self, team: TeamSnapshot, now: float) -> int:
        mean, var, active = self._base(team, now)
        if active == 0:
            return 0
        p = max(self.model.p, 1e-3)
        theta = self.threshold()
        cap = int(self.config.max_lines_per_agent * active) - len(team.ringing)
        n = 0
        while n < cap and self._marginal(mean, var, n) / p <= theta:
            n += 1
        return n


_PACERS = {
    DialMode.PREVIEW: PreviewPacer,
    DialMode.PROGRESSIVE: ProgressivePacer,
    DialMode.POWER: PowerPacer,
    DialMode.PREDICTIVE: PredictivePacer,
}


def make_pacer(config: PacingConfig, clock: Clock) -> Pacer:
    """The pacer for ``config.mode``."""
    return _PACERS[config.mode](config, clock)

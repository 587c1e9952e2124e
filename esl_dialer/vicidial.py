"""VICIdial's ADAPT_AVERAGE dial method, as a baseline for the pacing benchmark.

Re-implemented from the behaviour of its source as described in issue 5 (not
copied): every 2.5 s calls are placed until lines in use (ringing plus
connected) reach ``L x agents not in wrap-up``; every 15 s
``L := L x (1 + diff)`` where ``diff`` is the mean over the last 15 one-second
samples of (ready agents - answered calls waiting for an agent) divided by
the mean number of agents, clamped to [1.0, 3.0]; then L is halved while the
day's drops/answered exceed the target (drop counts refreshed once a minute),
and halved again if more than half of the last minute's answered calls were
dropped.  L starts at 1.0.  Halving happens after the clamp, so L may sit
below 1.0 until the next update -- this matches the source (AST_VDadapt.pl:
cap and floor of 1 first, then the drop rules halve).  As in the source the
day rule only applies after more than 50 calls today and the one-minute rule
after more than 20 calls in the last minute.

Pure like ``esl_dialer.pacing``: the clock is injected, timers are evaluated
lazily whenever ``lines_to_place`` is called (call it at least every 0.5 s).
"""
from __future__ import annotations

import collections
import logging
import math
from typing import Deque, Tuple

from .messages import AgentState
from .pacing import Clock, Pacer, PacingConfig
from .team import FREE_STATES, TeamSnapshot

logger = logging.getLogger(__name__)

PLACE_EVERY_S = 2.5
SAMPLE_EVERY_S = 1.0
UPDATE_EVERY_S = 15.0
DROPS_REFRESH_S = 60.0
L_MIN, L_MAX = 1.0, 3.0


class VicidialAdaptAverage(Pacer):
    """ADAPT_AVERAGE baseline with the ``Pacer`` interface (tick 0.5 s)."""

    def __init__(self, config: PacingConfig, clock: Clock) -> None:
        super().__init__(config, clock)
        self.tick_s = 0.5
        self.level = 1.0
        self._samples: Deque[Tuple[float, float]] = collections.deque(maxlen=15)
        self._next_sample = 0.0
        self._next_update = UPDATE_EVERY_S
        self._next_place = 0.0
        self._next_drops = 0.0
        self._day_drop_rate = 0.0
        self._last_minute: Deque[Tuple[float, bool]] = collections.deque()
        self._placed_minute: Deque[float] = collections.deque()

    def call_placed(self, n: int = 1) -> None:
        super().call_placed(n)
        now = self.clock()
        for _ in range(n):
            self._placed_minute.append(now)

    def call_answered(self, ring_s: float) -> None:
        super().call_answered(ring_s)
        self._last_minute.append((self.clock(), False))

    def call_abandoned(self, wait_s: float = 0.0) -> None:
        super().call_abandoned(wait_s)
        self._last_minute.append((self.clock(), True))

    def _lines(self, team: TeamSnapshot, now: float) -> int:
        while self._next_sample <= now:
            ready = sum(1 for a in team.agents if a.state in FREE_STATES)
            self._samples.append((ready - len(team.waiting), team.active))
            self._next_sample += SAMPLE_EVERY_S
        while self._next_drops <= now:
            self._day_drop_rate = self.abandon_rate
            self._next_drops += DROPS_REFRESH_S
        while self._next_update <= now:
            self._update(now)
            self._next_update += UPDATE_EVERY_S
        if now < self._next_place:
            return 0
        while self._next_place <= now:
            self._next_place += PLACE_EVERY_S
        not_in_wrapup = sum(1 for a in team.agents if a.state in FREE_STATES or a.state is AgentState.TALKING)
        in_use = len(team.ringing) + len(team.waiting) + team.talking
        target = math.floor(self.level * not_in_wrapup + 0.5)
        return target - in_use

    def _update(self, now: float) -> None:
        if self._samples:
            mean_diff = sum(s[0] for s in self._samples) / len(self._samples)
            mean_agents = sum(s[1] for s in self._samples) / len(self._samples)
            diff = mean_diff / mean_agents if mean_agents > 0 else 0.0
            self.level = min(L_MAX, max(L_MIN, self.level * (1.0 + diff)))
        limit = now - 60.0
        while self._last_minute and self._last_minute[0][0] < limit:
            self._last_minute.popleft()
        while self._placed_minute and self._placed_minute[0] < limit:
            self._placed_minute.popleft()
        answered = sum(1 for _, dropped in self._last_minute if not dropped)
        dropped = len(self._last_minute) - answered
        if len(self._placed_minute) > 20 and answered and dropped > answered / 2.0:
            self.level /= 2.0
        if self.placed > 50 and self._day_drop_rate > self.config.abandon_target:
            self.level /= 2.0

"""Team rules for answered parties (SPEC D7, X1): pure, no I/O, no clock.

An answered party goes at once to the longest-idle free agent of the team.
If every agent is busy the party waits, first come first served, for at most
``max_wait_s`` (2 s by default); an agent freed in that time takes the oldest
waiting party; a party still waiting after ``max_wait_s`` is abandoned (it
hears the campaign's abandon message and is hung up, counted against the
abandonment target).

The same class drives the virtual-time simulator (``esl_dialer.vsim``) and
can drive a worker: the worker feeds it the times it observes and acts on the
decisions it returns (bridge call X to agent Y, play the abandon message to
call Z).  In a distributed deployment the controller's atomic claim of an
idle agent replaces ``_pick_free_agent``; the rule (longest idle first,
2-second limit) is the same.
"""
from __future__ import annotations

import collections
import dataclasses
import logging
from typing import Deque, Dict, Hashable, Iterable, List, Optional, Tuple

from .messages import AgentState

logger = logging.getLogger(__name__)

#: How long an answered party may wait for a free agent before it is an abandon.
MAX_WAIT_S = 2.0

#: States in which an agent can take a call at once ("no active voice connection", D7).
FREE_STATES = frozenset({AgentState.IDLE, AgentState.DIALING})
#: States in which an agent is logged in and counts for pacing.
ACTIVE_STATES = frozenset({AgentState.IDLE, AgentState.DIALING, AgentState.TALKING, AgentState.WRAPUP})


class TeamError(ValueError):
    """The caller misused the team (unknown agent, call given twice, ...)."""


@dataclasses.dataclass(frozen=True)
class AgentView:
    """One agent as pacing sees it: its state and since when it is in that state."""

    agent_id: Hashable
    state: AgentState
    since: float


@dataclasses.dataclass(frozen=True)
class TeamSnapshot:
    """What pacing needs to know about the team at one moment.

    ``ringing``: placement times of the team's calls still ringing.
    ``waiting``: answer times of parties answered and waiting for an agent.
    """

    now: float
    agents: Tuple[AgentView, ...]
    ringing: Tuple[float, ...] = ()
    waiting: Tuple[float, ...] = ()

    def count(self, *states: AgentState) -> int:
        return sum(1 for a in self.agents if a.state in states)

    @property
    def free(self) -> int:
        return sum(1 for a in self.agents if a.state in FREE_STATES)

    @property
    def talking(self) -> int:
        return sum(1 for a in self.agents if a.state is AgentState.TALKING)

    @property
    def active(self) -> int:
        return sum(1 for a in self.agents if a.state in ACTIVE_STATES)


@dataclasses.dataclass(frozen=True)
class Connect:
    """Decision: bridge ``call_id`` to ``agent_id`` (the party waited ``wait_s``)."""

    call_id: Hashable
    agent_id: Hashable
    wait_s: float


class Team:
    """Agents of one team plus the FCFS line of answered parties waiting for one."""

    def __init__(self, max_wait_s: float = MAX_WAIT_S) -> None:
        if max_wait_s < 0:
            raise TeamError("max_wait_s must be >= 0")
        self.max_wait_s = max_wait_s
        self._agents: Dict[Hashable, AgentView] = {}
        self._waiting: "collections.OrderedDict[Hashable, float]" = collections.OrderedDict()
        self._call_of_agent: Dict[Hashable, Hashable] = {}

    # -- agents -----------------------------------------------------------------
    def login(self, agent_id: Hashable, now: float) -> Optional[Connect]:
        """An agent comes in free; it takes the oldest waiting party if there is one."""
        if agent_id in self._agents and self._agents[agent_id].state is not AgentState.OFFLINE:
            raise TeamError(f"agent {agent_id!r} is already logged in")
        return self.agent_free(agent_id, now)

    def set_state(self, agent_id: Hashable, state: AgentState, now: float) -> None:
        """Record a state change that is not a connection (wrap-up, pause, logout)."""
        if agent_id not in self._agents:
            raise TeamError(f"unknown agent {agent_id!r}")
        if state in FREE_STATES:
            raise TeamError("use agent_free() to make an agent free: it may take a waiting party")
        if state is not AgentState.TALKING:
            self._call_of_agent.pop(agent_id, None)
        self._agents[agent_id] = AgentView(agent_id, state, now)

    def agent_free(self, agent_id: Hashable, now: float) -> Optional[Connect]:
        """The agent has no voice connection any more (wrap-up done, login)."""
        self._call_of_agent.pop(agent_id, None)
        self._agents[agent_id] = AgentView(agent_id, AgentState.IDLE, now)
        limit = now - self.max_wait_s
        # parties older than the limit stay queued for expire() to report them
        for call_id, answered_at in self._waiting.items():
            if answered_at >= limit:
                del self._waiting[call_id]
                return self._connect(call_id, agent_id, now, now - answered_at)
        return None

    def agent(self, agent_id: Hashable) -> AgentView:
        try:
            return self._agents[agent_id]
        except KeyError:
            raise TeamError(f"unknown agent {agent_id!r}") from None

    def call_of(self, agent_id: Hashable) -> Optional[Hashable]:
        return self._call_of_agent.get(agent_id)

    @property
    def agents(self) -> Tuple[AgentView, ...]:
        return tuple(self._agents.values())

    # -- parties ----------------------------------------------------------------
    def answered(self, call_id: Hashable, now: float) -> Optional[Connect]:
        """A party answered: connect it to the longest-idle free agent, or queue it."""
        if call_id in self._waiting or call_id in self._call_of_agent.values():
            raise TeamError(f"call {call_id!r} answered twice")
        agent_id = self._pick_free_agent()
        if agent_id is None:
            self._waiting[call_id] = now
            return None
        return self._connect(call_id, agent_id, now, 0.0)

    def expire(self, now: float) -> List[Tuple[Hashable, float]]:
        """Parties that waited more than ``max_wait_s``: (call_id, answered_at), now abandoned."""
        dropped: List[Tuple[Hashable, float]] = []
        limit = now - self.max_wait_s
        while self._waiting:
            call_id, answered_at = next(iter(self._waiting.items()))
            if answered_at >= limit:
                break
            self._waiting.popitem(last=False)
            dropped.append((call_id, answered_at))
        return dropped

    def next_deadline(self) -> Optional[float]:
        """When the oldest waiting party becomes an abandon (None if nobody waits)."""
        for answered_at in self._waiting.values():
            return answered_at + self.max_wait_s
        return None

    def waiting_since(self) -> Tuple[float, ...]:
        return tuple(self._waiting.values())

    def snapshot(self, now: float, ringing: Iterable[float] = ()) -> TeamSnapshot:
        return TeamSnapshot(now, tuple(self._agents.values()), tuple(ringing), tuple(self._waiting.values()))

    # -- internals --------------------------------------------------------------
    def _pick_free_agent(self) -> Optional[Hashable]:
        best: Optional[AgentView] = None
        for view in self._agents.values():
            if view.state in FREE_STATES and (best is None or view.since < best.since):
                best = view
        return None if best is None else best.agent_id

    def _connect(self, call_id: Hashable, agent_id: Hashable, now: float, wait_s: float) -> Connect:
        if agent_id in self._call_of_agent:
            raise TeamError(f"agent {agent_id!r} already has call {self._call_of_agent[agent_id]!r}")
        self._call_of_agent[agent_id] = call_id
        self._agents[agent_id] = AgentView(agent_id, AgentState.TALKING, now)
        return Connect(call_id, agent_id, wait_s)


def agent_share(total: int, team: TeamSnapshot, agent_id: Hashable) -> int:
    """This agent's worker's share of ``total`` new team lines.

    Only workers whose agent has no active call may dial (D6), so the lines go
    to agents that are free or in wrap-up, split evenly in a fixed order
    (free before wrap-up, then longest in state, then id) so that every worker
    computing from the same snapshot gets a disjoint share and the shares sum
    to ``total``.
    """
    if total <= 0:
        return 0
    order = {AgentState.IDLE: 0, AgentState.DIALING: 0, AgentState.WRAPUP: 1}
    eligible = sorted(
        (a for a in team.agents if a.state in order),
        key=lambda a: (order[a.state], a.since, str(a.agent_id)),
    )
    ids = [a.agent_id for a in eligible]
    if agent_id not in ids:
        return 0
    rank = ids.index(agent_id)
    k = len(ids)
    return total // k + (1 if rank < total % k else 0)

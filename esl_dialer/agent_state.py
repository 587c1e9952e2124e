"""Agent voice-connection state machine (SPEC D6, D8), as a table.

Pure: no I/O.  The worker feeds it events and reports every change to the
controller at once (D8).  An event that is not allowed in the current state
raises :class:`IllegalAgentTransition` (the caller misused it), never a silent
no-op, so a wiring bug shows up in tests rather than as a wrong dashboard.
"""
from __future__ import annotations

import enum
from dataclasses import dataclass

from .messages import AgentState

S = AgentState


class AgentEvent(str, enum.Enum):
    LOGIN = "login"  # the agent's waiting leg is up
    DIAL = "dial"  # the worker placed calls for this agent
    DIALS_DONE = "dials_done"  # no call of ours is ringing any more
    CONNECT = "connect"  # a party is bridged to this agent (own call or overflow, D7)
    HANGUP = "hangup"  # the party left: wrap-up begins
    WRAPUP_DONE = "wrapup_done"
    PAUSE = "pause"
    RESUME = "resume"
    LOGOUT = "logout"  # agent leg gone or worker stopping


class IllegalAgentTransition(Exception):
    """``event`` is not allowed in ``state``."""

    def __init__(self, state: AgentState, event: AgentEvent) -> None:
        super().__init__(f"agent event {event.value!r} is illegal in state {state.value!r}")
        self.state = state
        self.event = event


E = AgentEvent
TRANSITIONS: dict[tuple[AgentState, AgentEvent], AgentState] = {
    (S.OFFLINE, E.LOGIN): S.IDLE,
    (S.IDLE, E.DIAL): S.DIALING,
    (S.DIALING, E.DIAL): S.DIALING,  # more lines while still idle
    (S.DIALING, E.DIALS_DONE): S.IDLE,
    (S.IDLE, E.DIALS_DONE): S.IDLE,
    (S.IDLE, E.CONNECT): S.TALKING,  # overflow call from another worker (D7)
    (S.DIALING, E.CONNECT): S.TALKING,  # first answer (D3)
    (S.PAUSED, E.CONNECT): S.TALKING,  # a preview call placed while paused from dialing
    (S.TALKING, E.HANGUP): S.WRAPUP,
    (S.WRAPUP, E.WRAPUP_DONE): S.IDLE,
    (S.WRAPUP, E.CONNECT): S.TALKING,  # overflow claimed while our D8 report of wrap-up was in flight
    (S.IDLE, E.PAUSE): S.PAUSED,
    (S.DIALING, E.PAUSE): S.PAUSED,
    (S.WRAPUP, E.PAUSE): S.PAUSED,
    (S.PAUSED, E.RESUME): S.IDLE,
    (S.PAUSED, E.DIALS_DONE): S.PAUSED,
    (S.TALKING, E.DIALS_DONE): S.TALKING,
    (S.WRAPUP, E.DIALS_DONE): S.WRAPUP,
}
for _s in AgentState:
    TRANSITIONS[(_s, E.LOGOUT)] = S.OFFLINE


def next_state(state: AgentState, event: AgentEvent) -> AgentState:
    try:
        return TRANSITIONS[(state, event)]
    except KeyError:
        raise IllegalAgentTransition(state, event) from None


@dataclass(frozen=True)
class AgentChange:
    """One state change, as reported to the controller (D8)."""

    before: AgentState
    after: AgentState
    event: AgentEvent
    at: float


class AgentMachine:
    """Holds one agent's state and the time it entered it."""

    def __init__(self, state: AgentState = AgentState.OFFLINE, now: float = 0.0) -> None:
        self.state = state
        self.since = now

    def can(self, event: AgentEvent) -> bool:
        return (self.state, event) in TRANSITIONS

    def fire(self, event: AgentEvent, now: float) -> AgentChange | None:
        """Apply ``event``; returns the change, or None when the state stays the same."""
        new = next_state(self.state, event)
        if new == self.state:
            return None
        change = AgentChange(self.state, new, event, now)
        self.state, self.since = new, now
        return change

    @property
    def may_dial(self) -> bool:
        """D6: new calls only while idle or already dialing (never talking / wrap-up / paused)."""
        return self.state in (AgentState.IDLE, AgentState.DIALING)

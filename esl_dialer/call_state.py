"""Outbound call (one attempt) state machine and its result, as a table.

Pure: fed switch events by the worker, it says what the call is now; the
timings it keeps become the attempt's result (P6): originate, answer,
connect-to-agent, end.  Illegal events raise :class:`IllegalCallTransition`.

    NEW --originate--> ORIGINATING --progress--> RINGING
    ORIGINATING/RINGING --answer--> ANSWERED
    ANSWERED --bridge--> CONNECTED           (own agent, D3, or overflow agent, D7)
    ANSWERED --overflow--> CLAIMING           (own agent busy: ask the controller, D7)
    CLAIMING --bridge--> CONNECTED
    ANSWERED/CLAIMING --abandon--> ABANDONING (no agent within 2 s: message, X1)
    any live --hangup--> ENDED ; NEW/ORIGINATING --originate_failed--> ENDED
"""
from __future__ import annotations

import enum
from dataclasses import dataclass, field
from typing import Optional

from .messages import AttemptResult


class CallState(str, enum.Enum):
    NEW = "new"
    ORIGINATING = "originating"
    RINGING = "ringing"
    ANSWERED = "answered"
    CLAIMING = "claiming"
    CONNECTED = "connected"
    ABANDONING = "abandoning"
    ENDED = "ended"


class CallEvent(str, enum.Enum):
    ORIGINATE = "originate"
    ORIGINATE_FAILED = "originate_failed"
    PROGRESS = "progress"
    ANSWER = "answer"
    BRIDGE = "bridge"
    OVERFLOW = "overflow"
    ABANDON = "abandon"
    HANGUP = "hangup"


class IllegalCallTransition(Exception):
    def __init__(self, state: CallState, event: CallEvent) -> None:
        super().__init__(f"call event {event.value!r} is illegal in state {state.value!r}")
        self.state = state
        self.event = event


C, V = CallState, CallEvent
TRANSITIONS: dict[tuple[CallState, CallEvent], CallState] = {
    (C.NEW, V.ORIGINATE): C.ORIGINATING,
    (C.NEW, V.ORIGINATE_FAILED): C.ENDED,
    (C.ORIGINATING, V.ORIGINATE_FAILED): C.ENDED,
    (C.RINGING, V.ORIGINATE_FAILED): C.ENDED,  # -ERR job result before the hang-up event
    (C.ORIGINATING, V.PROGRESS): C.RINGING,
    (C.RINGING, V.PROGRESS): C.RINGING,
    (C.ORIGINATING, V.ANSWER): C.ANSWERED,
    (C.RINGING, V.ANSWER): C.ANSWERED,
    (C.ANSWERED, V.BRIDGE): C.CONNECTED,
    (C.ANSWERED, V.OVERFLOW): C.CLAIMING,
    (C.CLAIMING, V.BRIDGE): C.CONNECTED,
    (C.ANSWERED, V.ABANDON): C.ABANDONING,
    (C.CLAIMING, V.ABANDON): C.ABANDONING,
}
for _s in (C.ORIGINATING, C.RINGING, C.ANSWERED, C.CLAIMING, C.CONNECTED, C.ABANDONING):
    TRANSITIONS[(_s, V.HANGUP)] = C.ENDED
# The originate job can report failure after the channel already hung up.
TRANSITIONS[(C.ENDED, V.ORIGINATE_FAILED)] = C.ENDED
TRANSITIONS[(C.ENDED, V.HANGUP)] = C.ENDED

# Hang-up causes (FreeSWITCH hangup cause table) that mean "nobody picked up".
NO_ANSWER_CAUSES = frozenset(
    {"NO_ANSWER", "NO_USER_RESPONSE", "ORIGINATOR_CANCEL", "ALLOTTED_TIMEOUT", "RECOVERY_ON_TIMER_EXPIRE", "PROGRESS_TIMEOUT"}
)
BUSY_CAUSES = frozenset({"USER_BUSY", "CALL_REJECTED"})


@dataclass
class Call:
    """One attempt.  ``times`` are epoch seconds from the worker's clock."""

    call_uuid: str
    record: dict
    client_id: str = ""
    state: CallState = CallState.NEW
    originated_at: Optional[float] = None
    answered_at: Optional[float] = None
    connected_at: Optional[float] = None
    ended_at: Optional[float] = None
    hangup_cause: Optional[str] = None
    agent: Optional[str] = None  # extension of the agent it was connected to
    overflowed: bool = False
    machine: bool = False
    disposition: Optional[str] = None  # the agent's, given during the call or wrap-up
    history: list[tuple[CallEvent, CallState]] = field(default_factory=list)

    @property
    def record_id(self) -> int:
        return int(self.record["id"])

    def fire(self, event: CallEvent, now: float, *, cause: str | None = None, agent: str | None = None) -> CallState:
        try:
            new = TRANSITIONS[(self.state, event)]
        except KeyError:
            raise IllegalCallTransition(self.state, event) from None
        if event is CallEvent.ORIGINATE:
            self.originated_at = now
        elif event is CallEvent.ANSWER:
            self.answered_at = now
        elif event is CallEvent.BRIDGE:
            self.connected_at = now
            self.agent = agent
        elif event is CallEvent.OVERFLOW:
            self.overflowed = True
        if new is CallState.ENDED and self.ended_at is None:
            self.ended_at = now
            self.hangup_cause = cause or self.hangup_cause
        self.state = new
        self.history.append((event, new))
        return new

    @property
    def live(self) -> bool:
        return self.state is not CallState.ENDED

    @property
    def ringing(self) -> bool:
        return self.state in (CallState.NEW, CallState.ORIGINATING, CallState.RINGING)

    def result(self) -> AttemptResult:
        """The attempt's result (P6), decided from what happened, not from the cause alone."""
        if self.answered_at is not None:
            if self.machine:
                return AttemptResult.MACHINE
            if self.connected_at is not None:
                return AttemptResult.ANSWERED
            # answered but never reached an agent: the abandon of X1 / D7
            return AttemptResult.ABANDONED
        cause = (self.hangup_cause or "").upper()
        if cause in BUSY_CAUSES:
            return AttemptResult.BUSY
        if cause in NO_ANSWER_CAUSES:
            return AttemptResult.NO_ANSWER
        return AttemptResult.FAILED

    def result_payload(self, *, worker_agent: str | None, iso) -> dict:
        """The JSON body of /worker/results for this attempt (``iso`` formats epoch seconds)."""
        res = self.result()
        return {
            "client_id": self.client_id,
            "record_id": self.record_id,
            "result": res.value,
            "call_uuid": self.call_uuid,
            "agent": self.agent or worker_agent,
            "started_at": iso(self.originated_at),
            "answered_at": iso(self.answered_at),
            "connected_at": iso(self.connected_at),
            "ended_at": iso(self.ended_at),
            "hangup_cause": self.hangup_cause,
            "disposition": self.disposition,
            "abandoned": res is AttemptResult.ABANDONED,
        }

"""The decisions of one agent's dialing worker, sans-IO (D3, D4, D5, D6, D7, D8).

:class:`AgentDialer` is fed what happened (a call was placed, answered, hung
up, an overflow claim came back, the controller assigned us another worker's
call) and returns *actions* for the gevent shell in :mod:`esl_dialer.worker`
to carry out (bridge, play the greeting, claim an agent, play the abandon
message, report a state, store a result, show a screen pop).  It never sleeps
and takes ``now`` as an argument, so tests drive it with exact timelines and
the virtual-time simulator could run it unchanged.
"""
from __future__ import annotations

import datetime as dt
from dataclasses import dataclass
from typing import Optional, Union
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from .agent_state import AgentEvent, AgentMachine
from .call_state import Call, CallEvent, CallState
from .messages import AgentState

OVERFLOW_WAIT_S = 2.0  # D7 / X1: an answered party waits at most this long for an agent


# -- actions ---------------------------------------------------------------------------


@dataclass(frozen=True)
class BridgeToAgent:
    """Bridge the answered party to our agent's waiting leg and play the greeting to both (D3/D4)."""

    call_uuid: str


@dataclass(frozen=True)
class ClaimAgent:
    """Ask the controller for an idle agent (D7) before ``deadline``."""

    call_uuid: str
    record: dict
    deadline: float


@dataclass(frozen=True)
class Abandon:
    """No agent in time: play the campaign's abandon message, then hang up (X1)."""

    call_uuid: str


@dataclass(frozen=True)
class ReportState:
    """Tell the controller at once (D8)."""

    state: AgentState
    active_calls: int


@dataclass(frozen=True)
class StoreResult:
    """Write the attempt's result to the contingency file (P10)."""

    call: Call


@dataclass(frozen=True)
class ScreenPop:
    """Show the party to the agent while the greeting plays (D5)."""

    call_uuid: str
    payload: dict


Action = Union[BridgeToAgent, ClaimAgent, Abandon, ReportState, StoreResult, ScreenPop]


# -- screen pop ------------------------------------------------------------------------


def local_time(record: dict, now: float) -> Optional[str]:
    """The party's local time ``HH:MM`` in its (first) time zone, or None when unknown."""
    tz = (record.get("timezone") or "").split()
    if not tz:
        return None
    try:
        zone = ZoneInfo(tz[0])
    except (ZoneInfoNotFoundError, ValueError):
        return None
    return dt.datetime.fromtimestamp(now, zone).strftime("%H:%M")


def screen_pop_payload(record: dict, call_uuid: str, agent: str, now: float, *, overflow: bool = False) -> dict:
    """D5: name, city, state, local time, previous attempts with their results."""
    return {
        "call_uuid": call_uuid,
        "agent": agent,
        "record_id": record.get("id"),
        "number": record.get("number"),
        "name": record.get("name"),
        "city": record.get("city"),
        "region": record.get("region"),
        "country": record.get("country"),
        "local_time": local_time(record, now),
        "timezone": record.get("timezone"),
        "previous_attempts": [
            {"started_at": a.get("started_at"), "result": a.get("result"), "disposition": a.get("disposition")}
            for a in (record.get("previous_attempts") or [])
        ],
        "extra": record.get("extra"),
        "overflow": overflow,
    }


# -- the core --------------------------------------------------------------------------


class UnknownCall(Exception):
    """An event names a call this worker does not track."""


class AgentDialer:
    """Per-agent decisions.  ``agent`` is the agent's extension (its name on the wire)."""

    def __init__(self, agent: str, *, now: float = 0.0, wrapup_s: float = 0.0, overflow_wait_s: float = OVERFLOW_WAIT_S) -> None:
        self.agent = agent
        self.machine = AgentMachine(AgentState.OFFLINE, now)
        self.calls: dict[str, Call] = {}  # our own attempts, live ones
        self.talking_to: Optional[str] = None  # call uuid bridged to our agent (own or overflow)
        self.wrapup_s = wrapup_s
        self.wrapup_until: Optional[float] = None
        self.overflow_wait_s = overflow_wait_s
        self.dialed_while_talking = 0  # D6 invariant counter: must stay 0
        # Our own call the agent just finished: its result waits for the disposition
        # until wrap-up ends (only when there is a wrap-up time to give one in).
        self.awaiting_disposition: Optional[Call] = None
        self.talking_call: Optional[Call] = None  # our own call the agent is on, if any

    # -- agent -------------------------------------------------------------------------

    @property
    def state(self) -> AgentState:
        return self.machine.state

    def _change(self, event: AgentEvent, now: float) -> list[Action]:
        change = self.machine.fire(event, now)
        if change is None:
            return []
        return [ReportState(change.after, self.active_calls)]

    @property
    def active_calls(self) -> int:
        return sum(1 for c in self.calls.values() if c.live)

    @property
    def ringing(self) -> int:
        return sum(1 for c in self.calls.values() if c.ringing)

    def login(self, now: float) -> list[Action]:
        return self._change(AgentEvent.LOGIN, now)

    def logout(self, now: float) -> list[Action]:
        return self._change(AgentEvent.LOGOUT, now)

    def pause(self, now: float) -> list[Action]:
        return self._change(AgentEvent.PAUSE, now)

    def resume(self, now: float) -> list[Action]:
        return self._change(AgentEvent.RESUME, now)

    def may_dial(self) -> bool:
        """D6: no new calls while the agent talks, wraps up or is paused."""
        return self.machine.may_dial and self.talking_to is None

    def lines_to_place(self, target_lines: int) -> int:
        """How many new calls to place now so that ``target_lines`` ring for this agent."""
        if not self.may_dial():
            return 0
        return max(0, int(target_lines) - self.ringing)

    def tick(self, now: float) -> list[Action]:
        """Time-driven changes: end of wrap-up; overflow claims past their deadline."""
        out: list[Action] = []
        if self.state is AgentState.WRAPUP and self.wrapup_until is not None and now >= self.wrapup_until:
            self.wrapup_until = None
            out += self._release_disposition()
            out += self._change(AgentEvent.WRAPUP_DONE, now)
        return out

    def release_pending(self) -> list[Action]:
        """Store a result still waiting for its disposition (the worker is stopping)."""
        return self._release_disposition()

    def _release_disposition(self) -> list[Action]:
        call, self.awaiting_disposition = self.awaiting_disposition, None
        return [StoreResult(call)] if call is not None else []

    def set_disposition(self, value: str, now: float) -> list[Action]:
        """The agent's disposition (P6) for the call they are on or just finished.

        Given during wrap-up it also ends the wrap-up: the result is stored and
        the agent is ready.  Raises ValueError when there is no call to set it on.
        """
        value = (value or "").strip()
        if not value or len(value) > 64:
            raise ValueError("a disposition is 1-64 characters")
        if self.awaiting_disposition is not None:
            self.awaiting_disposition.disposition = value
            out = self._release_disposition()
            if self.state is AgentState.WRAPUP:
                self.wrapup_until = None
                out += self._change(AgentEvent.WRAPUP_DONE, now)
            return out
        if self.talking_call is not None and self.talking_call.live:
            self.talking_call.disposition = value
            return []
        raise ValueError("no call to set a disposition on (overflow calls are dispositioned by their own worker)")

    # -- own calls ---------------------------------------------------------------------

    def placed(self, call: Call, now: float) -> list[Action]:
        """A call was handed to the switch (after the dial-check)."""
        if not self.may_dial():
            self.dialed_while_talking += 1
        call.fire(CallEvent.ORIGINATE, now)
        self.calls[call.call_uuid] = call
        return self._change(AgentEvent.DIAL, now)

    def _call(self, uuid: str) -> Call:
        try:
            return self.calls[uuid]
        except KeyError:
            raise UnknownCall(uuid) from None

    def progress(self, uuid: str, now: float) -> list[Action]:
        call = self._call(uuid)
        if call.state in (CallState.ORIGINATING, CallState.RINGING):
            call.fire(CallEvent.PROGRESS, now)
        return []

    def answered(self, uuid: str, now: float) -> list[Action]:
        """D3: first answer goes to our agent; D7: a later one overflows."""
        call = self._call(uuid)
        if call.state is not CallState.ORIGINATING and call.state is not CallState.RINGING:
            return []  # duplicate answer event
        call.fire(CallEvent.ANSWER, now)
        if self.talking_to is None and self.state in (AgentState.IDLE, AgentState.DIALING):
            call.fire(CallEvent.BRIDGE, now, agent=self.agent)
            self.talking_to = uuid
            self.talking_call = call
            out: list[Action] = [BridgeToAgent(uuid)]
            out.append(ScreenPop(uuid, screen_pop_payload(call.record, uuid, self.agent, now)))
            out += self._change(AgentEvent.CONNECT, now)
            return out
        call.fire(CallEvent.OVERFLOW, now)
        return [ClaimAgent(uuid, call.record, now + self.overflow_wait_s)]

    def claim_result(self, uuid: str, agent: Optional[dict], now: float) -> list[Action]:
        """The controller answered our claim: an agent (its worker will bridge) or none."""
        call = self.calls.get(uuid)
        if call is None or call.state is not CallState.CLAIMING:
            return []  # the party hung up meanwhile
        if agent is None:
            call.fire(CallEvent.ABANDON, now)
            return [Abandon(uuid)]
        call.agent = str(agent.get("extension") or agent.get("name"))
        return []

    def bridged_elsewhere(self, uuid: str, agent: Optional[str], now: float) -> list[Action]:
        """The claimed agent's worker bridged our overflow call (seen as a bridge event)."""
        call = self.calls.get(uuid)
        if call is None or call.state is not CallState.CLAIMING:
            return []
        call.fire(CallEvent.BRIDGE, now, agent=agent or call.agent)
        return []

    def overflow_timeout(self, uuid: str, now: float) -> list[Action]:
        """No bridge within the wait: abandon (X1)."""
        call = self.calls.get(uuid)
        if call is None or call.state is not CallState.CLAIMING:
            return []
        call.fire(CallEvent.ABANDON, now)
        return [Abandon(uuid)]

    def originate_failed(self, uuid: str, cause: str, now: float) -> list[Action]:
        call = self._call(uuid)
        if call.state is CallState.ENDED:
            return []
        call.fire(CallEvent.ORIGINATE_FAILED, now, cause=cause)
        return self._finish(call, now)

    def hangup(self, uuid: str, cause: Optional[str], now: float) -> list[Action]:
        """Hang-up of one of our calls, or of the overflow call we were given."""
        out: list[Action] = []
        call = self.calls.get(uuid)
        hold = uuid == self.talking_to and self.wrapup_s > 0 and call is not None
        if call is not None and call.state is not CallState.ENDED:
            call.fire(CallEvent.HANGUP, now, cause=cause)
            out += self._finish(call, now, store=not hold)
        elif call is None and uuid != self.talking_to:
            raise UnknownCall(uuid)
        if uuid == self.talking_to:
            self.talking_to = None
            self.talking_call = None
            out += self._release_disposition()  # a previous one still waiting: store it now
            if hold:
                self.awaiting_disposition = call
            out += self._change(AgentEvent.HANGUP, now)
            self.wrapup_until = now + self.wrapup_s
            out += self.tick(now)
        return out

    def _finish(self, call: Call, now: float, store: bool = True) -> list[Action]:
        del self.calls[call.call_uuid]
        out: list[Action] = [StoreResult(call)] if store else []
        if self.ringing == 0 and self.state is AgentState.DIALING:
            out += self._change(AgentEvent.DIALS_DONE, now)
        return out

    # -- overflow calls from other workers ----------------------------------------------

    def take_overflow(self, uuid: str, record: dict, now: float) -> list[Action]:
        """D7: the controller claimed our agent for another worker's answered call.

        Returns a BridgeToAgent (+ screen pop and state) when the agent is
        free; when it is not (a race with our own answer), nothing: the other
        worker's overflow wait then ends in an abandon.
        """
        if self.talking_to is not None or not self.machine.can(AgentEvent.CONNECT):
            return []
        self.talking_to = uuid
        out: list[Action] = [BridgeToAgent(uuid), ScreenPop(uuid, screen_pop_payload(record, uuid, self.agent, now, overflow=True))]
        out += self._change(AgentEvent.CONNECT, now)
        return out


def _hhmm(value: str) -> Optional[int]:
    try:
        h, m = value.split(":")
        return int(h) * 60 + int(m)
    except (AttributeError, ValueError):
        return None


def within_window(record: dict, now: float) -> bool:
    """X1 at dial time, locally: the party's local time is inside its calling window.

    The controller checks this too (dial-check); this local copy is what keeps
    the rule while the controller is unreachable (P10).  A number spanning
    several zones must be inside the window in all of them (strictest).  A
    record without a known zone or window is left to the controller's
    lease-time check.
    """
    start, end = _hhmm(record.get("window_start") or ""), _hhmm(record.get("window_end") or "")
    zones = (record.get("timezone") or "").split()
    if start is None or end is None or not zones:
        return True
    for name in zones:
        try:
            local = dt.datetime.fromtimestamp(now, ZoneInfo(name))
        except (ZoneInfoNotFoundError, ValueError):
            return False
        minute = local.hour * 60 + local.minute
        inside = start <= minute < end if start <= end else (minute >= start or minute < end)
        if not inside:
            return False
    return True

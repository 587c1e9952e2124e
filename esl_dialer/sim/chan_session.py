"""The per-channel "session thread": runs dialplan apps and queued messages.

FreeSWITCH gives each channel a thread that walks the dialplan and, between
applications and while parked or bridged, executes private events queued by
``sendmsg``/``uuid_broadcast``.  Here that thread is a greenlet; blocking
applications wait through :meth:`Session.block`, which is the only place
interrupts (hang-up, uuid_break, unpark, transfer) are delivered, so state is
never torn mid-update.

Queued messages carry the switch's latency (``Message.delay_s``, from
:mod:`.timing`): they run once due.  A message without ``event-lock`` that
arrives while a playback runs starts at once *inside* it (FreeSWITCH nests
it in the playback's read loop); with ``event-lock: true`` it waits for the
running application.  ``uuid_break`` stops every nested playback, innermost
first, one per media step.
"""
from __future__ import annotations

import collections
import logging
import time
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Callable

import gevent
from gevent.event import Event as GEvent

from .chan_channel import Channel

if TYPE_CHECKING:  # pragma: no cover
    from typing import Any as SimSwitch  # the switch model sits above this layer: duck-typed

logger = logging.getLogger(__name__)


class Interrupt(Exception):
    """Unwinds blocking applications."""


class HangupInterrupt(Interrupt):
    pass


class BreakInterrupt(Interrupt):
    """uuid_break: stop the current playback (the innermost, when nested)."""


class UnparkInterrupt(Interrupt):
    """A bridge or the end of an outbound socket ends park."""


class TransferInterrupt(Interrupt):
    pass


class DeferredHangup(Interrupt):
    """Unwind the running application first, then hang up (mod_loopback peer hang-up)."""


@dataclass
class Message:
    """A private event queued on a channel (sendmsg / uuid_broadcast)."""

    command: str  # "execute" | "hangup"
    app: str = ""
    arg: str = ""
    app_uuid: str | None = None
    loops: int = 1
    cause: str = "NORMAL_CLEARING"
    headers: dict = field(default_factory=dict)
    done: GEvent = field(default_factory=GEvent)  # set once executed (or dropped by hang-up/break all)
    delay_s: float = 0.0  # simulated seconds from queueing to CHANNEL_EXECUTE (the switch's latency)
    lock: bool = False  # event-lock: true -> waits for the running application instead of nesting in it
    due: float = 0.0  # monotonic time from which it may run (set by Session.queue)
    # the private event's headers: fired back as PRIVATE_COMMAND once it ran (switch_ivr_parse_next_event)
    private: list[tuple[str, str]] | None = None


class Session:
    def __init__(self, switch: "SimSwitch", channel: Channel) -> None:
        self.switch = switch
        self.ch = channel
        self.apps: collections.deque[tuple[str, str]] = collections.deque()
        self.inbox: collections.deque[Message] = collections.deque()
        self.wake = GEvent()
        self.hangup_requested = False
        self.break_pending = 0  # nested playbacks still to stop after a uuid_break
        self.break_due = 0.0  # monotonic time the next of them stops
        self.not_before = 0.0  # after a break the next queued message waits one media step
        self.unpark_requested = False
        self.transfer_to: list[tuple[str, str]] | None = None
        self.deferred_cause: str | None = None
        self.holding = True  # waiting (originate in progress, socket, bridged): do not end the dialplan
        self.playing = 0  # playbacks running (nested ones count each)
        self.parked = False
        self.in_bridge_app = False
        self.dtmf_event = GEvent()
        self.greenlet: gevent.Greenlet | None = None
        self.done = GEvent()
        self.listener = None  # outbound-socket listener controlling this channel
        self.party = None  # PartyPlan of the simulated far end, if any
        self.collecting = False  # play_and_get_digits/read is waiting for digits
        self.watchers: list[Callable[[], None]] = []
        self.finish_gate: GEvent | None = None  # set by the switch: HANGUP_COMPLETE waits for the bridged pair

    # -- control from other greenlets -------------------------------------
    def start(self) -> None:
        self.greenlet = self.switch.spawn(self._run)
        self.greenlet.name = f"sim-session-{self.ch.uuid[:8]}"

    def poke(self) -> None:
        self.wake.set()

    def request_hangup(self) -> None:
        self.hangup_requested = True
        self.poke()

    def request_deferred_hangup(self, cause: str) -> None:
        self.deferred_cause = cause
        self.poke()

    @property
    def timing(self):
        return self.switch.config.timing

    def later(self, ms_field: str) -> float:
        """Monotonic time one switch delay (a :class:`~.timing.TimingConfig` field) from now."""
        return time.monotonic() + self.switch.clock.real(self.timing.seconds(ms_field))

    def request_break(self, clear_queue: bool = False) -> None:
        """uuid_break: stop the playback(s) running after one media step; ``all`` also empties the queue
        (the discarded messages never produce an event)."""
        if clear_queue:
            while self.inbox:
                self.inbox.popleft().done.set()
        if self.playing:
            self.break_pending = self.playing  # nested playbacks all stop, innermost first
            self.break_due = self.later("break_ms")
            self.poke()

    def playback_ended(self) -> None:
        """A playback (or recording) returned: a uuid_break aimed at it must not hit a later one."""
        self.playing = max(0, self.playing - 1)
        self.break_pending = min(self.break_pending, self.playing)

    def request_unpark(self) -> None:
        self.unpark_requested = True
        self.poke()

    def request_transfer(self, apps: list[tuple[str, str]]) -> None:
        self.transfer_to = apps
        self.poke()

    def queue(self, message: Message) -> None:
        if message.command == "hangup":  # not queued behind a running application
            self.switch.hangup(self.ch, message.cause)
            message.done.set()
            return
        message.due = time.monotonic() + self.switch.clock.real(message.delay_s)
        self.inbox.append(message)
        self.poke()

    def _ready_message(self, nested: bool) -> bool:
        """The head of the queue may run now (``nested``: inside a running playback)."""
        if not self.inbox:
            return False
        head = self.inbox[0]
        if nested and head.lock:
            return False
        if self.parked and self.unpark_requested and self.ch.bridge_pending:
            return True  # park handles its queued events before it sees the bridge move the channel
        return time.monotonic() >= max(head.due, self.not_before)

    def _message_wait(self, nested: bool) -> float | None:
        if not self.inbox or (nested and self.inbox[0].lock):
            return None
        return max(0.0, max(self.inbox[0].due, self.not_before) - time.monotonic())

    # -- blocking primitive -------------------------------------------------
    def check(self, *, breakable: bool = False, parked: bool = False) -> None:
        if self.hangup_requested:
            raise HangupInterrupt()
        if self.deferred_cause is not None:
            raise DeferredHangup()
        if self.transfer_to is not None:
            raise TransferInterrupt()
        if breakable and self.break_pending > 0 and time.monotonic() >= self.break_due:
            self.break_pending -= 1
            self.break_due = self.later("break_ms")
            raise BreakInterrupt()
        if parked and self.unpark_requested:
            self.unpark_requested = False
            raise UnparkInterrupt()

    def block(
        self,
        sim_seconds: float | None,
        *,
        messages: bool = False,
        breakable: bool = False,
        parked: bool = False,
        until: Callable[[], bool] | None = None,
        nest: bool = False,
    ) -> None:
        """Wait ``sim_seconds`` (None = until interrupted or ``until()`` is true).

        With ``messages`` queued private events run meanwhile (park, bridge,
        socket); with ``nest`` (a playback) only those without event-lock run,
        nested, and the time they take does not count.  Raises an
        :class:`Interrupt` subclass when one is due.
        """
        deadline = None if sim_seconds is None else time.monotonic() + self.switch.clock.real(sim_seconds)
        runs = messages or nest
        while True:
            if parked and self.unpark_requested and messages and not self.hangup_requested \
                    and self._ready_message(False):
                self.run_message(self.inbox.popleft())
                continue
            self.check(breakable=breakable, parked=parked)
            if until is not None and until():
                return
            if runs and self._ready_message(nest and not messages):
                started = time.monotonic()
                self.run_message(self.inbox.popleft())
                if deadline is not None and nest:
                    deadline += time.monotonic() - started  # the outer file waited meanwhile
                continue
            timeout = 5.0 if deadline is None else deadline - time.monotonic()
            if deadline is not None and timeout <= 0:
                return
            if runs:
                wait = self._message_wait(nest and not messages)
                if wait is not None:
                    timeout = min(timeout, wait)
            if breakable and self.break_pending > 0:
                timeout = min(timeout, max(0.0, self.break_due - time.monotonic()))
            self.wake.clear()
            # re-check after clear so a poke between check and clear is not lost
            if self.hangup_requested or self.transfer_to is not None or self.deferred_cause is not None \
                    or (runs and self._ready_message(nest and not messages)) \
                    or (breakable and self.break_pending > 0 and time.monotonic() >= self.break_due) \
                    or (parked and self.unpark_requested):
                continue
            self.wake.wait(timeout)

    # -- execution ----------------------------------------------------------
    def run_message(self, msg: Message) -> None:
        try:
            if msg.command == "hangup":
                self.switch.hangup(self.ch, msg.cause)
                return
            if msg.command == "execute":
                for _ in range(max(1, msg.loops)):
                    self.switch.apps.execute(self, msg.app, msg.arg, msg.app_uuid)
                if msg.private is not None:
                    self.switch.fire_channel("PRIVATE_COMMAND", self.ch, variables=False, first=msg.private)
        finally:
            msg.done.set()

    def _run(self) -> None:
        sw = self.switch
        try:
            while True:
                try:
                    self.check()
                    if self._ready_message(False):
                        self.run_message(self.inbox.popleft())
                        continue
                    if self.apps:
                        app, arg = self.apps.popleft()
                        sw.apps.execute(self, app, arg)
                        continue
                    if self.holding or self.ch.bridged_to or self.ch.controlled or self.inbox:
                        self.block(None, messages=True,
                                   until=lambda: not (self.holding or self.ch.bridged_to or self.ch.controlled
                                                      or self.inbox) or bool(self.apps))
                        continue
                    # End of the dialplan: FreeSWITCH hangs up NORMAL_CLEARING.
                    sw.hangup(self.ch, "NORMAL_CLEARING")
                except DeferredHangup:
                    cause, self.deferred_cause = self.deferred_cause or "NORMAL_CLEARING", None
                    sw.hangup(self.ch, cause)
                except TransferInterrupt:
                    apps, self.transfer_to = self.transfer_to or [], None
                    self.apps = collections.deque(apps)
                    self.unpark_requested = False
                    self.break_pending = 0
        except HangupInterrupt:
            pass
        except Exception:  # a bug in an app must not leave a zombie channel
            logger.exception("sim session %s crashed; hanging up", self.ch.uuid)
            if self.ch.alive:
                sw.hangup(self.ch, "NORMAL_TEMPORARY_FAILURE")
        finally:
            try:
                for msg in self.inbox:  # never executed: release synchronous senders
                    msg.done.set()
                if self.finish_gate is not None:
                    self.finish_gate.wait(timeout=2.0)
                sw.finish_channel(self)
            finally:
                self.done.set()

"""The switch adapter: the one class through which product code drives a FreeSWITCH.

``Switch`` runs over greenswitch's ``InboundESL`` (one
``esl_dialer.esl.inbound.InboundConnection``, a subclass, per TCP session,
which closes greenswitch's send/read gaps) and adds what greenswitch leaves
out: reconnect with exponential back-off and jitter that re-subscribes
events and filters, bgapi job results, per-channel waits with timeouts,
handlers per event name and per channel, and the command helpers (the only
place the product builds ESL commands, via ``esl_dialer.esl.commands``).

Threads of control (all in one ``gevent.pool.Group``, killed and joined by ``close()``):
the supervisor (connect/reconnect), one reader per connection (socket -> frames ->
replies, job results, channel waits; it never runs user code), and one dispatcher
that calls user handlers from a backlog the reader fills. FreeSWITCH drops a
listener that falls 500 events behind; the reader never waits for a handler.

The same code runs against ``dialer sim`` and a real FreeSWITCH; nothing here knows which.
"""
from __future__ import annotations

import collections
import json
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Callable, Iterable, Mapping

import gevent
import gevent.event
import gevent.pool

from esl_dialer.esl import commands as cmds
from esl_dialer.esl.events import Event
from esl_dialer.esl.inbound import (  # noqa: F401 - errors re-exported: product code imports them from here
    AuthFailed, ChannelHangup, CommandFailed, InboundConnection as _Connection, NotConnected, SwitchError,
    SwitchTimeout,
)
from esl_dialer.messages import AttemptResult

logger = logging.getLogger(__name__)

Handler = Callable[[Event], Any]

#: Events the adapter itself needs (job results, hang-ups); always subscribed.
CORE_EVENTS = ("BACKGROUND_JOB", "CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE")
#: Default subscription: what the dialer and IVR wait for.
DEFAULT_EVENTS = CORE_EVENTS + (
    "CHANNEL_CREATE", "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_ANSWER", "CHANNEL_BRIDGE",
    "CHANNEL_UNBRIDGE", "CHANNEL_PARK", "CHANNEL_EXECUTE_COMPLETE", "PLAYBACK_START", "PLAYBACK_STOP",
    "DTMF", "HEARTBEAT",
)
HANGUP_EVENTS = frozenset({"CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE", "CHANNEL_DESTROY"})
#: Hang-up causes that mean "rang out" rather than "failed" (FreeSWITCH hangup cause table).
#: ORIGINATOR_CANCEL: we (or the originate timeout) cancelled a ringing call.
NO_ANSWER_CAUSES = frozenset({"NO_ANSWER", "NO_USER_RESPONSE", "ALLOTTED_TIMEOUT", "PROGRESS_TIMEOUT",
                              "ORIGINATOR_CANCEL"})
BUSY_CAUSES = frozenset({"USER_BUSY", "CALL_REJECTED"})


@dataclass(frozen=True)
class OriginateResult:
    """What ``originate`` returned: ``+OK <uuid>`` or ``-ERR <CAUSE>``."""

    uuid: str
    ok: bool
    cause: str | None
    result: AttemptResult | None  # None when ok: answered-or-early-media is decided by events
    job_uuid: str
    reply: str

    @classmethod
    def from_reply(cls, uuid: str, job_uuid: str, reply: str) -> "OriginateResult":
        text = reply.strip()
        if text.startswith("+OK"):
            got = text[3:].strip() or uuid
            return cls(got, True, None, None, job_uuid, text)
        cause = text[4:].strip() if text.startswith("-ERR") else text
        cause = cause.split()[0] if cause else "UNKNOWN"
        if cause in BUSY_CAUSES:
            result = AttemptResult.BUSY
        elif cause in NO_ANSWER_CAUSES:
            result = AttemptResult.NO_ANSWER
        else:
            result = AttemptResult.FAILED
        return cls(uuid, False, cause, result, job_uuid, text)


class BackgroundJob:
    """A ``bgapi`` in flight; ``wait(timeout)`` returns the BACKGROUND_JOB body."""

    def __init__(self, job_uuid: str, result: gevent.event.AsyncResult, forget: Callable[[str], None]) -> None:
        self.job_uuid = job_uuid
        self._result = result
        self._forget = forget

    def ready(self) -> bool:
        return self._result.ready()

    def wait(self, timeout: float) -> str:
        try:
            event = self._result.get(timeout=timeout)
        except gevent.Timeout:
            self._forget(self.job_uuid)
            raise SwitchTimeout(f"no BACKGROUND_JOB for job {self.job_uuid} within {timeout} s") from None
        return event.body


class _Channel:
    """What the adapter remembers about a tracked channel: last event per name, waiters."""

    __slots__ = ("uuid", "last", "waiters", "hangup")

    def __init__(self, uuid: str) -> None:
        self.uuid = uuid
        self.last: dict[str, Event] = {}
        self.waiters: list[tuple[frozenset[str], int, gevent.event.AsyncResult]] = []
        self.hangup: Event | None = None

    def record(self, ev: Event) -> None:
        key = ev.channel_key or ""
        self.last[key] = ev
        if ev.name in HANGUP_EVENTS and self.hangup is None:
            self.hangup = ev
        if not self.waiters:
            return
        keep = []
        for names, since, result in self.waiters:
            if key in names and ev.seq > since:
                result.set(ev)
            elif ev.name in HANGUP_EVENTS and not (names & HANGUP_EVENTS):
                result.set_exception(ChannelHangup(self.uuid, ev))
            else:
                keep.append((names, since, result))
        self.waiters = keep

    def seen(self, names: frozenset[str], since: int) -> Event | None:
        found = [ev for name, ev in self.last.items() if name in names and ev.seq > since]
        return min(found, key=lambda e: e.seq) if found else None


class Switch:
    """A FreeSWITCH reached over inbound ESL; the only builder of ESL commands in the product.

    ``Switch(host, port, password).start()`` connects (raising AuthFailed on a
    wrong password, NotConnected/SwitchTimeout if nothing answers within
    ``connect_timeout``) and from then on stays connected: after a drop it
    reconnects with back-off and re-subscribes. ``close()`` ends everything.
    """

    def __init__(self, host: str = "127.0.0.1", port: int = 8021, password: str = "ClueCon", *,
                 events: Iterable[str] = DEFAULT_EVENTS, connect_timeout: float = 5.0,
                 command_timeout: float = 10.0, reconnect_min_s: float = 0.1, reconnect_max_s: float = 5.0,
                 channel_linger_s: float = 30.0, idle_probe_s: float | None = 60.0,
                 max_tracked_channels: int = 50_000, name: str = "switch") -> None:
        self.host, self.port, self.password = host, int(port), password
        self.name = name
        self.connect_timeout = connect_timeout
        self.command_timeout = command_timeout
        self.reconnect_min_s = reconnect_min_s
        self.reconnect_max_s = reconnect_max_s
        self.channel_linger_s = channel_linger_s
        self.idle_probe_s = idle_probe_s
        self.max_tracked_channels = max_tracked_channels
        self._probe: gevent.Greenlet | None = None
        self._events: list[str] = []
        self._custom: list[str] = []
        self._filters: list[tuple[str, str]] = []
        for ev in tuple(CORE_EVENTS) + tuple(events):
            self._add_event_name(ev)
        self._group = gevent.pool.Group()
        self._conn: _Connection | None = None
        self._up = gevent.event.Event()
        self._closing = False
        self._started = False
        self._first_error: Exception | None = None
        self._first_attempt = gevent.event.Event()
        self._retry_initial = False
        self._handlers: dict[str, list[Handler]] = {}
        self._channel_handlers: dict[str, list[Handler]] = {}
        self._any_handlers: list[Handler] = []
        self._connect_hooks: list[Callable[["Switch"], Any]] = []
        self._jobs: dict[str, gevent.event.AsyncResult] = {}
        self._channels: dict[str, _Channel] = {}
        self._expiry: collections.deque[tuple[float, str]] = collections.deque()
        self._backlog: collections.deque[Event] = collections.deque()
        self._wakeup = gevent.event.Event()
        self._seq = 0
        self.stats = {"events": 0, "dispatched": 0, "max_backlog": 0, "connects": 0, "handler_errors": 0}

    # ------------------------------------------------------------------ life
    def start(self, wait: bool = True) -> "Switch":
        """Spawn the supervisor and dispatcher.

        With ``wait`` block until the first connect and raise its error
        (AuthFailed, NotConnected, SwitchTimeout). Without, return at once and
        keep retrying in the background until the switch answers.
        """
        if self._started:
            return self
        self._started = True
        self._retry_initial = not wait
        self._spawn(self._dispatch_loop)
        self._spawn(self._supervise)
        if wait:
            if not self._first_attempt.wait(timeout=self.connect_timeout * 3 + 1):
                raise SwitchTimeout(f"could not reach {self.host}:{self.port}")
            if self._first_error is not None:
                err = self._first_error
                self.close()
                raise err
        return self

    def close(self, timeout: float = 5.0) -> None:
        """Say ``exit``, stop every greenlet (killed and joined), fail pending waits."""
        self._closing = True
        conn = self._conn
        if conn is not None and conn.connected:
            try:
                conn.send(cmds.EXIT, timeout=1.0)
            except SwitchError:
                pass
            conn.stop()
        self._group.kill(timeout=timeout)
        self._up.clear()
        exc = NotConnected("switch adapter closed")
        for result in list(self._jobs.values()):
            if not result.ready():
                result.set_exception(exc)
        self._jobs.clear()
        for ch in self._channels.values():
            for _, _, result in ch.waiters:
                if not result.ready():
                    result.set_exception(exc)
            ch.waiters = []

    def __enter__(self) -> "Switch":
        return self.start()

    def __exit__(self, *exc: object) -> None:
        self.close()

    @property
    def connected(self) -> bool:
        return self._up.is_set()

    def wait_connected(self, timeout: float) -> bool:
        return self._up.wait(timeout=timeout)

    def on_connect(self, hook: Callable[["Switch"], Any]) -> None:
        """Call ``hook(switch)`` after every (re)connect, once subscribed (e.g. to resync state)."""
        self._connect_hooks.append(hook)

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> gevent.Greenlet:
        g = self._group.spawn(fn, *args)
        g.link_exception(self._greenlet_died)
        return g

    def _greenlet_died(self, g: gevent.Greenlet) -> None:
        logger.error("%s: greenlet %s died: %r", self.name, g, g.exception)

    def _supervise(self) -> None:
        delay = self.reconnect_min_s
        while not self._closing:
            conn = _Connection(self, self.host, self.port, self.password, self.connect_timeout)
            try:
                conn.connect()
                self._conn = conn
                self._subscribe(conn)
            except AuthFailed as exc:
                conn.stop()
                self._conn = None
                if not self._first_attempt.is_set() and not self._retry_initial:
                    self._first_error = exc
                    self._first_attempt.set()
                    return
                logger.error("%s: %s; retrying in %.1f s", self.name, exc, self.reconnect_max_s)
                gevent.sleep(self.reconnect_max_s)
                continue
            except SwitchError as exc:
                conn.stop()
                self._conn = None
                if not self._first_attempt.is_set() and not self._retry_initial:
                    self._first_error = exc
                    self._first_attempt.set()
                    return
                pause = delay * (0.5 + random.random())
                logger.warning("%s: connect to %s:%s failed (%s); retrying in %.2f s",
                               self.name, self.host, self.port, exc, pause)
                gevent.sleep(pause)
                delay = min(delay * 2, self.reconnect_max_s)
                continue
            delay = self.reconnect_min_s
            self.stats["connects"] += 1
            self._up.set()
            self._first_attempt.set()
            logger.info("%s: connected to %s:%s (connect #%d)", self.name, self.host, self.port,
                        self.stats["connects"])
            for hook in list(self._connect_hooks):
                self._call(hook, self)
            while conn.reader is not None and not conn.reader.dead and not self._closing:
                conn.reader.join(timeout=1.0)
            self._up.clear()
            self._conn = None
            if not self._closing:
                logger.warning("%s: lost the ESL connection to %s:%s; reconnecting", self.name, self.host, self.port)

    def _idle(self, conn: _Connection, silent_s: float) -> None:
        """Called by the reader when nothing arrived for a while: probe with ``api status``."""
        if self.idle_probe_s is None or silent_s < self.idle_probe_s or self._closing:
            return
        if self._probe is not None and not self._probe.dead:
            return

        def probe() -> None:
            try:
                conn.send(cmds.api("status"), timeout=self.command_timeout)
            except SwitchError as exc:  # send() already dropped the connection
                logger.warning("%s: idle probe of %s:%s failed (%s)", self.name, self.host, self.port, exc)

        self._probe = self._spawn(probe)

    def _subscribe(self, conn: _Connection) -> None:
        words = list(self._events)
        if self._custom:
            words += ["CUSTOM"] + self._custom
        reply = conn.send(cmds.event_subscription(words), timeout=self.command_timeout)
        if not reply.text.startswith("+OK"):
            raise SwitchError(f"event subscription refused: {reply.text}")
        for header, value in self._filters:
            conn.send(cmds.event_filter(header, value), timeout=self.command_timeout)

    def _add_event_name(self, name: str) -> bool:
        name = cmds.check_token(name, "event name")
        if "::" in name:
            if name not in self._custom:
                self._custom.append(name)
                return True
            return False
        if name != "CUSTOM" and name not in self._events:
            self._events.append(name)
            return True
        return False

    def subscribe(self, *names: str) -> None:
        """Add event names (``CHANNEL_STATE``, ``callcenter::info`` ...) now and after every reconnect."""
        added = [n for n in names if self._add_event_name(n)]
        conn = self._conn
        if not added or conn is None or not conn.connected:
            return
        words = [n for n in added if "::" not in n]
        customs = [n for n in added if "::" in n]
        if customs:
            words += ["CUSTOM"] + customs
        line = cmds.event_subscription(words)
        self._check_reply(line, conn.send(line, timeout=self.command_timeout).text)

    def add_filter(self, header: str, value: str) -> None:
        """``filter <header> <value>``: only matching events are sent (kept across reconnects)."""
        header = cmds.check_var_name(header)
        value = cmds.check_token(value, "filter value")
        self._filters.append((header, value))
        conn = self._conn
        if conn is not None and conn.connected:
            line = cmds.event_filter(header, value)
            self._check_reply(line, conn.send(line, timeout=self.command_timeout).text)

    # -------------------------------------------------------------- handlers
    def on(self, name: str, handler: Handler) -> Handler:
        """Call ``handler(event)`` for every event named ``name`` (CUSTOM: the subclass; ``*``: all)."""
        if name == "*":
            self._any_handlers.append(handler)
        else:
            self._handlers.setdefault(name, []).append(handler)
        return handler

    def off(self, name: str, handler: Handler) -> None:
        handlers = self._any_handlers if name == "*" else self._handlers.get(name, [])
        if handler in handlers:
            handlers.remove(handler)
        if name != "*" and not handlers:
            self._handlers.pop(name, None)

    def on_channel(self, uuid: str, handler: Handler) -> Handler:
        """Call ``handler(event)`` for every event of channel ``uuid`` (removed after its hang-up completes)."""
        self._channel_handlers.setdefault(cmds.check_uuid(uuid), []).append(handler)
        return handler

    def off_channel(self, uuid: str, handler: Handler | None = None) -> None:
        if handler is None:
            self._channel_handlers.pop(uuid, None)
            return
        handlers = self._channel_handlers.get(uuid, [])
        if handler in handlers:
            handlers.remove(handler)
        if not handlers:
            self._channel_handlers.pop(uuid, None)

    def _call(self, fn: Callable[..., Any], *args: Any) -> None:
        try:
            fn(*args)
        except Exception:  # a handler's bug must not kill the dispatcher
            self.stats["handler_errors"] += 1
            logger.exception("%s: handler %r failed", self.name, getattr(fn, "__name__", fn))

    # ------------------------------------------------------ reader-side routing
    def _route(self, ev: Event) -> None:
        """Runs in the reader: cheap, non-blocking bookkeeping only."""
        self._seq += 1
        ev.seq = self._seq
        ev.received_at = time.monotonic()
        self.stats["events"] += 1
        name = ev.name
        if name == "BACKGROUND_JOB" and ev.job_uuid is not None:
            result = self._jobs.pop(ev.job_uuid, None)
            if result is not None:
                result.set(ev)
        uuid = ev.uuid
        if uuid is not None:
            ch = self._channels.get(uuid)
            if ch is not None:
                ch.record(ev)
                if name == "CHANNEL_HANGUP_COMPLETE" or name == "CHANNEL_DESTROY":
                    self._expiry.append((ev.received_at + self.channel_linger_s, uuid))
            elif name == "CHANNEL_HANGUP_COMPLETE" and uuid in self._channel_handlers:
                self._expiry.append((ev.received_at + self.channel_linger_s, uuid))
        if self._any_handlers or ev.channel_key in self._handlers or (uuid is not None and uuid in self._channel_handlers):
            self._backlog.append(ev)

    def _after_batch(self) -> bool:
        """Reader bookkeeping after a batch of frames; True when handlers have work."""
        backlog = len(self._backlog)
        if backlog:
            if backlog > self.stats["max_backlog"]:
                self.stats["max_backlog"] = backlog
            self._wakeup.set()
        expiry = self._expiry
        if expiry and expiry[0][0] <= time.monotonic():
            now = time.monotonic()
            while expiry and expiry[0][0] <= now:
                _, uuid = expiry.popleft()
                ch = self._channels.get(uuid)
                if ch is None or not ch.waiters:
                    self._channels.pop(uuid, None)
                    self._channel_handlers.pop(uuid, None)
        return backlog > 0

    def _dispatch_loop(self) -> None:
        backlog = self._backlog
        while not self._closing:
            if not backlog:
                self._wakeup.clear()
                self._wakeup.wait(timeout=1.0)
                continue
            ev = backlog.popleft()
            self.stats["dispatched"] += 1
            for handler in self._handlers.get(ev.channel_key, ()):
                self._call(handler, ev)
            if ev.uuid is not None:
                for handler in self._channel_handlers.get(ev.uuid, ()):
                    self._call(handler, ev)
            for handler in self._any_handlers:
                self._call(handler, ev)

    @property
    def backlog(self) -> int:
        """Events read but not yet handed to handlers."""
        return len(self._backlog)

    @property
    def seq(self) -> int:
        """Receive counter of the last event; pass as ``since=`` to wait for later events only."""
        return self._seq

    # ------------------------------------------------------------- channels
    def track(self, uuid: str) -> None:
        """Remember this channel's events from now on, so ``wait_for`` sees ones that already happened."""
        uuid = cmds.check_uuid(uuid)
        channels = self._channels
        if uuid in channels:
            return
        if len(channels) >= self.max_tracked_channels:
            # Hang-ups lost in a disconnect would otherwise leak: forget the oldest idle channel.
            for old in channels:
                if not channels[old].waiters:
                    logger.warning("%s: tracking more than %d channels; forgetting %s",
                                   self.name, self.max_tracked_channels, old)
                    del channels[old]
                    break
        channels[uuid] = _Channel(uuid)

    def untrack(self, uuid: str) -> None:
        ch = self._channels.pop(uuid, None)
        if ch is not None:
            for _, _, result in ch.waiters:
                if not result.ready():
                    result.set_exception(SwitchError(f"channel {uuid} no longer tracked"))

    def last_event(self, uuid: str, name: str) -> Event | None:
        ch = self._channels.get(uuid)
        return ch.last.get(name) if ch is not None else None

    def wait_for(self, uuid: str, names: str | Iterable[str], timeout: float, since: int = 0) -> Event:
        """Wait (bounded) for the first of ``names`` on channel ``uuid`` received after ``since``.

        Returns at once if a tracked channel already had it. Raises
        ChannelHangup if the channel hangs up first (unless a hang-up event is
        among ``names``) and SwitchTimeout after ``timeout`` seconds.
        """
        wanted = frozenset([names] if isinstance(names, str) else names)
        self.track(uuid)
        ch = self._channels[uuid]
        ev = ch.seen(wanted, since)
        if ev is not None:
            return ev
        if ch.hangup is not None and ch.hangup.seq > since and not (wanted & HANGUP_EVENTS):
            raise ChannelHangup(uuid, ch.hangup)
        result = gevent.event.AsyncResult()
        entry = (wanted, since, result)
        ch.waiters.append(entry)
        try:
            return result.get(timeout=timeout)
        except gevent.Timeout:
            raise SwitchTimeout(f"no {'/'.join(sorted(wanted))} on {uuid} within {timeout} s") from None
        finally:
            if entry in ch.waiters:
                ch.waiters.remove(entry)

    # ------------------------------------------------------------- commands
    def _connection(self) -> _Connection:
        conn = self._conn
        if conn is None or not conn.connected:
            raise NotConnected(f"{self.name}: not connected to {self.host}:{self.port}")
        return conn

    @staticmethod
    def _check_line(command: str) -> str:
        if not isinstance(command, str) or not command.strip():
            raise cmds.CommandError("empty command")
        if "\n" in command or "\r" in command or "\x00" in command:
            raise cmds.CommandError(f"command contains CR/LF/NUL (would inject ESL lines): {command!r}")
        return command

    @staticmethod
    def _check_reply(command: str, reply: str) -> str:
        text = reply.strip()
        if text.startswith("-ERR") or text.startswith("-USAGE"):
            raise CommandFailed(command, text)
        return text

    def api(self, command: str, timeout: float | None = None) -> str:
        """``api <command>``: the api/response body as text (``-ERR ...`` is returned, not raised)."""
        line = cmds.api(self._check_line(command))
        return self._connection().send(line, timeout=timeout or self.command_timeout).text

    def _api_ok(self, command: str, timeout: float | None = None) -> str:
        return self._check_reply(command, self.api(command, timeout))

    def bgapi_start(self, command: str) -> BackgroundJob:
        """``bgapi <command>`` with our own Job-UUID header (mod_event_socket honours it), so the
        result can't race past the waiter. Returns at once; ``job.wait(timeout)`` gives the body."""
        line = self._check_line(command)
        job_uuid = cmds.new_uuid()
        result = gevent.event.AsyncResult()
        self._jobs[job_uuid] = result
        try:
            reply = self._connection().send(cmds.bgapi(line, job_uuid), timeout=self.command_timeout)
        except SwitchError:
            self._jobs.pop(job_uuid, None)
            raise
        if not reply.text.startswith("+OK"):
            self._jobs.pop(job_uuid, None)
            raise CommandFailed(line, reply.text)
        return BackgroundJob(job_uuid, result, self._forget_job)

    def _forget_job(self, job_uuid: str) -> None:
        self._jobs.pop(job_uuid, None)

    def bgapi(self, command: str, timeout: float | None = None) -> str:
        """``bgapi <command>`` and wait (bounded) for its BACKGROUND_JOB result body."""
        return self.bgapi_start(command).wait(timeout or self.command_timeout)

    def originate(self, endpoint: str, *, app: str | None = "park", app_args: str | None = None,
                  extension: str | None = None, dialplan: str | None = None, context: str | None = None,
                  variables: Mapping[str, object] | None = None, leg_variables: Mapping[str, object] | None = None,
                  uuid: str | None = None, cid_name: str | None = None, cid_num: str | None = None,
                  originate_timeout: int | None = None, timeout: float | None = None) -> OriginateResult:
        """Place a call through ``bgapi originate`` and return its result.

        The channel uuid is ours (``origination_uuid``) and tracked before the
        command is sent, so ``wait_for(result.uuid, "CHANNEL_ANSWER", ...)``
        sees events that arrived before the job result. ``+OK`` means answered
        *or* early media (see the captures README); add
        ``ignore_early_media=true`` to ``variables`` when only an answer counts.
        """
        uuid = uuid or cmds.new_uuid()
        line = cmds.originate(endpoint, uuid=uuid, app=app, app_args=app_args, extension=extension,
                              dialplan=dialplan, context=context, variables=variables,
                              leg_variables=leg_variables, cid_name=cid_name, cid_num=cid_num,
                              timeout_s=originate_timeout)
        wait = timeout if timeout is not None else float(originate_timeout or 60) + 10.0
        self.track(uuid)
        try:
            job = self.bgapi_start(line)
            reply = job.wait(wait)
        except SwitchError:
            self.untrack(uuid)
            raise
        result = OriginateResult.from_reply(uuid, job.job_uuid, reply)
        if not result.ok:
            self.untrack(uuid)
            # An originate that fails before a channel exists sends no CHANNEL_HANGUP_COMPLETE:
            # drop handlers registered for this uuid after the linger time anyway.
            self._expiry.append((time.monotonic() + self.channel_linger_s, uuid))
        logger.info("%s: originate %s uuid=%s -> %s", self.name, endpoint, uuid, result.reply)
        return result

    def bridge(self, a: str, b: str, wait_s: float | None = None) -> Event | None:
        """``uuid_bridge a b``; with ``wait_s``, also wait (bounded) for the pair's CHANNEL_BRIDGE.

        FreeSWITCH replies ``+OK`` before the legs are joined: CHANNEL_BRIDGE
        (on ``a`` only, Bridge-B-Unique-ID ``b``) follows about 60 ms later, and
        a ``uuid_broadcast`` sent in between fails (PLAYBACK ERROR; esl-captures
        e_timing).  Returns that event; raises SwitchTimeout when it does not
        come within ``wait_s`` and ChannelHangup when ``a`` hangs up first.
        """
        since = self.seq
        if wait_s is not None:
            self.track(a)  # keep the event even if it arrives before wait_for runs
        self._api_ok(cmds.uuid_bridge(a, b))
        if wait_s is None:
            return None
        deadline = time.monotonic() + wait_s
        while True:
            ev = self.wait_for(a, "CHANNEL_BRIDGE", timeout=max(0.0, deadline - time.monotonic()), since=since)
            if (ev.get("Bridge-B-Unique-ID") or ev.get("Other-Leg-Unique-ID") or b) == b:
                return ev
            since = ev.seq  # an older bridge of ``a`` to another leg

    def transfer(self, uuid: str, extension: str, dialplan: str | None = None, context: str | None = None,
                 leg: str | None = None) -> None:
        self._api_ok(cmds.uuid_transfer(uuid, extension, dialplan, context, leg))

    def broadcast(self, uuid: str, path: str, leg: str = "both") -> None:
        self._api_ok(cmds.uuid_broadcast(uuid, path, leg))

    def break_(self, uuid: str, all_: bool = False) -> None:
        self._api_ok(cmds.uuid_break(uuid, all_))

    def kill(self, uuid: str, cause: str | None = "NORMAL_CLEARING") -> bool:
        """``uuid_kill``; False when the channel does not exist (``-ERR No such channel!``)."""
        text = self.api(cmds.uuid_kill(uuid, cause)).strip()
        if text.startswith("+OK"):
            return True
        if "No such channel" in text:
            return False
        raise CommandFailed(cmds.uuid_kill(uuid, cause), text)

    def setvar(self, uuid: str, name: str, value: object | None) -> None:
        self._api_ok(cmds.uuid_setvar(uuid, name, value))

    def getvar(self, uuid: str, name: str) -> str | None:
        """The variable's value, or None when unset (FreeSWITCH answers ``_undef_``)."""
        text = self._api_ok(cmds.uuid_getvar(uuid, name))
        return None if text == "_undef_" else text

    def exists(self, uuid: str) -> bool:
        return self.api(cmds.uuid_exists(uuid)).strip() == "true"

    def answer(self, uuid: str) -> None:
        self._api_ok(cmds.uuid_answer(uuid))

    def record(self, uuid: str, path: str, action: str = "start", limit_s: int | None = None) -> None:
        self._api_ok(cmds.uuid_record(uuid, action, path, limit_s))

    def hupall(self, cause: str = "NORMAL_CLEARING", var: str | None = None, value: str | None = None) -> None:
        self._api_ok(cmds.hupall(cause, var, value))

    def show_channels(self) -> list[dict[str, Any]]:
        """``show channels as json`` rows (``{"row_count":0}`` when there are none)."""
        command = cmds.show_channels("json")
        text = self._api_ok(command)
        try:
            data = json.loads(text)
        except ValueError:
            raise CommandFailed(command, f"not JSON: {text[:80]!r}") from None
        rows = data.get("rows") if isinstance(data, dict) else None
        return list(rows) if isinstance(rows, list) else []

    def dump(self, uuid: str) -> dict[str, str] | None:
        """``uuid_dump <uuid> json``: the channel's headers and ``variable_*`` entries; None when gone."""
        command = cmds.uuid_dump(uuid, "json")
        text = self.api(command).strip()
        if text.startswith("-ERR") or not text:
            if "No such channel" in text or not text:
                return None
            raise CommandFailed(command, text)
        try:
            data = json.loads(text)
        except ValueError:
            raise CommandFailed(command, f"not JSON: {text[:80]!r}") from None
        return {str(k): str(v) for k, v in data.items()} if isinstance(data, dict) else None

    def status(self) -> str:
        return self._api_ok("status")

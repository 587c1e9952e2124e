"""The event-socket wire: one :class:`Listener` per TCP connection (layer ``wire_``).

Mirrors mod_event_socket.c (FreeSWITCH 1.10): ``auth/request`` greeting;
``api`` answers with ``api/response`` while events wait, because the listener
thread is busy in the api call; events go out only between commands.  Garbage
from a client closes that connection only.  The commands themselves are in
:mod:`.cmd_socket`.

Fan-out never stalls (``event_handler()`` in mod_event_socket.c): firing an
event only appends it to each subscriber's own bounded queue, it never writes
to a socket.  A full queue loses the event for that listener and counts it;
more than ``MAX_MISSED`` lost in a row and the listener is killed with a
``text/disconnect-notice``.  Each connection's greenlet writes its queue in
coalesced batches, so a client that does not read blocks only its own
greenlet.
"""
from __future__ import annotations

import collections
import logging
from typing import TYPE_CHECKING

import gevent
from gevent import socket as gsocket
from gevent.event import Event

from esl_dialer.esl import (
    DISCONNECT_GOODBYE,
    NEED_DATA,
    FrameParser,
    ProtocolError,
    encode_auth_request,
    encode_command_reply,
    encode_disconnect_notice,
    encode_rude_rejection,
)

from .chan_session import Session
from .cmd_socket import EventSocketCommands, filters_pass
from .events import SimEvent

if TYPE_CHECKING:  # pragma: no cover
    from .model_switch import SwitchCore as SimSwitch

logger = logging.getLogger(__name__)

MAX_QUEUE = 100_000  # MAX_QUEUE_LEN in mod_event_socket.c: events queued per listener
MAX_MISSED = 500  # MAX_MISSED: more events than this lost in a row and the listener is killed
KILL_MESSAGE = "killed listener because of lost events\n"  # kill_listener()'s disconnect-notice body
KILL_GRACE_S = 1.0  # a killed listener's socket is closed after this even if the notice could not go out
# switch_socket_send() retries a full socket every 10 ms, 60000 times: ten minutes.
SEND_TIMEOUT_S = 600.0
READ_CHUNK = 65536
MAX_COMMAND_BODY = 1024 * 1024
BATCH_BYTES = 64 * 1024  # one write carries the queued events up to this size
BATCH_CHUNKS = 512  # ... and at most this many of them (sendmsg's IOV_MAX is 1024)
# A busy listener writes at most every 0.25 ms per open listener, capped at 50 ms: with 200
# subscribers each writes <= 20 times a second (more events per write, fewer wake-ups and syscalls:
# the switch makes about 4,000 writes a second however many listen), with a handful (tests, one
# dialer) events go out within a millisecond.  An idle listener writes at once.  FreeSWITCH's
# listener thread polls its queue every 1 ms.
COALESCE_PER_LISTENER_S = 0.00025
COALESCE_MAX_S = 0.05
COALESCE_EVENTS = 256  # ... or as soon as this many are queued


class LogFrame(bytes):
    """An encoded ``log/data`` frame in a listener's queue (``nolog`` drops these, not the events)."""


class Listener(EventSocketCommands):
    """One event-socket connection (inbound client, or our outbound-socket dial-out).

    This class is the wire: reading frames, the inbox, fan-out of events and
    writes.  What each command does is :class:`~.cmd_socket.EventSocketCommands`.
    """

    _opened = 0  # connections so far: spreads their write slots (see _spread)
    # Commands received but not yet handled, over all connections.  FreeSWITCH runs each listener
    # in its own thread, so a command never waits for another listener's event writes; here they
    # share one loop, so a connection about to write events first lets those commands go ahead.
    commands_waiting = 0

    def __init__(self, switch: "SimSwitch", sock, address, *, session: "Session | None" = None,
                 async_mode: bool = True, full: bool = True) -> None:
        self.switch = switch
        self.sock = sock
        self.address = address
        self.session = session
        self.outbound = session is not None
        self.async_mode = async_mode
        self.full = full
        self.authed = self.outbound
        self.format = "plain"
        self.events_on = False
        self.all_events = False
        self.event_names: set[str] = set()
        self.custom: set[str] = set()
        self.filters: list[tuple[str, str]] = []
        self.log_level = -1  # `log <level>` sets it (mod_event_socket LFLAG_LOG + listener->level)
        self.my_uuid: str | None = session.ch.uuid if session else None
        self.myevents = False
        self.linger_s: float | None = None
        self.divert = False
        self.connected = False
        self.session_gone = False
        self.closed = False
        self.lost_events = 0  # l->lost_events: lost since the last successful push
        self.lost_total = 0
        self.killed: str | None = None  # the disconnect message once killed for lost events
        self.events: collections.deque[bytes] = collections.deque()  # l->event_queue, encoded
        self.inbox: collections.deque[tuple[str, object]] = collections.deque()  # commands, control
        self._wake = Event()
        self._idle = False  # waiting with nothing queued: the next event wakes the greenlet
        self._last_write = 0.0
        # 0.5-1.5 times the coalescing delay, different for each connection (golden-ratio steps), so
        # 200 busy listeners do not all wake in the same loop turn and hold up a command behind them.
        Listener._opened += 1
        self._spread = 0.5 + (Listener._opened * 0.6180339887) % 1.0
        # Client commands are small; a sendmsg body of 1 MiB is already generous.
        self.parser = FrameParser(commands=True, max_body_bytes=MAX_COMMAND_BODY)
        self._reader: gevent.Greenlet | None = None
        self._main: gevent.Greenlet | None = None
        self.handlers = self.command_table()

    # -- lifecycle ------------------------------------------------------------
    def run(self) -> None:
        """Serve this connection until it closes (runs in the caller's greenlet)."""
        self.sock.settimeout(SEND_TIMEOUT_S)
        if not self.outbound:
            try:
                self.sock.setsockopt(gsocket.IPPROTO_TCP, gsocket.TCP_NODELAY, 1)  # as listener_run()
            except OSError:
                pass
            if self.switch.config.acl and not any(self.address[0].startswith(p) for p in self.switch.config.acl):
                logger.warning("sim: %s rejected by acl", self.address[0])
                self._send(encode_rude_rejection())
                self._close_socket()
                return
            self._send(encode_auth_request())
        self.switch.listeners.add(self)
        self._reader = gevent.spawn(self._read_loop)
        try:
            self._serve()
        finally:
            self.close()

    def _post(self, kind: str, item: object = None) -> None:
        if kind == "cmd":
            if self.closed:
                return
            Listener.commands_waiting += 1
        self.inbox.append((kind, item))
        self._wake.set()

    def _read_loop(self) -> None:
        try:
            while not self.closed:
                try:
                    data = self.sock.recv(READ_CHUNK)
                except gsocket.timeout:
                    continue
                except OSError:
                    data = b""
                if not data:
                    self._post("eof")
                    return
                self.parser.receive_data(data)
                while True:
                    frame = self.parser.next_frame()
                    if frame is NEED_DATA:
                        break
                    self._post("cmd", frame)
        except ProtocolError as err:
            logger.warning("sim: garbage from %s: %s; closing that connection", self.address, err)
            self._post("garbage", str(err))

    def _serve(self, until: float | None = None) -> bool:
        """The listener thread: queued events, then the next command; False once the connection must end.

        As in read_packet(), the events queued before a command are written
        before it is handled, and none while it runs.  With ``until`` (loop
        time), return True when it passes (lingering).
        """
        loop = gevent.get_hub().loop
        while not self.closed:
            if self.killed is not None:
                self.sock.settimeout(KILL_GRACE_S)
                self._send_disconnect(self.killed)
                return False
            events = self.events
            coalesce = min(COALESCE_MAX_S, COALESCE_PER_LISTENER_S * len(self.switch.listeners)) * self._spread
            if events and (self.inbox or len(events) >= COALESCE_EVENTS
                           or loop.now() - self._last_write >= coalesce):
                if Listener.commands_waiting and not self.inbox:
                    gevent.sleep(0)  # behind the greenlets that were woken to handle a command
                    if self.closed or self.killed is not None:
                        continue
                self._write_events()
                if self.events:
                    gevent.sleep(0)  # one batch per turn: other connections and calls go on
                continue
            if self.inbox:
                kind, item = self.inbox.popleft()
                if kind == "cmd":
                    Listener.commands_waiting -= 1
                    if not self._command(item):
                        return False
                elif kind == "garbage":
                    self._send(encode_command_reply("-ERR command parse error."))
                    self._send_disconnect()
                    return False
                elif kind == "gone":
                    if not self._channel_gone():
                        return False
                elif kind in ("eof", "close"):
                    return False
                continue
            timeout = None
            if until is not None:
                timeout = until - loop.now()
                if timeout <= 0:
                    while self.events and not self.closed:
                        self._write_events()
                    return True
            if events:  # coalescing: wait for the write slot; a command ends the wait
                wait = self._last_write + coalesce - loop.now()
                timeout = wait if timeout is None else min(timeout, wait)
            else:
                self._idle = True
            self._wake.clear()
            self._wake.wait(timeout)
            self._idle = False
        return False

    def _encode(self, event: SimEvent) -> bytes:
        return event.encode(self.format)

    def _write_events(self) -> None:
        """Write the queued events, up to BATCH_BYTES of them, in one send (gathered, not joined).

        What a slow reader's socket does not take at once goes out in pieces
        of BATCH_BYTES with a yield in between, so one loop turn never copies
        more than that per connection however far behind its reader is.
        """
        events = self.events
        chunks = []
        size = 0
        while events and size < BATCH_BYTES and len(chunks) < BATCH_CHUNKS:
            data = events.popleft()
            chunks.append(data)
            size += len(data)
        self._last_write = gevent.get_hub().loop.now()
        try:
            sent = self.sock.sendmsg(chunks) if len(chunks) > 1 else self.sock.send(chunks[0])
            if sent < size:  # the socket filled up
                rest = memoryview(b"".join(chunks) if len(chunks) > 1 else chunks[0])[sent:]
                while rest:
                    gevent.sleep(0)
                    if self.closed:
                        return
                    rest = rest[self.sock.send(rest[:BATCH_BYTES]):]
        except (OSError, gsocket.timeout) as err:
            self._send_failed(err)

    def flush_events(self) -> None:
        """Drop the queued events (flush_listener(), for ``noevents``); queued log lines stay."""
        self._keep(lambda item: type(item) is LogFrame)

    def close(self) -> None:
        Listener.commands_waiting -= sum(1 for kind, _ in self.inbox if kind == "cmd")
        self.inbox.clear()  # a closed connection handles no more commands
        if self.closed:
            return
        self.closed = True
        self.switch.listeners.discard(self)
        self.events.clear()
        self._post("close")
        self._close_socket()
        if self._reader is not None and self._reader is not gevent.getcurrent():
            self._reader.kill(block=False)
        if self.session is not None:
            self.session.poke()

    def kill(self, message: str = KILL_MESSAGE) -> None:
        """kill_listener(): stop its events, send a disconnect notice, close.

        Never blocks the caller (the firing code): the connection's own
        greenlet writes the notice; one stuck on a full socket is cut off
        after ``KILL_GRACE_S``, notice or not.
        """
        if self.closed or self.killed is not None:
            return
        self.killed = message
        self.switch.listeners.discard(self)
        self.events.clear()
        self._wake.set()
        self.switch.spawn(self._close_after, KILL_GRACE_S)

    def _close_after(self, seconds: float) -> None:
        gevent.sleep(seconds)
        self.close()

    def _close_socket(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass

    def _send(self, data: bytes) -> bool:
        if self.closed:
            return False
        try:
            self.sock.sendall(data)
            return True
        except (OSError, gsocket.timeout) as err:
            self._send_failed(err)
            return False

    def _send_failed(self, err: Exception) -> None:
        logger.info("sim: send to %s failed (%s); closing", self.address, err)
        self.closed = True
        self.switch.listeners.discard(self)
        self.events.clear()
        self._close_socket()

    def _send_disconnect(self, message: str = DISCONNECT_GOODBYE) -> None:
        headers = []
        if self.session is not None:
            headers = [("Controlled-Session-UUID", self.session.ch.uuid), ("Content-Disposition", "disconnect")]
        self._send(encode_disconnect_notice(headers, message))

    # -- events ---------------------------------------------------------------------
    def wants(self, event: SimEvent) -> bool:
        if not self.events_on:
            return False
        name = event.name
        if name == "CUSTOM":
            if not (self.all_events or (event.subclass and event.subclass in self.custom)):
                return False
        elif not (self.all_events or name in self.event_names):
            return False
        if self.myevents and self.my_uuid and event.unique_id != self.my_uuid:
            return False
        return not self.filters or filters_pass(self.filters, event)

    def may_want(self, name: str) -> bool:
        """Cheap pre-check on the event name only (filters and myevents are checked in offer)."""
        return self.events_on and not self.closed and (self.all_events or name in self.event_names)

    def offer(self, event: SimEvent) -> None:
        """Queue ``event`` if this listener wants it (event_handler()): never blocks, never writes."""
        if self.closed or not self.events_on:
            return
        if self.filters or self.myevents or self.session_gone or not self.all_events:
            if not self.wants(event):
                return
            if self.session_gone and event.unique_id == self.my_uuid:
                return  # after HANGUP_COMPLETE the controlled channel is gone for this socket (no DESTROY)
        events = self.events
        if len(events) >= MAX_QUEUE:  # switch_queue_trypush() failed
            self.lost_events += 1
            self.lost_total += 1
            logger.debug("sim: event enqueue error for %s | Queue size: [%d/%d] Max queue size reached",
                         self.address, len(events), MAX_QUEUE)
            if self.lost_events > MAX_MISSED:
                logger.warning("sim: Killing listener %s because of too many lost events. Lost [%d] Queue size[%d/%d]",
                               self.address, self.lost_events, len(events), MAX_QUEUE)
                self.kill(KILL_MESSAGE)
            return
        # Queued already encoded: bytes are not tracked by the garbage collector, so 100,000 queued
        # events of a stuck listener do not turn every full collection into a pause of the whole switch.
        events.append(event.plain() if self.format == "plain" else self._encode(event))
        if self.lost_events:
            logger.warning("sim: listener %s: Lost [%d] events! Event Queue size: [%d/%d]",
                           self.address, self.lost_events, len(events), MAX_QUEUE)
            self.lost_events = 0
        if self._idle:
            self._idle = False
            self._wake.set()

    def offer_log(self, line) -> None:
        """A log line for this `log` listener (the switch checked the level): queued with the events."""
        if self.closed or self.killed is not None:
            return
        self.events.append(LogFrame(line.frame()))
        if self._idle:
            self._idle = False
            self._wake.set()

    def flush_logs(self) -> None:
        """Drop the queued log lines (``nolog``), keep the events."""
        self._keep(lambda item: type(item) is not LogFrame)

    def _keep(self, wanted) -> None:
        kept = [item for item in self.events if wanted(item)]
        if len(kept) != len(self.events):
            self.events.clear()
            self.events.extend(kept)

    def channel_gone(self, ch) -> None:
        """The controlled channel finished (after CHANNEL_HANGUP_COMPLETE was queued)."""
        self.session_gone = True
        self._post("gone", ch)

    def _channel_gone(self) -> bool:
        ch = self.session.ch if self.session else None
        if ch is None:
            return True
        if self.linger_s is not None:
            self._send(encode_disconnect_notice([
                ("Controlled-Session-UUID", ch.uuid), ("Content-Disposition", "linger"),
                ("Channel-Name", ch.name), ("Linger-Time", str(int(self.linger_s)) if self.linger_s >= 0 else "-1"),
            ]))
            wait = self.switch.clock.real(self.linger_s if self.linger_s >= 0 else 600)
            # keep delivering events and answering commands while lingering
            if not self._serve(until=gevent.get_hub().loop.now() + wait):
                return False
        self._send_disconnect()
        return False

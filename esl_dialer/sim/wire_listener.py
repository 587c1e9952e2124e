"""The event-socket wire: one :class:`Listener` per TCP connection (layer ``wire_``).

Mirrors mod_event_socket.c (FreeSWITCH 1.10): ``auth/request`` greeting;
``api`` answers with ``api/response`` while events wait, because the listener
thread is busy in the api call; events go out only between commands.  A
listener that falls more than ``MAX_MISSED`` events behind is dropped, like
FreeSWITCH does.  Garbage from a client closes that connection only.  The
commands themselves are in :mod:`.cmd_socket`.
"""
from __future__ import annotations

import logging
from typing import TYPE_CHECKING

import gevent
from gevent import socket as gsocket
from gevent.queue import Empty, Queue

from esl_dialer.esl import (
    DISCONNECT_GOODBYE,
    NEED_DATA,
    Frame,
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

MAX_QUEUE = 100_000  # MAX_QUEUE_LEN in mod_event_socket.c
MAX_MISSED = 500  # MAX_MISSED: a listener this far behind is killed
SEND_TIMEOUT_S = 30.0
READ_CHUNK = 65536
MAX_COMMAND_BODY = 1024 * 1024
BATCH_BYTES = 256 * 1024  # coalesce queued events into writes up to this size

class Listener(EventSocketCommands):
    """One event-socket connection (inbound client, or our outbound-socket dial-out).

    This class is the wire: reading frames, the inbox, fan-out of events and
    writes.  What each command does is :class:`~.cmd_socket.EventSocketCommands`.
    """

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
        self.missed = 0
        self.inbox: Queue = Queue()
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
            if self.switch.config.acl and not any(self.address[0].startswith(p) for p in self.switch.config.acl):
                logger.warning("sim: %s rejected by acl", self.address[0])
                self._send(encode_rude_rejection())
                self._close_socket()
                return
            self._send(encode_auth_request())
        self.switch.listeners.add(self)
        self._reader = gevent.spawn(self._read_loop)
        try:
            self._main_loop()
        finally:
            self.close()

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
                    self.inbox.put(("eof", None))
                    return
                self.parser.receive_data(data)
                while True:
                    frame = self.parser.next_frame()
                    if frame is NEED_DATA:
                        break
                    self.inbox.put(("cmd", frame))
        except ProtocolError as err:
            logger.warning("sim: garbage from %s: %s; closing that connection", self.address, err)
            self.inbox.put(("garbage", str(err)))

    def _main_loop(self) -> None:
        while not self.closed:
            kind, item = self.inbox.get()
            if kind == "event":
                self._send_events(item)
            elif kind == "log":
                self._send(item.frame())
            elif kind == "cmd":
                if not self._command(item):
                    return
            elif kind == "garbage":
                self._send(encode_command_reply("-ERR command parse error."))
                self._send_disconnect()
                return
            elif kind == "gone":
                if not self._channel_gone():
                    return
            elif kind in ("eof", "close"):
                return

    def _encode(self, event: SimEvent) -> bytes:
        return event.encode(self.format)

    def _send_events(self, first: SimEvent) -> None:
        """Send ``first`` and the events queued right behind it in one write (fewer syscalls)."""
        chunks = [self._encode(first)]
        size = len(chunks[0])
        while size < BATCH_BYTES:
            try:
                kind, item = self.inbox.peek_nowait()
            except Empty:
                break
            if kind != "event":
                break
            self.inbox.get_nowait()
            data = self._encode(item)
            chunks.append(data)
            size += len(data)
        self._send(chunks[0] if len(chunks) == 1 else b"".join(chunks))

    def close(self) -> None:
        if self.closed:
            return
        self.closed = True
        self.switch.listeners.discard(self)
        self.inbox.put(("close", None))
        self._close_socket()
        if self._reader is not None and self._reader is not gevent.getcurrent():
            self._reader.kill(block=False)
        if self.session is not None:
            self.session.poke()

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
            logger.info("sim: send to %s failed (%s); closing", self.address, err)
            self.closed = True
            self.switch.listeners.discard(self)
            self._close_socket()
            return False

    def _send_disconnect(self) -> None:
        headers = []
        if self.session is not None:
            headers = [("Controlled-Session-UUID", self.session.ch.uuid), ("Content-Disposition", "disconnect")]
        self._send(encode_disconnect_notice(headers, DISCONNECT_GOODBYE))

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
        if self.closed or not self.wants(event):
            return
        if self.session_gone and event.unique_id == self.my_uuid:
            return  # after HANGUP_COMPLETE the controlled channel is gone for this socket (no DESTROY)
        if self.inbox.qsize() >= MAX_QUEUE:
            self.missed += 1
            if self.missed > MAX_MISSED:
                logger.warning("sim: killing listener %s: %d events lost", self.address, self.missed)
                gevent.spawn(self.close)
            return
        self.inbox.put(("event", event))

    def offer_log(self, line) -> None:
        """A log line for this `log` listener (the switch checked the level)."""
        if not self.closed:
            self.inbox.put(("log", line))

    def channel_gone(self, ch) -> None:
        """The controlled channel finished (after CHANNEL_HANGUP_COMPLETE was queued)."""
        self.session_gone = True
        self.inbox.put(("gone", ch))

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
            deadline = gevent.get_hub().loop.now() + wait
            while not self.closed:  # keep delivering events and answering commands while lingering
                remaining = deadline - gevent.get_hub().loop.now()
                if remaining <= 0:
                    break
                try:
                    kind, item = self.inbox.get(timeout=remaining)
                except Empty:
                    break
                if kind == "event":
                    self._send_events(item)
                elif kind == "log":
                    self._send(item.frame())
                elif kind == "cmd":
                    if not self._command(item):
                        return False
                elif kind in ("eof", "close", "garbage"):
                    return False
        self._send_disconnect()
        return False

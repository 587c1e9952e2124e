"""One inbound ESL session over greenswitch's ``InboundESL``, with greenswitch's gaps closed.

Used by :class:`esl_dialer.switch.Switch` (one instance per TCP session; a
reconnect makes a new one). What it changes in greenswitch 0.0.19, each shown
by a test in tests/test_switch_greenswitch_gaps.py:

* ``send`` waits forever              -> bounded wait; a missing reply drops the session
                                         (ESL replies are strictly ordered: the FIFO is out of step).
* ``sock.send`` may write a part      -> ``sendall`` under a lock (wire order == reply FIFO order),
                                         bounded by the socket timeout.
* ``_read_socket`` spins on a closed socket; a garbage line or a frame without
  ``Content-Type`` kills the reader   -> a bounded splitter (events.StreamParser) that stops on EOF
                                         and drops frames it does not understand.
* ``unquote`` over the whole block    -> lazy events.Event, each value decoded after the split.
* pending commands hang after a drop  -> failed with NotConnected at once.

The reader never runs user code: it hands events to its owner's ``_route``
(cheap bookkeeping) and lets the owner's dispatcher call handlers.
"""
from __future__ import annotations

import logging
import socket as stdsocket
import time
from typing import Any, Callable, Protocol

import gevent
import gevent.event
import gevent.lock
import gevent.socket
from greenswitch.esl import InboundESL, NotConnectedError

from esl_dialer.esl.events import (
    CT_API_RESPONSE, CT_AUTH_REQUEST, CT_COMMAND_REPLY, CT_DISCONNECT, CT_EVENT_JSON, CT_EVENT_PLAIN,
    CT_LOG, CT_RUDE_REJECTION, Event, Frame, ProtocolError, StreamParser,
)

logger = logging.getLogger(__name__)

RECV_BYTES = 256 * 1024


class ConnectionOwner(Protocol):
    """What a connection needs from the object that owns it (Switch)."""

    _closing: bool

    def _spawn(self, fn: Callable[..., Any], *args: Any) -> gevent.Greenlet: ...
    def _route(self, ev: Event) -> None: ...
    def _after_batch(self) -> bool: ...
    def _idle(self, conn: "InboundConnection", silent_s: float) -> None: ...


class SwitchError(Exception):
    """Base of the adapter's errors."""


class NotConnected(SwitchError, NotConnectedError):
    """No live ESL connection (or it was lost while waiting)."""


class AuthFailed(SwitchError):
    """The switch refused the password (``-ERR invalid``) or the client (rude-rejection)."""


class SwitchTimeout(SwitchError, TimeoutError):
    """A reply, job result or channel event did not arrive in time."""


class CommandFailed(SwitchError):
    """The switch answered ``-ERR ...`` to an api command."""

    def __init__(self, command: str, reply: str) -> None:
        super().__init__(f"{command.split(' ', 1)[0]}: {reply}")
        self.command = command
        self.reply = reply


class ChannelHangup(SwitchError):
    """The channel hung up while an event other than a hang-up was awaited."""

    def __init__(self, uuid: str, event: Event) -> None:
        self.uuid = uuid
        self.event = event
        self.cause = event.get("Hangup-Cause") or event.variable("hangup_cause") or "UNKNOWN"
        super().__init__(f"channel {uuid} hung up ({self.cause})")


class InboundConnection(InboundESL):
    """One ESL session over greenswitch's InboundESL, with its gaps closed.

    Reused from greenswitch: the reply FIFO (``_commands_sent``), the
    ``_auth_request_event`` handshake, ``authenticate()`` and the
    ``connected``/``_run`` flags. Replaced: ``connect`` (timeouts), ``send``
    (sendall + timeout), ``receive_events`` (fast, bounded, EOF-safe reader)
    and ``stop``. greenswitch's own dispatcher is not started: ``Switch``
    owns the one dispatcher so handlers survive reconnects.
    """

    def __init__(self, owner: "ConnectionOwner", host: str, port: int, password: str, timeout: float) -> None:
        super().__init__(host, port, password, timeout=timeout)
        self._owner = owner
        self._send_lock = gevent.lock.Semaphore()
        self.rejected = False
        self.reader: gevent.Greenlet | None = None
        self.sock: gevent.socket.socket | None = None

    # -- lifecycle ----------------------------------------------------------
    def connect(self) -> None:
        try:
            self.sock = gevent.socket.create_connection((self.host, self.port), timeout=self.timeout)
        except OSError as exc:
            raise NotConnected(f"cannot connect to {self.host}:{self.port}: {exc}") from None
        self.sock.setsockopt(stdsocket.IPPROTO_TCP, stdsocket.TCP_NODELAY, 1)
        self.sock.setsockopt(stdsocket.SOL_SOCKET, stdsocket.SO_KEEPALIVE, 1)  # as mod_event_socket does
        # The socket timeout bounds sendall; the reader treats a recv timeout as "idle".
        self.sock.settimeout(self.timeout)
        self.connected = True
        self.reader = self._owner._spawn(self.receive_events)
        if not self._auth_request_event.wait(timeout=self.timeout):
            self.stop()
            raise SwitchTimeout(f"no auth/request from {self.host}:{self.port} within {self.timeout} s")
        if self.rejected or not self.connected:
            self.stop()
            raise AuthFailed(f"{self.host}:{self.port} rejected the connection")
        try:
            self.authenticate()  # greenswitch: send('auth <pw>'), expects Reply-Text '+OK accepted'
        except ValueError:
            self.stop()
            raise AuthFailed(f"{self.host}:{self.port} refused the ESL password") from None
        except NotConnected:
            self.stop()
            raise AuthFailed(f"{self.host}:{self.port} closed the connection during auth") from None

    def stop(self) -> None:
        self._run = False
        self.connected = False
        sock = self.sock
        if sock is not None:
            try:
                sock.close()
            except OSError:
                pass
        self._fail_pending(NotConnected("connection closed"))

    def _fail_pending(self, exc: Exception) -> None:
        pending, self._commands_sent = self._commands_sent, []
        for result in pending:
            if not result.ready():
                result.set_exception(exc)

    # -- commands -------------------------------------------------------------
    def send(self, data: str, timeout: float | None = None) -> Frame:  # type: ignore[override]
        """Send one command and wait (bounded) for its reply frame."""
        if not self.connected or self.sock is None:
            raise NotConnected("not connected")
        timeout = self.timeout if timeout is None else timeout
        result = gevent.event.AsyncResult()
        payload = (data + "\n\n").encode("utf-8")
        with self._send_lock:
            self._commands_sent.append(result)
            try:
                self.sock.sendall(payload)
            except OSError as exc:  # includes socket.timeout: the peer stopped reading
                self.stop()
                raise NotConnected(f"send failed: {exc}") from None
        try:
            return result.get(timeout=timeout)
        except gevent.Timeout:
            logger.warning("no reply to %r within %s s; dropping the connection", data.split(" ", 1)[0], timeout)
            self.stop()
            raise SwitchTimeout(f"no reply to {data.split(' ', 1)[0]!r} within {timeout} s") from None

    # -- the reader -----------------------------------------------------------
    def receive_events(self) -> None:
        """Socket -> frames. Stops on EOF or error (never spins); never runs user code."""
        sock = self.sock
        parser = StreamParser()
        owner = self._owner
        last_data = time.monotonic()
        try:
            while self._run:
                try:
                    data = sock.recv(RECV_BYTES)
                except stdsocket.timeout:
                    # Quiet connection: FreeSWITCH sends HEARTBEAT every 20 s, so long
                    # silence may be a half-open TCP session; probe it (off the reader).
                    owner._idle(self, time.monotonic() - last_data)
                    continue
                except OSError as exc:
                    if self._run:
                        logger.warning("ESL read from %s:%s failed: %s", self.host, self.port, exc)
                    break
                last_data = time.monotonic()
                if not data:
                    if self._run and not owner._closing:
                        logger.warning("ESL connection to %s:%s closed by the server", self.host, self.port)
                    break
                try:
                    frames = parser.feed(data)
                except ProtocolError as exc:
                    logger.error("ESL protocol error from %s:%s: %s; dropping the connection",
                                 self.host, self.port, exc)
                    break
                if frames:
                    self._handle_frames(frames)
                    if owner._after_batch():
                        # Let the dispatcher run between socket reads: recv on a
                        # busy socket returns without ever yielding to the hub.
                        gevent.sleep(0)
        finally:
            self.stop()

    def _handle_frames(self, frames: list[tuple[dict[str, str], bytes]]) -> None:
        owner = self._owner
        for headers, body in frames:
            ctype = headers.get("Content-Type")
            if ctype == CT_EVENT_PLAIN:
                owner._route(Event.from_plain(body))
            elif ctype == CT_COMMAND_REPLY or ctype == CT_API_RESPONSE:
                if self._commands_sent:
                    self._commands_sent.pop(0).set(Frame(headers, body))
                else:
                    logger.warning("ESL reply with no command waiting: %r", headers.get("Reply-Text", body[:60]))
            elif ctype == CT_EVENT_JSON:
                try:
                    owner._route(Event.from_json(body))
                except ProtocolError as exc:
                    logger.warning("dropping undecodable event-json frame: %s", exc)
            elif ctype == CT_AUTH_REQUEST:
                self._auth_request_event.set()
            elif ctype == CT_DISCONNECT:
                logger.info("ESL disconnect notice from %s:%s (%s)", self.host, self.port,
                            headers.get("Content-Disposition", "disconnect"))
            elif ctype == CT_RUDE_REJECTION:
                self.rejected = True
                self.connected = False
                self._auth_request_event.set()
            elif ctype == CT_LOG:
                pass
            else:
                logger.warning("ignoring ESL frame with Content-Type %r (%d body bytes)", ctype, len(body))

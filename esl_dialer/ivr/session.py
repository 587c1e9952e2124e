"""greenswitch's ``OutboundSession`` with the gaps that matter for an IVR closed.

- ``send`` has a timeout and uses ``sendall`` (greenswitch: no timeout, ``send``).
- The final ``text/disconnect-notice`` carries a body (``Content-Length: 67``
  in b_outbound.jsonl); greenswitch leaves it in the stream. It is consumed here.
- ``execute()`` waits for CHANNEL_EXECUTE_COMPLETE matched on the
  *Application-UUID* we send as ``Event-UUID`` (mod_event_socket echoes it),
  not only on the application name, so a broken MOH ``playback`` can never be
  taken for the completion of the announcement ``playback`` that follows.
- Hang-up is a :class:`gevent.event.Event` (``gone``) every wait can watch.
- :meth:`wait_started` tells whether the switch has begun an execution (its
  CHANNEL_EXECUTE arrived): FreeSWITCH starts an execute a media step after
  ``sendmsg``, and ``uuid_break <uuid> all`` discards one not yet started
  without any event, so breaking must wait for the start first.
- ``close()`` never blocks: ``exit`` with a short timeout, then the reader and
  dispatcher greenlets are killed and the socket closed (greenswitch's
  dispatcher loops forever once the final notice set ``connected`` False).
"""
from __future__ import annotations

import logging
import uuid as uuidlib

import gevent
import gevent.event
from greenswitch.esl import NotConnectedError, OutboundSession, OutboundSessionHasGoneAway

from ..esl import commands as cmds

logger = logging.getLogger(__name__)

COMMAND_TIMEOUT_S = 5.0


class CallerGone(Exception):
    """The caller hung up (or the switch dropped the socket)."""


class CommandTimeout(Exception):
    """The switch did not answer a command in time."""


class IvrSession(OutboundSession):
    def __init__(self, client_address, sock, command_timeout_s: float = COMMAND_TIMEOUT_S) -> None:
        self.gone = gevent.event.Event()
        self.hangup_cause: str | None = None
        self.command_timeout_s = command_timeout_s
        self._executions: dict[str, gevent.event.AsyncResult] = {}
        self._by_app: dict[str, tuple[str, gevent.event.AsyncResult]] = {}
        self._started: dict[str, gevent.event.Event] = {}  # app uuid -> its CHANNEL_EXECUTE arrived
        super().__init__(client_address, sock)
        self.register_handle("CHANNEL_EXECUTE", self._on_execute)
        self.register_handle("CHANNEL_EXECUTE_COMPLETE", self._on_execute_complete)
        self.register_handle("CHANNEL_HANGUP", self._on_channel_hangup)

    # -- transport fixes

    def send(self, data: str, timeout: float | None = None):
        if not self.connected:
            raise NotConnectedError()
        result = gevent.event.AsyncResult()
        self._commands_sent.append(result)
        try:
            self.sock.sendall((data + "\n\n").encode("utf-8"))
        except OSError as err:
            self._commands_sent.remove(result)
            raise OutboundSessionHasGoneAway() from err
        try:
            return result.get(timeout=timeout or self.command_timeout_s)
        except gevent.Timeout:
            raise CommandTimeout(f"no reply to {data.splitlines()[0]!r}") from None

    def handle_event(self, event) -> None:
        if event.headers.get("Content-Type") == "text/disconnect-notice":
            length = int(event.headers.get("Content-Length", 0) or 0)
            if length:
                self._read_socket(self.sock_file, length)
            self._mark_gone(None)
        super().handle_event(event)

    def receive_events(self) -> None:
        """greenswitch's reader, plus: a socket that closes without a disconnect
        notice (switch restarted, network cut) ends the call like a hang-up."""
        try:
            super().receive_events()
        finally:
            self.connected = False
            self._mark_gone(None)
            for pending in list(self._commands_sent):
                if not pending.ready():
                    pending.set_exception(OutboundSessionHasGoneAway())

    # -- hang-up

    def _mark_gone(self, cause: str | None) -> None:
        if cause and not self.hangup_cause:
            self.hangup_cause = cause
        if not self.gone.is_set():
            self.gone.set()
            for result in list(self._executions.values()):
                if not result.ready():
                    result.set_exception(CallerGone())

    def _on_channel_hangup(self, event) -> None:
        self._mark_gone(event.headers.get("Hangup-Cause"))

    def on_disconnect(self, event) -> None:
        self._mark_gone(None)
        super().on_disconnect(event)

    def raise_if_gone(self) -> None:
        if self.gone.is_set():
            raise CallerGone()

    # -- applications

    def _on_execute(self, event) -> None:
        started = self._started.get(event.headers.get("Application-UUID") or "")
        if started is not None:
            started.set()

    def wait_started(self, result: gevent.event.AsyncResult, timeout: float) -> bool:
        """True once the execution behind ``result`` has started (or already ended) on the switch."""
        if result.ready():
            return True
        key = next((k for k, v in self._executions.items() if v is result), None)
        started = self._started.get(key) if key is not None else None
        return started is not None and started.wait(timeout)

    def _on_execute_complete(self, event) -> None:
        app_uuid = event.headers.get("Application-UUID")
        if app_uuid not in self._executions:
            # A switch that does not echo Event-UUID: the oldest pending run of that app.
            app = event.headers.get("Application")
            app_uuid = next((key for key, (name, _) in self._by_app.items()
                             if name == app and key in self._executions), None)
        if app_uuid is not None:
            result = self._executions.pop(app_uuid)
            self._by_app.pop(app_uuid, None)
            self._started.pop(app_uuid, None)
            # FreeSWITCH sends CHANNEL_HANGUP before the interrupted app's
            # EXECUTE_COMPLETE: a result already failed with CallerGone stays failed.
            if not result.ready():
                result.set(event)

    def start(self, app: str, arg: str | None = None) -> gevent.event.AsyncResult:
        """``sendmsg`` execute without waiting; the result is set by its CHANNEL_EXECUTE_COMPLETE.

        The command carries ``Event-UUID``, which FreeSWITCH reports back as the
        completion's ``Application-UUID`` (how node's esl and others match).
        """
        self.raise_if_gone()
        app_uuid = str(uuidlib.uuid4())
        command = cmds.sendmsg_execute(app, arg, event_uuid=app_uuid)  # CommandError (a ValueError) on CR/LF
        result = gevent.event.AsyncResult()
        self._executions[app_uuid] = result
        self._by_app[app_uuid] = (app, result)
        self._started[app_uuid] = gevent.event.Event()
        try:
            reply = self.send(command)
        except (OutboundSessionHasGoneAway, NotConnectedError):
            self._forget(app_uuid)
            raise CallerGone() from None
        if reply.headers.get("Reply-Text", "").startswith("-ERR"):
            self._forget(app_uuid)
            if self.gone.is_set() or "invalid session id" in reply.headers.get("Reply-Text", ""):
                # the channel is gone; its CHANNEL_HANGUP may still be on its way
                self._mark_gone(None)
                raise CallerGone()
            raise CommandTimeout(f"{app} refused: {reply.headers.get('Reply-Text')}")
        return result

    def _forget(self, app_uuid: str) -> None:
        self._executions.pop(app_uuid, None)
        self._by_app.pop(app_uuid, None)
        self._started.pop(app_uuid, None)

    def execute(self, app: str, arg: str | None = None, *, timeout: float | None = None) -> dict:
        """Run an application and return its CHANNEL_EXECUTE_COMPLETE headers.

        Raises :class:`CallerGone` when the caller hangs up first and
        :class:`CommandTimeout` when neither happens within ``timeout``.
        """
        result = self.start(app, arg)
        return self.wait(result, timeout, app)

    def stop(self, result: gevent.event.AsyncResult, uuid: str, timeout: float = 3.0) -> bool:
        """Stop a running execution (music) with ``uuid_break <uuid> all`` and wait for its completion.

        A music ``playback`` sent a moment ago may not have started yet: the
        switch starts it one media step later, and ``uuid_break all`` would
        discard it silently (no event ever: a wait for its completion would run
        into the timeout).  So wait for its CHANNEL_EXECUTE first.  Returns
        False when it did not stop within ``timeout``.
        """
        if result.ready():
            return True
        if not self.wait_started(result, timeout):
            logger.warning("%s: the execution to stop never started; breaking anyway", uuid)
        self.api(cmds.uuid_break(uuid, all_=True))
        try:
            self.wait(result, timeout, "music on hold")
        except CommandTimeout:
            return False
        return True

    def wait(self, result: gevent.event.AsyncResult, timeout: float | None, what: str = "application") -> dict:
        try:
            return result.get(timeout=timeout).headers
        except gevent.Timeout:
            for key, value in list(self._executions.items()):
                if value is result:
                    self._forget(key)
            raise CommandTimeout(f"{what} did not complete within {timeout} s") from None

    def api(self, command: str) -> str:
        """An ``api`` command on this socket (allowed in outbound mode); returns the body."""
        try:
            reply = self.send(cmds.api(command))
        except (OutboundSessionHasGoneAway, NotConnectedError):
            raise CallerGone() from None
        return getattr(reply, "data", "") or ""

    def close(self, timeout: float = 2.0) -> None:
        """End the session for good; never blocks longer than ``timeout``."""
        if self.connected:
            try:
                self.send(cmds.EXIT, timeout=timeout)
            except (NotConnectedError, OutboundSessionHasGoneAway, CommandTimeout, OSError):
                pass
        self._run = False
        self.connected = False
        greenlets = [g for g in (self._receive_events_greenlet, self._process_events_greenlet) if g]
        gevent.killall(greenlets, timeout=timeout)
        for closer in (self.sock_file.close, self.sock.close):
            try:
                closer()
            except OSError:
                pass

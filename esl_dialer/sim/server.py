"""The event-socket front end: one :class:`Listener` per TCP connection.

Mirrors mod_event_socket.c (FreeSWITCH 1.10): ``auth/request`` greeting;
``parse_command`` replies (``+OK accepted``, ``-ERR invalid`` then disconnect,
``-ERR command not found``...); ``api`` answers with ``api/response`` while
events wait, because the listener thread is busy in the api call; ``bgapi``
replies at once and fires BACKGROUND_JOB; events go out only between
commands.  A listener that falls more than ``MAX_MISSED`` events behind is
dropped, like FreeSWITCH does.  Garbage from a client closes that
connection only.
"""
from __future__ import annotations

import logging
import re
from typing import TYPE_CHECKING, Callable

import gevent
from gevent import socket as gsocket
from gevent.queue import Empty, Queue
from gevent.server import StreamServer

from esl_dialer.esl import (
    DISCONNECT_GOODBYE,
    NEED_DATA,
    Frame,
    FrameParser,
    ProtocolError,
    encode_api_response,
    encode_auth_request,
    encode_command_reply,
    encode_connect_reply,
    encode_disconnect_notice,
    encode_rude_rejection,
)

from .channel import channel_data_headers, new_uuid
from .events import SimEvent
from .session import Message

if TYPE_CHECKING:  # pragma: no cover
    from .session import Session
    from .switch import SimSwitch

logger = logging.getLogger(__name__)

MAX_QUEUE = 100_000  # MAX_QUEUE_LEN in mod_event_socket.c
MAX_MISSED = 500  # MAX_MISSED: a listener this far behind is killed
SEND_TIMEOUT_S = 30.0
READ_CHUNK = 65536
MAX_COMMAND_BODY = 1024 * 1024
BATCH_BYTES = 256 * 1024  # coalesce queued events into writes up to this size
SYNC_EXECUTE_TIMEOUT_S = 3600.0  # bound on a synchronous sendmsg (a very long playback)

# The events `myevents` turns on (mod_event_socket.c parse_command "myevents").
MYEVENTS = frozenset({
    "CHANNEL_ANSWER", "CHANNEL_APPLICATION", "CHANNEL_BRIDGE", "CHANNEL_CREATE", "CHANNEL_DATA",
    "CHANNEL_DESTROY", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE", "CHANNEL_ORIGINATE", "CHANNEL_UUID", "CHANNEL_OUTGOING", "CHANNEL_PARK",
    "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_STATE", "CHANNEL_UNBRIDGE", "CHANNEL_UNPARK",
    "DETECTED_SPEECH", "DTMF", "NOTALK", "TALK",
})

# switch_event_types_t names accepted by `event` (a subset is enough to validate).
EVENT_NAMES = frozenset(MYEVENTS | {
    "CUSTOM", "CLONE", "CHANNEL_CALLSTATE", "CHANNEL_HOLD", "CHANNEL_UNHOLD", "PLAYBACK_START", "PLAYBACK_STOP",
    "RECORD_START", "RECORD_STOP", "BACKGROUND_JOB", "HEARTBEAT", "API", "LOG", "MESSAGE", "PRESENCE_IN",
    "PRESENCE_OUT", "RE_SCHEDULE", "SHUTDOWN", "STARTUP", "CODEC", "DTMF", "MODULE_LOAD", "MODULE_UNLOAD",
    "RELOADXML", "NOTIFY", "SEND_MESSAGE", "RECV_MESSAGE", "REQUEST_PARAMS", "CHANNEL_PROGRESS_MEDIA",
    "SESSION_HEARTBEAT", "CALL_UPDATE", "CALL_DETAIL", "CONFERENCE_DATA", "ALL",
})


class Listener:
    """One event-socket connection (inbound client, or our outbound-socket dial-out)."""

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
        self.handlers: dict[str, Callable[[Frame, str], bytes | None]] = {
            "exit": self.cmd_exit, "...": self.cmd_exit, "auth": self.cmd_auth, "api": self.cmd_api,
            "bgapi": self.cmd_bgapi, "event": self.cmd_event, "nixevent": self.cmd_nixevent,
            "noevents": self.cmd_noevents, "filter": self.cmd_filter, "myevents": self.cmd_myevents,
            "sendmsg": self.cmd_sendmsg, "linger": self.cmd_linger, "nolinger": self.cmd_nolinger,
            "divert_events": self.cmd_divert_events, "connect": self.cmd_connect, "getvar": self.cmd_getvar,
            "resume": self.cmd_resume, "log": self.cmd_log, "nolog": self.cmd_nolog,
            "sendevent": self.cmd_sendevent,
        }

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
        return event.json() if self.format == "json" else event.plain()

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
        if self.filters:
            for fname, fvalue in self.filters:
                value = event.get(fname)
                if value is None:
                    continue
                if fvalue.startswith("/") and fvalue.endswith("/") and len(fvalue) > 1:
                    try:
                        if re.search(fvalue[1:-1], value):
                            return True
                    except re.error:
                        continue
                elif value == fvalue:
                    return True
            return False
        return True

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
                elif kind == "cmd":
                    if not self._command(item):
                        return False
                elif kind in ("eof", "close", "garbage"):
                    return False
        self._send_disconnect()
        return False

    # -- commands --------------------------------------------------------------------
    def _command(self, frame: Frame) -> bool:
        """Handle one command; False when the connection must close."""
        line = (frame.command or "").strip()
        word = line.split(" ", 1)[0].lower()
        if word == "exit" or line.startswith("..."):
            self._send(encode_command_reply("+OK bye"))
            self._send_disconnect()
            return False
        if not self.authed:
            if word == "auth":
                return self.cmd_auth(frame, line) is not False
            self._send(encode_command_reply("-ERR command not found"))
            return True
        if word in ("api", "bgapi") and " " not in line:  # strncasecmp(cmd, "api ", 4) in FreeSWITCH
            word = ""
        handler = self.handlers.get(word)
        if handler is None or (self.outbound and not self.full and word not in (
                "connect", "myevents", "sendmsg", "linger", "nolinger", "divert_events", "getvar", "resume",
                "filter", "event", "nixevent", "noevents", "log", "nolog")):
            self._send(encode_command_reply("-ERR command not found"))
            return True
        reply = handler(frame, line)
        if reply is not None:
            self._send(reply)
        return not self.closed

    def cmd_exit(self, frame: Frame, line: str):
        return encode_command_reply("+OK bye")

    def cmd_auth(self, frame: Frame, line: str):
        password = line[5:] if len(line) > 5 else ""
        if password == self.switch.password:
            self.authed = True
            self._send(encode_command_reply("+OK accepted"))
            return None
        logger.warning("sim: bad password from %s", self.address)
        self._send(encode_command_reply("-ERR invalid"))
        self._send_disconnect()
        return False

    def cmd_api(self, frame: Frame, line: str):
        rest = line[4:].strip()
        cmd, _, arg = rest.partition(" ")
        if not cmd:
            return encode_api_response("-ERR no reply\n")
        result = self.switch.api.run(cmd, arg or None)
        return encode_api_response(result or "-ERR no reply\n")

    def cmd_bgapi(self, frame: Frame, line: str):
        rest = line[6:].strip()
        cmd, _, arg = rest.partition(" ")
        job = frame.headers.get("Job-UUID") or frame.headers.get("job-uuid") or new_uuid()

        def run_job() -> None:
            result = self.switch.api.run(cmd, arg or None) if cmd else "-ERR no reply\n"
            headers = [("Job-UUID", job), ("Job-Command", cmd)]
            if arg:
                headers.append(("Job-Command-Arg", arg))
            self.switch.fire("BACKGROUND_JOB", headers, body=result or "Command returned no output!")

        self.switch.spawn(run_job)
        return encode_command_reply(f"+OK Job-UUID: {job}", {"Job-UUID": job})

    def cmd_event(self, frame: Frame, line: str):
        words = line.split()[1:]
        keys = 0
        custom = False
        for i, word in enumerate(words):
            if i == 0 and word.lower() in ("plain", "json", "xml"):
                self.format = word.lower()
                continue
            if custom:
                self.custom.add(word)
                continue
            name = word.upper()
            if name not in EVENT_NAMES:
                continue
            keys += 1
            if name == "ALL":
                self.all_events = True
            elif name == "CUSTOM":
                custom = True
            self.event_names.add(name)
        if not keys:
            return encode_command_reply("-ERR no keywords supplied")
        self.events_on = True
        return encode_command_reply(f"+OK event listener enabled {self.format}")

    def cmd_nixevent(self, frame: Frame, line: str):
        words = line.split()[1:]
        keys = 0
        custom = False
        for word in words:
            if custom:
                self.custom.discard(word)
                continue
            name = word.upper()
            if name not in EVENT_NAMES:
                continue
            keys += 1
            if name == "CUSTOM":
                custom = True
            elif name == "ALL":
                self.all_events = False
                self.event_names.clear()
            else:
                if self.all_events:
                    self.all_events = False
                    self.event_names = set(EVENT_NAMES) - {"ALL"}
                self.event_names.discard(name)
        if not keys:
            return encode_command_reply("-ERR no keywords supplied")
        self.events_on = True
        return encode_command_reply("+OK events nixed")

    def cmd_noevents(self, frame: Frame, line: str):
        # flush_listener: events already queued are dropped too
        pending = []
        while not self.inbox.empty():
            kind, item = self.inbox.get_nowait()
            if kind != "event":
                pending.append((kind, item))
        for entry in pending:
            self.inbox.put(entry)
        if not self.events_on:
            return encode_command_reply("-ERR not listening for events")
        self.events_on = False
        self.all_events = False
        self.event_names.clear()
        self.custom.clear()
        return encode_command_reply("+OK no longer listening for events")

    def cmd_filter(self, frame: Frame, line: str):
        rest = line[7:].strip() if len(line) > 7 else ""
        name, _, value = rest.partition(" ")
        if name.lower() == "delete" and value:
            name, _, value = value.partition(" ")
            if name.lower() == "all":
                self.filters.clear()
            else:
                self.filters = [(n, v) for n, v in self.filters
                                if not (n.lower() == name.lower() and (not value or v == value))]
            return encode_command_reply(f"+OK filter deleted. [{name}][{value}]")
        if value:
            if name.lower() == "add":
                name, _, value = value.partition(" ")
            self.filters.append((name, value))
            return encode_command_reply(f"+OK filter added. [{name}]=[{value}]")
        return encode_command_reply("-ERR invalid syntax")

    def cmd_myevents(self, frame: Frame, line: str):
        if self.myevents:
            return encode_command_reply("-ERR aready enabled.")
        words = line.split()[1:]
        if not self.outbound:
            if not words:
                return encode_command_reply("-ERR command not found")
            uuid = words[0]
            fmt = words[1].lower() if len(words) > 1 else None
            if self.switch.find(uuid) is None:
                if fmt:
                    return encode_command_reply("-ERR invalid uuid")
                fmt = uuid.lower()
            self.my_uuid = uuid
            if fmt in ("plain", "json", "xml"):
                self.format = fmt
        elif words and words[0].lower() in ("plain", "json", "xml"):
            self.format = words[0].lower()
        self.myevents = True
        self.events_on = True
        self.event_names |= MYEVENTS
        return encode_command_reply("+OK Events Enabled")

    def cmd_sendmsg(self, frame: Frame, line: str):
        uuid = line[7:].strip() or frame.headers.get("session-id", "")
        if not uuid and self.session is not None:
            uuid = self.session.ch.uuid
        h = {k.lower(): v for k, v in frame.headers.items()}
        command = h.get("call-command", "").lower()
        if command == "execute":
            arg = h.get("execute-app-arg")
            if arg is None and frame.body:
                arg = frame.text
            loops = h.get("loops", "1")
            msg = Message("execute", app=h.get("execute-app-name", ""), arg=arg or "",
                          app_uuid=h.get("event-uuid"), loops=int(loops) if loops.isdigit() else 1, headers=h)
        elif command == "hangup":
            msg = Message("hangup", cause=h.get("hangup-cause", "NORMAL_CLEARING"))
        else:
            msg = None
        if self.switch.find(uuid) is None or not self.switch.find(uuid).alive:
            return encode_command_reply(f"-ERR invalid session id [{uuid}]")
        if msg is not None:
            self.switch.queue_message(uuid, msg)
            # Without async (static outbound socket, or `async: false`), FreeSWITCH runs the
            # application in the listener thread and replies when it is done.
            sync = self.outbound and not self.async_mode and h.get("async", "").lower() != "true"
            if sync:
                msg.done.wait(timeout=SYNC_EXECUTE_TIMEOUT_S)
        return encode_command_reply("+OK")

    def cmd_linger(self, frame: Frame, line: str):
        if self.session is None:
            return encode_command_reply("-ERR not controlling a session")
        arg = line[7:].strip() if len(line) > 7 else ""
        if arg:
            try:
                self.linger_s = float(int(arg))
            except ValueError:
                self.linger_s = 0.0
            return encode_command_reply(f"+OK will linger {int(self.linger_s)} seconds")
        self.linger_s = -1.0
        return encode_command_reply("+OK will linger")

    def cmd_nolinger(self, frame: Frame, line: str):
        if self.session is None:
            return encode_command_reply("-ERR not controlling a session")
        self.linger_s = None
        return encode_command_reply("+OK will not linger")

    def cmd_divert_events(self, frame: Frame, line: str):
        if self.session is None:
            return encode_command_reply("-ERR not controlling a session.")
        value = line[13:].strip()
        if not value:
            return encode_command_reply("-ERR missing value.")
        self.divert = value.lower() == "on"
        return encode_command_reply("+OK events diverted" if self.divert else "+OK events not diverted")

    def cmd_connect(self, frame: Frame, line: str):
        if self.session is None:
            return encode_command_reply("-ERR command not found")
        self.connected = True
        ch = self.session.ch
        data = [(k, v) for k, v in channel_data_headers(ch, self.switch.find(ch.other_leg))]
        data = [("Event-Name", "CHANNEL_DATA")] + self.switch.headers.base("CHANNEL_DATA")[1:] + data
        return encode_connect_reply(data, async_mode=self.async_mode, full=self.full)

    def cmd_getvar(self, frame: Frame, line: str):
        if self.session is None:
            return encode_command_reply("-ERR command not found")
        name = line[7:].strip()
        return encode_command_reply(self.session.ch.variables.get(name, ""))

    def cmd_resume(self, frame: Frame, line: str):
        if self.session is None:
            return encode_command_reply("-ERR command not found")
        self.session.ch.variables["socket_resume"] = "true"
        return encode_command_reply("+OK")

    def cmd_log(self, frame: Frame, line: str):
        level = line[4:].strip() or "debug"
        return encode_command_reply(f"+OK log level {level} [7]")

    def cmd_nolog(self, frame: Frame, line: str):
        return encode_command_reply("-ERR not loging")

    def cmd_sendevent(self, frame: Frame, line: str):
        name = line[9:].strip().upper() or "CUSTOM"
        event_uuid = new_uuid()
        headers = [(k, v) for k, v in frame.headers.items() if k.lower() != "content-length"]
        headers.append(("Event-UUID", event_uuid))
        subclass = frame.headers.get("Event-Subclass") if name == "CUSTOM" else None
        self.switch.fire(name, headers, body=frame.text if frame.body else None, subclass=subclass)
        return encode_command_reply(f"+OK {event_uuid}")


class EslServer:
    """gevent StreamServer accepting inbound event-socket clients."""

    def __init__(self, switch: "SimSwitch") -> None:
        self.switch = switch
        self.server = StreamServer((switch.host, switch._port), self._handle)
        self.listeners: set[Listener] = set()

    @property
    def server_port(self) -> int:
        return self.server.server_port

    def start(self) -> None:
        self.server.start()

    def stop(self, timeout: float = 5.0) -> None:
        self.server.stop(timeout=timeout)
        for listener in list(self.listeners):
            listener.close()

    def _handle(self, sock, address) -> None:
        listener = Listener(self.switch, sock, address)
        self.listeners.add(listener)
        try:
            listener.run()
        except Exception:  # one broken connection must never take the server down
            logger.exception("sim: connection %s failed", address)
        finally:
            self.listeners.discard(listener)
            listener.close()

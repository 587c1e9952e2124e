"""mod_event_socket's commands (layer ``cmd_``): what ``parse_command`` does with each line.

A mixin of the wire's :class:`~.wire_listener.Listener`: the handlers change the
connection's subscription state and return the reply frame; the wire sends it.
Reply texts are those of ``mod_event_socket.c`` (FreeSWITCH 1.10).
"""
from __future__ import annotations

import logging
from typing import Callable

from esl_dialer.esl import (
    Frame,
    encode_api_response,
    encode_command_reply,
    encode_connect_reply,
)

from .chan_channel import channel_data_headers, new_uuid
from .chan_session import Message

logger = logging.getLogger(__name__)

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


class EventSocketCommands:
    """The commands of one connection; ``self`` is the wire's Listener."""

    def command_table(self) -> dict[str, Callable[[Frame, str], bytes | None]]:
        return {
            "exit": self.cmd_exit, "...": self.cmd_exit, "auth": self.cmd_auth, "api": self.cmd_api,
            "bgapi": self.cmd_bgapi, "event": self.cmd_event, "nixevent": self.cmd_nixevent,
            "noevents": self.cmd_noevents, "filter": self.cmd_filter, "myevents": self.cmd_myevents,
            "sendmsg": self.cmd_sendmsg, "linger": self.cmd_linger, "nolinger": self.cmd_nolinger,
            "divert_events": self.cmd_divert_events, "connect": self.cmd_connect, "getvar": self.cmd_getvar,
            "resume": self.cmd_resume, "log": self.cmd_log, "nolog": self.cmd_nolog,
            "sendevent": self.cmd_sendevent,
        }

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
            # one media step before CHANNEL_EXECUTE (f_outbound_break: 20-21 ms); with event-lock it
            # waits for the running application, without it nests inside a running playback
            msg = Message("execute", app=h.get("execute-app-name", ""), arg=arg or "",
                          app_uuid=h.get("event-uuid"), loops=int(loops) if loops.isdigit() else 1, headers=h,
                          delay_s=self.switch.config.timing.seconds("execute_ms"),
                          lock=h.get("event-lock", "").lower() == "true")
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

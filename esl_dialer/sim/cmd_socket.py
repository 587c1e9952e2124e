"""mod_event_socket's commands (layer ``cmd_``): what ``parse_command`` does with each line.

A mixin of the wire's :class:`~.wire_listener.Listener`: the handlers change the
connection's subscription state and return the reply frame; the wire sends it.
Recognition, order of the checks and reply texts are those of
``parse_command()`` in mod_event_socket.c (FreeSWITCH 1.10.12): commands are
matched by ``strncasecmp`` prefixes (``events plain ALL`` is ``event``,
``logfoo`` is ``log``), and anything that matches nothing, or a handler that
leaves the reply empty, gets ``-ERR command not found``.
"""
from __future__ import annotations

import logging
import re
from typing import Callable, Sequence

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
NOT_FOUND = "-ERR command not found"
_NOT_PRIVATE = frozenset({"content-length", "content-type"})  # frame headers, not the private event's

# The events `myevents` turns on (mod_event_socket.c parse_command "myevents").
MYEVENTS = frozenset({
    "CHANNEL_ANSWER", "CHANNEL_APPLICATION", "CHANNEL_BRIDGE", "CHANNEL_CREATE", "CHANNEL_DATA",
    "CHANNEL_DESTROY", "CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE", "CHANNEL_HANGUP",
    "CHANNEL_HANGUP_COMPLETE", "CHANNEL_ORIGINATE", "CHANNEL_UUID", "CHANNEL_OUTGOING", "CHANNEL_PARK",
    "CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_STATE", "CHANNEL_UNBRIDGE", "CHANNEL_UNPARK",
    "DETECTED_SPEECH", "DTMF", "NOTALK", "TALK",
})

# switch_event.c EVENT_NAMES (FreeSWITCH 1.10.12), the names `event`/`nixevent` accept.
EVENT_NAMES = frozenset((
    "CUSTOM CLONE CHANNEL_CREATE CHANNEL_DESTROY CHANNEL_STATE CHANNEL_CALLSTATE CHANNEL_ANSWER CHANNEL_HANGUP "
    "CHANNEL_HANGUP_COMPLETE CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_HOLD CHANNEL_UNHOLD CHANNEL_BRIDGE "
    "CHANNEL_UNBRIDGE CHANNEL_PROGRESS CHANNEL_PROGRESS_MEDIA CHANNEL_OUTGOING CHANNEL_PARK CHANNEL_UNPARK "
    "CHANNEL_APPLICATION CHANNEL_ORIGINATE CHANNEL_UUID API LOG INBOUND_CHAN OUTBOUND_CHAN STARTUP SHUTDOWN "
    "PUBLISH UNPUBLISH TALK NOTALK SESSION_CRASH MODULE_LOAD MODULE_UNLOAD DTMF MESSAGE PRESENCE_IN NOTIFY_IN "
    "PRESENCE_OUT PRESENCE_PROBE MESSAGE_WAITING MESSAGE_QUERY ROSTER CODEC BACKGROUND_JOB DETECTED_SPEECH "
    "DETECTED_TONE PRIVATE_COMMAND HEARTBEAT TRAP ADD_SCHEDULE DEL_SCHEDULE EXE_SCHEDULE RE_SCHEDULE RELOADXML "
    "NOTIFY PHONE_FEATURE PHONE_FEATURE_SUBSCRIBE SEND_MESSAGE RECV_MESSAGE REQUEST_PARAMS CHANNEL_DATA GENERAL "
    "COMMAND SESSION_HEARTBEAT CLIENT_DISCONNECTED SERVER_DISCONNECTED SEND_INFO RECV_INFO RECV_RTCP_MESSAGE "
    "SEND_RTCP_MESSAGE CALL_SECURE NAT RECORD_START RECORD_STOP PLAYBACK_START PLAYBACK_STOP CALL_UPDATE FAILURE "
    "SOCKET_DATA MEDIA_BUG_START MEDIA_BUG_STOP CONFERENCE_DATA_QUERY CONFERENCE_DATA CALL_SETUP_REQ "
    "CALL_SETUP_RESULT CALL_DETAIL DEVICE_STATE TEXT SHUTDOWN_REQUESTED ALL"
).split())

# switch_log.c LEVELS: `log <name>` takes these (index - 1 is the level).
LOG_LEVELS = ("disable", "console", "alert", "crit", "err", "warning", "notice", "info", "debug")
SWITCH_LOG_INVALID = 64


def name_event(word: str) -> str | None:
    """switch_name_event: case-insensitive, with or without the ``SWITCH_EVENT_`` prefix."""
    name = word.upper()
    if len(name) > 13 and name[13:] in EVENT_NAMES:
        return name[13:]
    return name if name in EVENT_NAMES else None


def log_str2level(text: str) -> int | None:
    """switch_log_str2level: a number (clamped to 0..63) or a level name; None when invalid."""
    if re.fullmatch(r"[+-]?[0-9.]*", text):  # switch_is_number; atoi() reads the leading digits
        digits = re.match(r"[+-]?\d*", text).group()
        value = int(digits) if digits.strip("+-") else 0
        if value == SWITCH_LOG_INVALID:
            return None
        return SWITCH_LOG_INVALID - 1 if value > SWITCH_LOG_INVALID else max(0, value)
    lowered = text.lower()
    return LOG_LEVELS.index(lowered) - 1 if lowered in LOG_LEVELS else None


def _strip_ws(text: str | None) -> str:
    """switch_strip_whitespace (switch_api_execute strips command and argument)."""
    return (text or "").strip(" \t\r\n")


def filters_pass(filters: Sequence[tuple[str, str]], event) -> bool:
    """mod_event_socket.c event_handler: may ``event`` pass the connection's filters?

    Filters are tried in the order added; a filter whose header the event does
    not carry is skipped.  A value may start with ``+``/``-`` (and spaces):
    ``-`` makes it an exclusion.  A value that starts with ``/`` is a regular
    expression (``/re/`` with optional ``i``/``s`` flags, switch_regex_perform);
    otherwise the comparison is case-insensitive equality.  The first matching
    inclusion lets the event through unless a later matching exclusion stops
    it; an event that matches nothing is dropped.
    """
    send = False
    for name, value in filters:
        header = event.get(name)
        if header is None:
            continue
        positive = True
        comp = value
        while comp and comp[0] in "+- ":
            if comp[0] == "+":
                positive = True
            elif comp[0] == "-":
                positive = False
            comp = comp[1:]
        if send and positive:
            continue
        if value.startswith("/"):  # *hp->value == '/': the raw value, before +/- are skipped
            matched = _regex_match(header, comp)
        else:
            matched = header.lower() == comp.lower()
        if matched:
            if not positive:
                return False
            send = True
    return send


def _regex_match(field: str, expression: str) -> bool:
    flags = 0
    if expression.startswith("/"):
        body, sep, opts = expression[1:].rpartition("/")
        if not sep:
            return False  # "missing ending '/' delimeter": no match
        expression = body
        flags = (re.IGNORECASE if "i" in opts else 0) | (re.DOTALL if "s" in opts else 0)
    try:
        return re.search(expression, field, flags) is not None
    except re.error:
        return False  # COMPILE ERROR: no match


class EventSocketCommands:
    """The commands of one connection; ``self`` is the wire's Listener."""

    def command_table(self) -> list[tuple[str, Callable[[Frame, str], bytes | str | None]]]:
        """Prefixes after authentication, in parse_command's order (``connect``/``getvar``/
        ``myevents``/``resume`` and the outbound ``single-channel`` cut are checked in :meth:`_command`)."""
        return [
            ("divert_events", self.cmd_divert_events), ("sendmsg", self.cmd_sendmsg),
            (None, None),  # outbound socket without `full`: nothing below is allowed
            ("sendevent", self.cmd_sendevent), ("api ", self.cmd_api), ("bgapi ", self.cmd_bgapi),
            ("log", self.cmd_log), ("linger", self.cmd_linger), ("nolinger", self.cmd_nolinger),
            ("nolog", self.cmd_nolog), ("event", self.cmd_event), ("nixevent", self.cmd_nixevent),
            ("noevents", self.cmd_noevents),
        ]

    # -- commands --------------------------------------------------------------------
    def _command(self, frame: Frame) -> bool:
        """Handle one command; False when the connection must close."""
        line = (frame.command or "").split("\r", 1)[0]  # strip_cr
        low = line.lower()
        if low.startswith(("exit", "...")):
            self._send(encode_command_reply("+OK bye"))
            self._send_disconnect()
            return False
        if not self.authed:
            if low.startswith("auth "):
                return self.cmd_auth(frame, line) is not False
            if low.startswith("userauth "):
                # no directory users with esl-password in the sim: switch_xml_locate_user fails
                return self._refuse("-ERR invalid")
            self._send(encode_command_reply(NOT_FOUND))
            return True
        reply = self._dispatch(frame, line, low)
        if isinstance(reply, str):
            reply = encode_command_reply(reply or NOT_FOUND)
        if reply is not None:
            self._send(reply)
        return not self.closed

    def _dispatch(self, frame: Frame, line: str, low: str) -> bytes | str | None:
        if low.startswith("filter "):
            return self.cmd_filter(frame, line)
        if self.session is not None and low.startswith("resume"):
            return self.cmd_resume(frame, line)
        if self.session is not None or low.startswith("myevents "):
            if self.session is not None and low.startswith("connect"):
                return self.cmd_connect(frame, line)
            if self.session is not None and low.startswith("getvar"):
                return self.cmd_getvar(frame, line)
            if low.startswith("myevents"):
                return self.cmd_myevents(frame, line)
        for prefix, handler in self.handlers:
            if prefix is None:
                if self.outbound and not self.full:
                    return NOT_FOUND
                continue
            if low.startswith(prefix):
                return handler(frame, line)
        return NOT_FOUND

    def _refuse(self, text: str) -> bool:
        self._send(encode_command_reply(text))
        self._send_disconnect()
        return False

    def cmd_auth(self, frame: Frame, line: str):
        password = line[5:]
        if password == self.switch.password:
            self.authed = True
            self._send(encode_command_reply("+OK accepted"))
            return None
        logger.warning("sim: bad password from %s", self.address)
        return self._refuse("-ERR invalid")

    # -- api / bgapi -----------------------------------------------------------------
    def _run_api(self, command: str, arg: str | None) -> tuple[bool, str]:
        """switch_api_execute: run one api command, fire its API event; (found, output)."""
        cmd, arg = _strip_ws(command), _strip_ws(arg)
        found = self.switch.api.has(cmd)
        output = self.switch.api.run(cmd, arg) if found else ""
        if any(listener.may_want("API") for listener in self.switch.listeners):
            headers = [("API-Command", cmd)] if cmd else []
            if arg:
                headers.append(("API-Command-Argument", arg))
            self.switch.fire("API", headers)
        else:
            self.switch.headers.sequence += 1  # numbered even when nobody listens (as fire_channel)
        return found, output

    def _console_execute(self, text: str) -> tuple[bool, str]:
        """switch_console_execute (header ``console_execute: true``, what fs_cli sends):
        the whole line, ``;;`` separating commands; aliases are not simulated."""
        found, out = False, []
        for part in text.lstrip(" ").split(";;"):
            cmd, _, arg = part.partition(" ")
            found, output = self._run_api(cmd, arg if " " in part else None)
            out.append(output)
        return found, "".join(out)

    def cmd_api(self, frame: Frame, line: str):
        api_cmd = line[4:]
        console = frame.headers.get("console_execute") or frame.headers.get("Console_Execute") or ""
        if console.lower() in ("true", "yes", "on", "1", "enabled", "active", "allow"):  # switch_true
            found, output = self._console_execute(api_cmd)
        else:
            api_cmd, sep, arg = api_cmd.partition(" ")  # acs.api_cmd ends at the first space
            found, output = self._run_api(api_cmd, arg if sep else None)
        if not found:  # api_exec replaces the output
            output = f"-ERR {api_cmd} Command not found!\n"
        return encode_api_response(output or "-ERR no reply\n")

    def cmd_bgapi(self, frame: Frame, line: str):
        cmd, sep, arg = line[6:].partition(" ")
        headers = {k.lower(): v for k, v in frame.headers.items()}
        job = headers.get("job-uuid") or new_uuid()
        owner = self.session.ch.uuid if self.session is not None else ""

        def run_job() -> None:
            found, result = self._run_api(cmd, arg if sep else None)
            if not found:
                result = f"-ERR {cmd} Command not found!\n"
            event = [("Job-UUID", job)]
            if owner:
                event.append(("Job-Owner-UUID", owner))
            event.append(("Job-Command", cmd))
            if sep:
                event.append(("Job-Command-Arg", arg))
            self.switch.fire("BACKGROUND_JOB", event, body=result or "Command returned no output!")

        self.switch.spawn(run_job)
        return encode_command_reply(f"+OK Job-UUID: {job}", {"Job-UUID": job})

    # -- events ----------------------------------------------------------------------
    def cmd_event(self, frame: Frame, line: str):
        words = line.split(" ")[1:]  # tokens between single spaces, as strchr(cur, ' ') walks them
        keys = 0
        custom = False
        for count, word in enumerate(words):
            if count == 0 and word.lower() in ("plain", "json", "xml"):
                self.format = word.lower()
                continue
            if custom:
                self.custom.add(word)
                continue
            name = name_event(word)
            if name is None:
                continue
            keys += 1
            if name == "ALL":
                self.all_events = True
            elif name == "CUSTOM":
                custom = True
            self.event_names.add(name)
        if not keys:
            return "-ERR no keywords supplied"
        self.events_on = True
        return f"+OK event listener enabled {self.format}"

    def cmd_nixevent(self, frame: Frame, line: str):
        words = line.split(" ")[1:]
        keys = 0
        custom = False
        for word in words:
            if custom:
                self.custom.discard(word)
                continue
            name = name_event(word)
            if name is None:
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
            return "-ERR no keywords supplied"
        self.events_on = True
        return "+OK events nixed"

    def cmd_noevents(self, frame: Frame, line: str):
        self.flush_events()  # flush_listener: events already queued are dropped too
        if not self.events_on:
            return "-ERR not listening for events"
        self.events_on = False
        self.all_events = False
        self.event_names.clear()
        self.custom.clear()
        return "+OK no longer listening for events"

    def cmd_filter(self, frame: Frame, line: str):
        # switch_event_add_header_string / switch_event_del_header_val on listener->filters
        rest = line[7:].lstrip(" ")
        name, sep, value = rest.partition(" ")
        if name.lower() == "delete" and sep:
            name, sep, value = value.partition(" ")
            if name.lower() == "all":
                self.filters.clear()
            else:  # header names case-insensitive, values exact (strcmp); no value: all of that name
                self.filters = [(n, v) for n, v in self.filters
                                if not (n.lower() == name.lower() and (not value or v == value))]
            return f"+OK filter deleted. [{name}][{value}]"
        if sep:
            if name.lower() == "add":
                name, sep, value = value.partition(" ")
                if not sep:  # header_val NULL: nothing added, printf's "(null)" in the reply
                    return f"+OK filter added. [{name}]=[(null)]"
            if value:
                self.filters.append((name, value))
            else:  # an empty value deletes that header (switch_event_base_add_header, zstr(data))
                self.filters = [(n, v) for n, v in self.filters if n.lower() != name.lower()]
            return f"+OK filter added. [{name}]=[{value}]"
        return "-ERR invalid syntax"

    def cmd_myevents(self, frame: Frame, line: str):
        if self.myevents:
            return "-ERR aready enabled."
        words = line.split()[1:]
        if not self.outbound:
            uuid = words[0] if words else ""
            fmt = words[1].lower() if len(words) > 1 else None
            if self.switch.find(uuid) is None:
                if fmt:
                    return "-ERR invalid uuid"
                fmt = uuid.lower()
            self.my_uuid = uuid
            if fmt in ("plain", "json", "xml"):
                self.format = fmt
        elif words and words[0].lower() in ("plain", "json", "xml"):
            self.format = words[0].lower()
        self.myevents = True
        self.events_on = True
        self.event_names |= MYEVENTS
        return "+OK Events Enabled"

    # -- outbound session commands -------------------------------------------------------
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
                          lock=h.get("event-lock", "").lower() == "true",
                          private=[(k, v) for k, v in frame.headers.items() if k.lower() not in _NOT_PRIVATE])
        elif command == "hangup":
            msg = Message("hangup", cause=h.get("hangup-cause", "NORMAL_CLEARING"))
        else:
            msg = None
        if self.switch.find(uuid) is None or not self.switch.find(uuid).alive:
            return f"-ERR invalid session id [{uuid}]"
        if msg is not None:
            self.switch.queue_message(uuid, msg)
            # Without async (static outbound socket, or `async: false`), FreeSWITCH runs the
            # application in the listener thread and replies when it is done.
            sync = self.outbound and not self.async_mode and h.get("async", "").lower() != "true"
            if sync:
                msg.done.wait(timeout=SYNC_EXECUTE_TIMEOUT_S)
        return "+OK"

    def cmd_linger(self, frame: Frame, line: str):
        if self.session is None:
            return "-ERR not controlling a session"
        if line[6:7] == " " and line[7:]:
            digits = re.match(r"\s*[+-]?\d+", line[7:])  # atoi
            self.linger_s = float(int(digits.group())) if digits else 0.0
            return f"+OK will linger {int(self.linger_s)} seconds"
        self.linger_s = -1.0
        return "+OK will linger"

    def cmd_nolinger(self, frame: Frame, line: str):
        if self.session is None:
            return "-ERR not controlling a session"
        self.linger_s = None
        return "+OK will not linger"

    def cmd_divert_events(self, frame: Frame, line: str):
        if self.session is None:
            return "-ERR not controlling a session."
        value = line[13:].lstrip(" ")
        if not value:
            return "-ERR missing value."
        self.divert = value.lower() == "on"
        return "+OK events diverted" if self.divert else "+OK events not diverted"

    def cmd_connect(self, frame: Frame, line: str):
        self.connected = True
        self.session.poke()  # the socket app waits for this before it parks the channel
        ch = self.session.ch
        data = [(k, v) for k, v in channel_data_headers(ch, self.switch.find(ch.other_leg))]
        data = [("Event-Name", "CHANNEL_DATA")] + self.switch.headers.base("CHANNEL_DATA")[1:] + data
        return encode_connect_reply(data, async_mode=self.async_mode, full=self.full)

    def cmd_getvar(self, frame: Frame, line: str):
        # the value is the reply; an unset variable leaves it empty -> "-ERR command not found"
        _, sep, name = line.partition(" ")
        return self.session.ch.variables.get(name, "") if sep else ""

    def cmd_resume(self, frame: Frame, line: str):
        self.session.ch.variables["socket_resume"] = "true"
        return "+OK"

    # -- log ---------------------------------------------------------------------------
    def cmd_log(self, frame: Frame, line: str):
        level_s = line[3:].lstrip(" ").split(" ", 1)[0]
        level = log_str2level(level_s) if level_s else 7  # SWITCH_LOG_DEBUG
        if level is None:
            return "-ERR invalid log level"
        self.log_level = level  # the switch hands this listener the lines at or below it
        self.log_flag = True  # LFLAG_LOG (also set by `log disable`, which lets nothing through)
        return f"+OK log level {level_s} [{level}]"

    def cmd_nolog(self, frame: Frame, line: str):
        self.flush_logs()
        if not getattr(self, "log_flag", False):
            return "-ERR not loging"
        self.log_flag = False
        self.log_level = -1
        return "+OK no longer logging"

    def cmd_sendevent(self, frame: Frame, line: str):
        name = line[9:].strip().upper() or "CUSTOM"
        event_uuid = new_uuid()
        headers = [(k, v) for k, v in frame.headers.items() if k.lower() != "content-length"]
        headers.append(("Event-UUID", event_uuid))
        subclass = frame.headers.get("Event-Subclass") if name == "CUSTOM" else None
        self.switch.fire(name, headers, body=frame.text if frame.body else None, subclass=subclass)
        return f"+OK {event_uuid}"

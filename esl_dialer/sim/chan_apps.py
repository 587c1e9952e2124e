"""Dialplan applications of the simulated switch (mod_dptools' behaviour, no audio).

A table maps each application name to a small handler ``(runner, session,
arg) -> Application-Response``.  :meth:`AppRunner.execute` wraps every call in
CHANNEL_EXECUTE / CHANNEL_EXECUTE_COMPLETE as ``switch_core_session_exec``
does.  Audio does not exist: a playback lasts the WAV file's duration when
the file can be read (stdlib ``wave``), else ``playback_default_s``;
``local_stream://`` plays until broken.  Application-Response is the
channel's ``current_application_response`` when the app completes, as in
``switch_core_session_exec``: cleared when an app starts, set by playbacks,
so a park whose nested playback failed reports ``PLAYBACK ERROR``.
"""
from __future__ import annotations

import logging
import math
import os
import re
import wave
from typing import TYPE_CHECKING, Callable

from .chan_channel import ChannelState, Playback, new_uuid
from .plans import OriginateError
from .dialstring import DialStringError, parse_dialstring, split_args, unquote_arg
from .chan_record_say import app_record, app_say
from .chan_session import BreakInterrupt, HangupInterrupt, Interrupt, Session, UnparkInterrupt

if TYPE_CHECKING:  # pragma: no cover
    from typing import Any as SimSwitch  # the switch model sits above this layer: duck-typed

logger = logging.getLogger(__name__)

NONE = "_none_"
PARK_STATE = "_park_state"  # not an application: uuid_park's CS_PARK (switch_ivr_park_session)
_TONE_MS = re.compile(r"%\((\d+),(\d+)")
_SILENCE_MS = re.compile(r"^silence_stream://(\d+)")


class AppRunner:
    def __init__(self, switch: "SimSwitch") -> None:
        self.switch = switch
        self.table: dict[str, Callable[[Session, str], str]] = {
            "answer": self.app_answer,
            "pre_answer": self.app_pre_answer,
            "ring_ready": self.app_ring_ready,
            "park": self.app_park,
            "socket": self.app_socket,
            "playback": self.app_playback,
            "play_and_get_digits": self.app_play_and_get_digits,
            "read": self.app_read,
            "bridge": self.app_bridge,
            "hangup": self.app_hangup,
            "sleep": self.app_sleep,
            "set": self.app_set,
            "export": self.app_set,
            "unset": self.app_unset,
            "transfer": self.app_transfer,
            "eavesdrop": self.app_eavesdrop,
            "echo": self.app_echo,
            "record_session": self.app_record_session,
            "stop_record_session": self.app_stop_record_session,
            "amd": self.app_amd,
            "record": lambda session, arg: app_record(self, session, arg),
            "say": lambda session, arg: app_say(self, session, arg),
            "log": self.app_noop,
            "info": self.app_noop,
            "send_dtmf": self.app_noop,
        }

    # -- the exec wrapper -----------------------------------------------------
    def execute(self, session: Session, app: str, arg: str = "", app_uuid: str | None = None) -> str:
        sw = self.switch
        ch = session.ch
        if app == PARK_STATE:
            return self.park_state(session)
        handler = self.table.get(app)
        if handler is None:
            # switch_core_session_execute_application: "Invalid Application", call torn down
            logger.warning("sim call %s: invalid application %r", ch.uuid, app)
            sw.hangup(ch, "DESTINATION_OUT_OF_ORDER")
            session.check()
            return NONE
        app_uuid = app_uuid or new_uuid()
        prev = (ch.current_app, ch.current_app_data)
        ch.current_app, ch.current_app_data = app, arg
        ch.last_app, ch.last_arg = app, arg
        ch.variables["current_application"] = app
        if arg:
            ch.variables["current_application_data"] = arg
        ch.variables.pop("current_application_response", None)
        data = [("Application-Data", arg)] if arg else []
        sw.enter_execute(ch)
        sw.fire_channel("CHANNEL_EXECUTE", ch, [("Application", app), *data, ("Application-UUID", app_uuid)])
        sw.log(6, "switch_core_session.c", "switch_core_session_exec", 2902,  # SWITCH_CHANNEL_SESSION_LOG_CLEAN
               f"EXECUTE [depth=0] {ch.name} {app}({arg})", uuid=ch.uuid, channel=1)
        ch.note(sw.clock.now(), "execute", f"{app} {arg}".strip())
        response = NONE
        try:
            response = handler(session, arg) or NONE
        except Interrupt as exc:
            if isinstance(exc, (BreakInterrupt, UnparkInterrupt)):
                response = NONE
            else:
                self._complete(session, app, data, NONE, app_uuid)
                raise
        self._complete(session, app, data, response, app_uuid)
        if prev[0] is not None and ch.alive:
            ch.current_app, ch.current_app_data = prev
        return response

    def _complete(self, session: Session, app: str, data, response: str, app_uuid: str) -> None:
        ch = session.ch
        if response != NONE:
            ch.variables["current_application_response"] = response
        else:  # what a nested application left, as switch_core_session_exec reports it
            response = ch.variables.get("current_application_response", NONE)
        self.switch.fire_channel("CHANNEL_EXECUTE_COMPLETE", ch, [
            ("Application", app), *data, ("Application-Response", response), ("Application-UUID", app_uuid)])

    # -- helpers ----------------------------------------------------------------
    def file_seconds(self, path: str) -> float:
        """How long a playback of ``path`` lasts in simulated seconds."""
        path = path.strip()
        if path.startswith("local_stream://"):
            return math.inf  # a music stream never ends: uuid_break stops it
        if path.startswith("tone_stream://"):
            m = _TONE_MS.search(path)
            return int(m.group(1)) / 1000.0 if m else self.switch.config.playback_default_s
        m = _SILENCE_MS.match(path)
        if m:
            return int(m.group(1)) / 1000.0
        if path.startswith("file_string://"):
            return sum(self.file_seconds(p) for p in path[len("file_string://"):].split("!"))
        if path.startswith("say:") or path.startswith("phrase:"):
            return 1.5
        candidates = [path]
        if self.switch.config.sounds_dir and not os.path.isabs(path):
            candidates.append(os.path.join(self.switch.config.sounds_dir, path))
        for candidate in candidates:
            try:
                with wave.open(candidate, "rb") as wav:
                    return wav.getnframes() / float(wav.getframerate() or 8000)
            except (OSError, wave.Error, EOFError):
                continue
        return self.switch.config.playback_default_s

    def play(self, session: Session, path: str, seconds: float | None = None) -> str:
        """PLAYBACK_START, the file's duration (uuid_break stops it), PLAYBACK_STOP.

        On a leg that uuid_bridge is moving (replied, not yet bridged) the real
        switch fails at once: PLAYBACK ERROR, no PLAYBACK_START/STOP.
        """
        sw = self.switch
        ch = session.ch
        if ch.bridge_pending:
            return "PLAYBACK ERROR"
        if seconds is None:
            seconds = self.file_seconds(path)
        if math.isfinite(seconds):
            seconds = sw.config.timing.frames(seconds)  # whole 20 ms media frames
        # switch_ivr_play_file sets Playback-File-Type only for a stream (<type>://...); a plain
        # file's events carry the path alone (e_timing, f_outbound_break)
        info = [("Playback-File-Path", path)]
        if "://" in path:
            info.insert(0, ("Playback-File-Type", path.split("://", 1)[0]))
        pb = Playback(file=path, leg=ch.uuid, started=sw.clock.now(), seconds=seconds)
        ch.playbacks.append(pb)
        sw.fire_channel("PLAYBACK_START", ch, info)
        session.playing += 1
        status = "done"
        try:
            # executes without event-lock sent meanwhile run nested inside this playback
            session.block(seconds if math.isfinite(seconds) else None, breakable=True, nest=True)
        except BreakInterrupt:
            status = "break"
            session.not_before = session.later("next_after_break_ms")
        except HangupInterrupt:
            status = "break"
            raise
        finally:
            session.playback_ended()
            played = min(seconds, max(0.0, sw.clock.now() - pb.started))
            pb.status = status
            ms = int(played * 1000)
            ch.variables.update({"playback_last_offset_pos": str(ms * 8), "playback_seconds": str(int(played)),
                                 "playback_ms": str(ms), "playback_samples": str(ms * 8)})
            sw.fire_channel("PLAYBACK_STOP", ch, info + [("Playback-Status", status)])
        return "FILE PLAYED"

    def press(self, session: Session, max_digits: int, terminators: str) -> tuple[str, bool]:
        """The simulated party presses its pending digits: DTMF events, returns (digits, terminated)."""
        ch = session.ch
        got = ""
        while ch.dtmf_buffer and len(got) < max_digits:  # already announced by uuid_send_dtmf
            digit, ch.dtmf_buffer = ch.dtmf_buffer[0], ch.dtmf_buffer[1:]
            if terminators and digit in terminators:
                return got, True
            got += digit
        while ch.pending_dtmf and len(got) < max_digits:
            digit, ch.pending_dtmf = ch.pending_dtmf[0], ch.pending_dtmf[1:]
            self.dtmf_event(session, digit)
            if terminators and digit in terminators:
                return got, True
            got += digit
        if got and ch.pending_dtmf and terminators and ch.pending_dtmf[0] in terminators:
            digit, ch.pending_dtmf = ch.pending_dtmf[0], ch.pending_dtmf[1:]
            self.dtmf_event(session, digit)
            return got, True
        return got, False

    def dtmf_event(self, session: Session, digit: str) -> None:
        ch = session.ch
        ch.dtmf_sent.append(digit)
        self.switch.fire_channel("DTMF", ch, [("DTMF-Digit", digit), ("DTMF-Duration", "2000"),
                                              ("DTMF-Source", "RTP")], variables=False)
        session.block(0.1)

    # -- applications ---------------------------------------------------------------
    def app_noop(self, session: Session, arg: str) -> str:
        return NONE

    def app_answer(self, session: Session, arg: str) -> str:
        self.switch.answer(session.ch)
        return NONE

    def app_pre_answer(self, session: Session, arg: str) -> str:
        self.switch.progress(session.ch, media=True)
        return NONE

    def app_ring_ready(self, session: Session, arg: str) -> str:
        self.switch.progress(session.ch, media=False)
        return NONE

    def _park_loop(self, session: Session, until=None) -> None:
        sw = self.switch
        ch = session.ch
        session.parked = True
        session.unpark_requested = False
        was_controlled = ch.controlled
        ch.controlled = True
        sw.fire_channel("CHANNEL_PARK", ch)
        try:
            session.block(None, messages=True, parked=True, until=until)
        except UnparkInterrupt:
            pass
        finally:
            session.parked = False
            ch.controlled = was_controlled
            sw.fire_channel("CHANNEL_UNPARK", ch)

    def park_state(self, session: Session) -> str:
        """uuid_park: the channel goes to state CS_PARK and parks, with no CHANNEL_EXECUTE
        (as captured: CHANNEL_STATE CS_PARK, then CHANNEL_PARK)."""
        ch = session.ch
        ch.state = ChannelState.CS_PARK
        self.switch.fire_channel("CHANNEL_STATE", ch, variables=False)
        try:
            self._park_loop(session)
        finally:
            if ch.alive:
                ch.state = ChannelState.CS_EXECUTE
        return NONE

    def app_park(self, session: Session, arg: str) -> str:
        if session.ch.bridged_to:
            return NONE
        self._park_loop(session)
        return NONE

    def app_socket(self, session: Session, arg: str) -> str:
        parts = arg.split()
        if not parts or ":" not in parts[0]:
            logger.warning("sim call %s: socket app needs host:port, got %r", session.ch.uuid, arg)
            return NONE
        host, _, port = parts[0].rpartition(":")
        ch = session.ch
        ch.variables["socket_host"] = host
        listener = self.switch.connect_outbound(session, host, int(port), async_mode="async" in parts[1:],
                                    full="full" in parts[1:])
        if listener is None:
            return NONE
        session.listener = listener
        ch.controlled = True
        try:
            # mod_event_socket's socket app waits for the client's `connect`, then parks on the next
            # media frame (f_outbound_break: CHANNEL_PARK 20 ms after the connect reply)
            session.block(None, until=lambda: listener.connected or listener.closed)
            if not listener.closed:
                session.block(self.switch.config.timing.seconds("media_step_ms"))
            self._park_loop(session, until=lambda: listener.closed)
        finally:
            ch.controlled = False
            session.listener = None if listener.closed else listener
        return NONE

    def app_playback(self, session: Session, arg: str) -> str:
        return self.play(session, arg)

    def app_sleep(self, session: Session, arg: str) -> str:
        try:
            ms = int(arg or "0")
        except ValueError:
            ms = 0
        session.block(ms / 1000.0)
        return NONE

    def app_set(self, session: Session, arg: str) -> str:
        name, eq, value = arg.partition("=")
        if name.strip():
            try:
                session.ch.set_var(name.strip(), value if eq and value != "" else None)
            except ValueError:
                logger.warning("sim call %s: set: bad variable name %r", session.ch.uuid, name)
        return NONE

    def app_unset(self, session: Session, arg: str) -> str:
        try:
            session.ch.set_var(arg.strip(), None)
        except ValueError:
            pass
        return NONE

    def app_hangup(self, session: Session, arg: str) -> str:
        self.switch.hangup(session.ch, arg.strip() or "NORMAL_CLEARING")
        return NONE

    def app_transfer(self, session: Session, arg: str) -> str:
        parts = arg.split()
        if not parts:
            return NONE
        self.switch.transfer(session.ch, parts[0], parts[1] if len(parts) > 1 else "XML",
                             parts[2] if len(parts) > 2 else "default")
        return NONE

    def app_echo(self, session: Session, arg: str) -> str:
        session.block(None, messages=True)
        return NONE

    def app_eavesdrop(self, session: Session, arg: str) -> str:
        target = self.switch.find(arg.strip())
        if target is None or not target.alive:
            return "no-channel"
        session.ch.variables["eavesdrop_target"] = target.uuid
        target.note(self.switch.clock.now(), "eavesdropped", session.ch.uuid)
        spies = self.switch.eavesdroppers.setdefault(target.uuid, set())
        spies.add(session.ch.uuid)
        try:
            session.block(None, messages=True, until=lambda: not target.alive)
        finally:
            session.ch.variables.pop("eavesdrop_target", None)
            spies.discard(session.ch.uuid)
            if not spies:
                self.switch.eavesdroppers.pop(target.uuid, None)
        return NONE

    def app_record_session(self, session: Session, arg: str) -> str:
        path = arg.strip()
        session.ch.recordings.append(path)
        self.switch.fire_channel("RECORD_START", session.ch, [("Record-File-Path", path)])
        return NONE

    def app_stop_record_session(self, session: Session, arg: str) -> str:
        self.switch.fire_channel("RECORD_STOP", session.ch, [("Record-File-Path", arg.strip())])
        return NONE

    def app_amd(self, session: Session, arg: str) -> str:
        """mod_amd-style: after ~2 s of analysis set amd_result MACHINE/HUMAN."""
        session.block(2.0)
        machine = session.ch.variables.get("sim_party") == "machine"
        session.ch.variables["amd_result"] = "MACHINE" if machine else "HUMAN"
        session.ch.variables["amd_cause"] = "INITIALSILENCE" if machine else "HUMAN"
        return NONE

    def app_bridge(self, session: Session, arg: str) -> str:
        sw = self.switch
        ch = session.ch
        try:
            ds = parse_dialstring(arg)
        except DialStringError:
            ch.variables["originate_disposition"] = "INVALID_NUMBER_FORMAT"
            return NONE

        session.in_bridge_app = True
        try:
            try:
                other = sw.originate_legs(ds, originator=ch)
            except OriginateError as err:
                ch.variables["originate_disposition"] = err.cause
                ch.variables["DIALSTATUS"] = err.cause
                ch.variables["last_bridge_hangup_cause"] = err.cause
                return NONE
            session.check()
            if not ch.answered:
                sw.answer(ch)
            ch.variables["originate_disposition"] = "SUCCESS"
            ch.variables["DIALSTATUS"] = "SUCCESS"
            sw.bridge(ch, other, via_app="bridge")
            session.block(None, messages=True, until=lambda: ch.bridged_to is None)
            ch.variables["last_bridge_hangup_cause"] = other.hangup_cause or "NORMAL_CLEARING"
        finally:
            session.in_bridge_app = False
        if ch.variables.get("hangup_after_bridge", "false") == "true":
            sw.hangup(ch, "NORMAL_CLEARING")
        return NONE

    def _collect(self, session: Session, *, min_d: int, max_d: int, tries: int, timeout_s: float,
                 terminators: str, prompt: str, invalid: str, var: str, regex: str) -> str:
        ch = session.ch
        pattern = None
        if regex:
            try:
                pattern = re.compile(regex)
            except re.error:
                pattern = None
        for attempt in range(max(1, tries)):
            session.collecting = True
            try:
                if prompt:
                    self.play(session, prompt)
                if not (ch.pending_dtmf or ch.dtmf_buffer):
                    session.block(timeout_s, until=lambda: bool(ch.pending_dtmf or ch.dtmf_buffer))
            finally:
                session.collecting = False
            digits, _ = self.press(session, max_d, terminators)
            if digits and len(digits) >= min_d and (pattern is None or pattern.fullmatch(digits)):
                try:
                    ch.set_var(var, digits)
                except ValueError:
                    logger.warning("sim call %s: bad variable name %r", ch.uuid, var)
                ch.variables["read_result"] = "success"
                return digits
            if digits and invalid and attempt + 1 < tries:
                self.play(session, invalid)
        ch.variables["read_result"] = "failure"
        ch.variables.pop(var, None)
        return ""

    def app_play_and_get_digits(self, session: Session, arg: str) -> str:
        # <min> <max> <tries> <timeout ms> <terminators> <file> <invalid_file> <var> <regexp> [digit_timeout] ...
        p = [unquote_arg(x) for x in split_args(arg)]
        if len(p) < 6:
            return NONE
        try:
            min_d, max_d, tries, timeout_ms = int(p[0]), int(p[1]), int(p[2]), int(p[3])
        except ValueError:
            return NONE
        self._collect(session, min_d=min_d, max_d=max_d, tries=tries, timeout_s=timeout_ms / 1000.0,
                      terminators=p[4] if p[4] != "none" else "", prompt=p[5],
                      invalid=p[6] if len(p) > 6 else "", var=p[7] if len(p) > 7 else "pagd_input",
                      regex=p[8] if len(p) > 8 else "")
        return NONE

    def app_read(self, session: Session, arg: str) -> str:
        # <min> <max> <sound file> <variable name> <timeout ms> <terminators>
        p = [unquote_arg(x) for x in split_args(arg)]
        if len(p) < 5:
            return NONE
        try:
            min_d, max_d, timeout_ms = int(p[0]), int(p[1]), int(p[4])
        except ValueError:
            return NONE
        self._collect(session, min_d=min_d, max_d=max_d, tries=1, timeout_s=timeout_ms / 1000.0,
                      terminators=p[5] if len(p) > 5 else "#", prompt=p[2], invalid="", var=p[3], regex="")
        return NONE

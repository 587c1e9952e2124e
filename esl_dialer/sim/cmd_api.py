"""``api`` commands of the simulated switch (mod_commands' syntax and reply texts).

A dict of small handlers ``(arg) -> reply body``.  Reply texts are those of
FreeSWITCH 1.10 (mod_commands.c), checked against the captures: most end in a
newline, a few (``uuid_getvar``, ``uuid_exists``) do not.
"""
from __future__ import annotations

import json
import logging
from typing import TYPE_CHECKING, Callable

from .chan_channel import channel_headers, new_uuid
from .cmd_api_info import InfoCommands
from .config import OUTCOMES
from .dialstring import split_args, unquote_arg
from .chan_session import Message
from .plans import OriginateError

if TYPE_CHECKING:  # pragma: no cover
    from .model_switch import SwitchCore as SimSwitch

logger = logging.getLogger(__name__)

NO_SUCH_CHANNEL = "-ERR No such channel!\n"
SHOW_COLUMNS = ("uuid", "direction", "created", "created_epoch", "name", "state", "cid_name", "cid_num",
                "ip_addr", "dest", "application", "application_data", "dialplan", "context", "read_codec",
                "read_rate", "read_bit_rate", "write_codec", "write_rate", "write_bit_rate", "secure",
                "hostname", "presence_id", "presence_data", "accountcode", "callstate", "callee_name",
                "callee_num", "callee_direction", "call_uuid", "sent_callee_name", "sent_callee_num",
                "initial_cid_name", "initial_cid_num", "initial_ip_addr", "initial_dest", "initial_dialplan",
                "initial_context")


class ApiCommands:
    def __init__(self, switch: "SimSwitch") -> None:
        self.switch = switch
        self.table: dict[str, Callable[[str], str]] = {
            "version": lambda arg: "FreeSWITCH Version 1.10.12-release~64bit (-release 64bit)\n",
            "originate": self.switch.originate_command,
            "uuid_bridge": self.uuid_bridge,
            "uuid_transfer": self.uuid_transfer,
            "uuid_kill": self.uuid_kill,
            "uuid_broadcast": self.uuid_broadcast,
            "uuid_break": self.uuid_break,
            "uuid_setvar": self.uuid_setvar,
            "uuid_setvar_multi": self.uuid_setvar_multi,
            "uuid_getvar": self.uuid_getvar,
            "uuid_exists": self.uuid_exists,
            "uuid_answer": self.uuid_answer,
            "uuid_record": self.uuid_record,
            "uuid_send_dtmf": self.uuid_send_dtmf,
            "uuid_dump": self.uuid_dump,
            "hupall": self.hupall,
            "create_uuid": lambda arg: new_uuid(),
            "sim_script": self.sim_script,
            "sim_user": self.sim_user,
            "sim_inbound": self.sim_inbound,
        }
        self.table.update(InfoCommands(self).table())  # status, show, help, uuid_hold ... (cmd_api_info)

    def has(self, command: str) -> bool:
        """Is ``command`` an api command (names are case-insensitive, as FreeSWITCH's api hash)?"""
        return command.lower() in self.table

    def run(self, command: str, arg: str | None) -> str:
        handler = self.table.get(command.lower())
        if handler is None:
            return f"-ERR {command} Command not found!\n"
        arg = (arg or "").strip()
        target = self.switch.find(arg.split(" ", 1)[0]) if arg else None
        if target is not None:  # the history keeps every command applied to a call
            target.note(self.switch.clock.now(), "api", f"{command} {arg}")
        try:
            return handler(arg)
        except Exception:  # an api bug must not kill the connection
            logger.exception("sim api %s %s failed", command, arg)
            return f"-ERR {command} failed\n"

    def _chan(self, uuid: str):
        return self.switch.find(uuid.strip())

    # -- commands ------------------------------------------------------------
    def uuid_bridge(self, arg: str) -> str:
        p = arg.split()
        if len(p) != 2:
            return "-USAGE: <uuid> <other_uuid>\n"
        a, b = self._chan(p[0]), self._chan(p[1])
        if a is None or not a.alive:
            return f"-ERR Invalid uuid {p[0]}\n"
        if b is None or not b.alive:
            return f"-ERR Invalid uuid {p[1]}\n"
        self.switch.bridge(a, b)
        return f"+OK {b.uuid}\n"

    def uuid_transfer(self, arg: str) -> str:
        # uuid_transfer <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]
        p = split_args(arg)
        if len(p) < 2:
            return "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n"
        ch = self._chan(p[0])
        if ch is None or not ch.alive:
            return "-ERR No such channel!\n"
        legs = [ch]
        rest = p[1:]
        if rest[0] in ("-bleg", "-both"):
            other = self.switch.find(ch.bridged_to)
            legs = ([other] if rest[0] == "-bleg" else [ch, other]) if other else ([] if rest[0] == "-bleg" else [ch])
            rest = rest[1:]
        if not rest:
            return "-USAGE: <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]\n"
        dest = unquote_arg(rest[0])
        dialplan = rest[1] if len(rest) > 1 else "XML"
        context = rest[2] if len(rest) > 2 else "default"
        if len(legs) == 2:  # -both: keep both legs; unbridge first so neither hangs up
            self.switch.unbridge(legs[0], legs[1])
        for leg in legs:
            self.switch.transfer(leg, dest, dialplan, context)
        return "+OK\n"

    def uuid_kill(self, arg: str) -> str:
        p = arg.split()
        if not p:
            return "-USAGE: <uuid> [cause]\n"
        ch = self._chan(p[0])
        if ch is None or not ch.alive:
            return NO_SUCH_CHANNEL
        self.switch.hangup(ch, p[1] if len(p) > 1 else "NORMAL_CLEARING", defer_peer=True)
        return "+OK\n"

    def uuid_broadcast(self, arg: str) -> str:
        p = arg.split(" ")
        p = [x for x in p if x]
        if len(p) < 2:
            return "-USAGE: <uuid> <path> [aleg|bleg|holdb|both]\n"
        ch = self._chan(p[0])
        leg = p[2].lower() if len(p) > 2 else "aleg"
        hold = len(p) < 3 or leg == "holdb"  # mod_commands: SMF_HOLD_BLEG by default and with holdb
        if ch is None or not ch.alive:
            return "-ERR Error Sending Message\n"
        path = p[1]
        if "::" in path:
            app, _, app_arg = path.partition("::")
        else:
            app, app_arg = "playback", path
        targets = []
        if leg in ("aleg", "both"):
            targets.append(ch.uuid)
        if leg in ("bleg", "holdb", "both") and ch.bridged_to:
            targets.append(ch.bridged_to)
        for uuid in targets:
            leg_ch = self.switch.find(uuid)
            if leg_ch is None:
                continue
            # the playback starts after the switch's media delay (e_timing: 200 ms parked,
            # 360/380 ms on a bridged B/A; fails with PLAYBACK ERROR while uuid_bridge moves the leg)
            self.switch.queue_message(uuid, Message("execute", app=app, arg=app_arg,
                                                    delay_s=self.switch.media_delay_s(leg_ch),
                                                    private=_broadcast_headers(app, app_arg, hold)))
        ch.note(self.switch.clock.now(), "broadcast", f"{path} {leg}")
        return "+OK Message sent\n"

    def uuid_break(self, arg: str) -> str:
        p = arg.split()
        if not p:
            return "-USAGE: <uuid> [all]\n"
        session = self.switch.sessions.get(p[0])
        if session is None or not session.ch.alive:
            return NO_SUCH_CHANNEL
        session.request_break(clear_queue=len(p) > 1 and p[1] == "all")
        return "+OK\n"

    def uuid_setvar(self, arg: str) -> str:
        p = arg.split(" ", 2)
        if len(p) < 2:
            return "-USAGE: <uuid> <var> [value]\n"
        ch = self._chan(p[0])
        if ch is None:
            return NO_SUCH_CHANNEL
        try:
            ch.set_var(p[1], p[2] if len(p) > 2 and p[2] != "" else None)
        except ValueError:
            return "-ERR invalid variable name\n"
        return "+OK\n"

    def uuid_setvar_multi(self, arg: str) -> str:
        uuid, _, rest = arg.partition(" ")
        ch = self._chan(uuid)
        if ch is None:
            return NO_SUCH_CHANNEL
        for pair in rest.split(";"):
            name, _, value = pair.partition("=")
            if name.strip():
                try:
                    ch.set_var(name.strip(), value if value else None)
                except ValueError:
                    return "-ERR invalid variable name\n"
        return "+OK\n"

    def uuid_getvar(self, arg: str) -> str:
        p = arg.split()
        if len(p) < 2:
            return "-USAGE: <uuid> <var>\n"
        ch = self._chan(p[0])
        if ch is None:
            return NO_SUCH_CHANNEL
        value = ch.variables.get(p[1])
        return "_undef_" if value is None else value

    def uuid_exists(self, arg: str) -> str:
        ch = self._chan(arg) if arg else None
        return "true" if ch is not None and ch.alive else "false"

    def uuid_answer(self, arg: str) -> str:
        ch = self._chan(arg.split()[0]) if arg else None
        if ch is None or not ch.alive:
            return NO_SUCH_CHANNEL
        self.switch.answer(ch)
        return "+OK\n"

    def uuid_record(self, arg: str) -> str:
        # uuid_record <uuid> [start|stop|mask|unmask] <path> [<limit>]
        p = arg.split()
        if len(p) < 3:
            return "-USAGE: <uuid> [start|stop|mask|unmask] <path> [<limit>]\n"
        ch = self._chan(p[0])
        if ch is None or not ch.alive:
            return "-ERR Cannot locate session!\n"
        action, path = p[1].lower(), p[2]
        if action == "start":
            ch.recordings.append(path)
            self.switch.fire_channel("RECORD_START", ch, [("Record-File-Path", path)])
        elif action == "stop":
            self.switch.fire_channel("RECORD_STOP", ch, [("Record-File-Path", path)])
        elif action not in ("mask", "unmask"):
            return "-USAGE: <uuid> [start|stop|mask|unmask] <path> [<limit>]\n"
        ch.note(self.switch.clock.now(), f"record_{action}", path)
        return "+OK Success\n"

    def uuid_send_dtmf(self, arg: str) -> str:
        p = arg.split()
        if len(p) < 2:
            return "-USAGE: <uuid> <dtmf_data>\n"
        session = self.switch.sessions.get(p[0])
        if session is None or not session.ch.alive:
            return NO_SUCH_CHANNEL
        digits = p[1].split("@", 1)[0]
        ch = session.ch
        uuid = ch.uuid
        # The digits go out of this leg: on a loopback pair they arrive on the partner
        # (that is where FreeSWITCH fires DTMF).  On other legs the sim treats them as
        # pressed by the far end (a test convenience: there is no far end to press).
        peer = self.switch.sessions.get(ch.loopback_peer or "")
        if peer is not None and peer.ch.alive:
            session, ch = peer, peer.ch
        for digit in digits:
            ch.dtmf_sent.append(digit)
            self.switch.fire_channel("DTMF", ch, [("DTMF-Digit", digit), ("DTMF-Duration", "2000"),
                                                  ("DTMF-Source", "UNKNOWN")], variables=False)
        ch.dtmf_buffer += digits
        session.poke()
        return f"+OK {uuid} sent DTMF {digits}.\n"

    def uuid_dump(self, arg: str) -> str:
        p = arg.split()
        ch = self._chan(p[0]) if p else None
        if ch is None:
            return NO_SUCH_CHANNEL
        headers = channel_headers(ch, other=self.switch.find(ch.other_leg))
        if len(p) > 1 and p[1] == "json":
            return json.dumps(dict(headers))
        return "".join(f"{k}: {v}\n" for k, v in headers) + "\n"

    def hupall(self, arg: str) -> str:
        p = arg.split()
        cause = p[0].upper() if p else "MANAGER_REQUEST"
        var = p[1] if len(p) > 2 else None
        value = p[2] if len(p) > 2 else None
        for ch in list(self.switch.channels.values()):
            if var is None or ch.variables.get(var) == value:
                self.switch.hangup(ch, cause)
        if var:
            return f"+OK hangup all channels matching [{var}]=[{value}] with cause {cause}\n"
        return f"+OK hangup all channels with cause {cause}\n"

    # -- sim-only control commands -------------------------------------------------
    def sim_script(self, arg: str) -> str:
        """``sim_script <number> <outcome> <ring_s> <talk_s> [cause] [dtmf]`` (sim only)."""
        p = arg.split()
        if len(p) < 4 or p[1] not in OUTCOMES:
            return f"-USAGE: sim_script <number> <{'|'.join(OUTCOMES)}> <ring_s> <talk_s> [cause] [dtmf]\n"
        try:
            ring, talk = float(p[2]), float(p[3])
        except ValueError:
            return "-ERR ring_s and talk_s must be numbers\n"
        self.switch.script(p[0], p[1], ring, talk, cause=p[4].upper() if len(p) > 4 and p[4] != "-" else None,
                           dtmf=p[5] if len(p) > 5 else "")
        return "+OK\n"

    def sim_user(self, arg: str) -> str:
        """``sim_user <ext> [answer_after_s] [busy|unregistered]`` (sim only)."""
        p = arg.split()
        if not p:
            return "-USAGE: sim_user <ext> [answer_after_s] [busy|unregistered]\n"
        try:
            delay = float(p[1]) if len(p) > 1 else 0.2
        except ValueError:
            return "-ERR answer_after_s must be a number\n"
        flags = set(p[2:])
        self.switch.add_user(p[0], delay, registered="unregistered" not in flags, busy="busy" in flags)
        return "+OK\n"

    def sim_inbound(self, arg: str) -> str:
        """``sim_inbound <destination> <caller_id> [dtmf]`` (sim only): a caller arrives."""
        p = arg.split()
        if len(p) < 2:
            return "-USAGE: sim_inbound <destination> <caller_id> [dtmf]\n"
        try:
            uuid = self.switch.inbound_call(p[0], p[1], dtmf=p[2] if len(p) > 2 else "")
        except OriginateError as err:
            return f"-ERR {err.cause}\n"
        return f"+OK {uuid}\n"


def _broadcast_headers(app: str, arg: str, hold: bool) -> list[tuple[str, str]]:
    """switch_ivr_broadcast's private event (seen as PRIVATE_COMMAND in e_timing); hold-bleg
    without a leg argument or with ``holdb`` (mod_commands uuid_broadcast's SMF_HOLD_BLEG)."""
    h = [("call-command", "execute"), ("execute-app-name", app), ("execute-app-arg", arg),
         ("event-lock", "true"), ("lead-frames", "5")]
    if hold:
        h.append(("hold-bleg", "true"))
    return h


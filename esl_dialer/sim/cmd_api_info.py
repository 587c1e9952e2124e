"""The mod_commands api commands monitoring tools and ``fs_cli`` send (layer ``cmd_``).

``status``, ``json`` (``status``), ``switchname``, ``hostname``, ``uptime``,
``global_getvar``, ``module_exists``, ``show``, ``help``, ``reloadxml``,
``uuid_park`` and ``uuid_hold``, registered into :class:`~.cmd_api.ApiCommands`'
table.  Output formats are those of mod_commands.c (FreeSWITCH 1.10.12), checked
against the e_timing capture ("Replies to the less common commands").
"""
from __future__ import annotations

import json
import time
from typing import TYPE_CHECKING, Callable

import gevent

from .chan_apps import PARK_STATE
from .chan_channel import CallState, show_row
from .chan_session import Message

if TYPE_CHECKING:  # pragma: no cover
    from .model_switch import SwitchCore as SimSwitch

VERSION_HUMAN = "1.10.12-release  64bit"  # switch_version_full_human() as the captures show it
SHOW_SYNTAX = ("codec|endpoint|application|api|dialplan|file|timer|calls [count]|channels [count|like <match string>]"
               "|calls|detailed_calls|bridged_calls|detailed_bridged_calls|aliases|complete|chat|management|modules"
               "|nat_map|say|interfaces|interface_types|tasks|limits|status")
HOLD_SYNTAX = "[off|toggle] <uuid> [<display>]"
UPTIME_SYNTAX = "[us|ms|s|m|h|d|microseconds|milliseconds|seconds|minutes|hours|days]"
UPTIME_SCALE = {"": 1_000_000, "microseconds": 1, "us": 1, "milliseconds": 1000, "ms": 1000,
                "seconds": 1_000_000, "s": 1_000_000, "minutes": 60_000_000, "m": 60_000_000,
                "hours": 3_600_000_000, "h": 3_600_000_000, "days": 86_400_000_000, "d": 86_400_000_000}

# Modules whose behaviour the simulator reproduces (module_exists answers true for these).
MODULES = frozenset({"mod_event_socket", "mod_commands", "mod_dptools", "mod_loopback", "mod_sofia",
                     "mod_dialplan_xml", "mod_sndfile", "mod_local_stream", "mod_tone_stream", "mod_say_en",
                     "mod_callcenter"})

# (syntax, description, module) as the SWITCH_ADD_API lines register them; `help` lists them.
API_HELP = {
    "create_uuid": ("<uuid> <other_uuid>", "Create a uuid", "mod_commands"),
    "global_getvar": ("<var>", "Get global var", "mod_commands"),
    "help": ("", "Show help for all the api commands", "mod_commands"),
    "hostname": ("", "Return the system hostname", "mod_commands"),
    "hupall": ("<cause> [<var> <value>] [<var2> <value2>]", "hupall", "mod_commands"),
    "json": ("JSON", "JSON API", "mod_commands"),
    "module_exists": ("<module>", "Check if module exists", "mod_commands"),
    "originate": ("<call url> <exten>|&<application_name>(<app_args>) [<dialplan>] [<context>] [<cid_name>] "
                  "[<cid_num>] [<timeout_sec>]", "Originate a call", "mod_commands"),
    "reloadxml": ("", "Reload XML", "mod_commands"),
    "show": (SHOW_SYNTAX, "Show various reports", "mod_commands"),
    "status": ("", "Show current status", "mod_commands"),
    "switchname": ("", "Return the switch name", "mod_commands"),
    "uptime": (UPTIME_SYNTAX, "Show uptime", "mod_commands"),
    "uuid_answer": ("<uuid>", "answer", "mod_commands"),
    "uuid_break": ("<uuid> [all]", "Break out of media sent to channel", "mod_commands"),
    "uuid_bridge": ("", "Bridge call legs", "mod_commands"),
    "uuid_broadcast": ("<uuid> <path> [aleg|bleg|holdb|both]", "Execute dialplan application", "mod_commands"),
    "uuid_dump": ("<uuid> [format]", "Dump session vars", "mod_commands"),
    "uuid_exists": ("<uuid>", "Check if a uuid exists", "mod_commands"),
    "uuid_getvar": ("<uuid> <var>", "Get a variable from a channel", "mod_commands"),
    "uuid_hold": (HOLD_SYNTAX, "Place call on hold", "mod_commands"),
    "uuid_kill": ("<uuid> [cause]", "Kill channel", "mod_commands"),
    "uuid_park": ("<uuid>", "Park channel", "mod_commands"),
    "uuid_record": ("<uuid> [start|stop|mask|unmask] <path> [<limit>] [<recording_vars>]", "Record session audio",
                    "mod_commands"),
    "uuid_send_dtmf": ("<uuid> <dtmf_data>", "Send dtmf digits", "mod_commands"),
    "uuid_setvar": ("<uuid> <var> [value]", "Set a variable", "mod_commands"),
    "uuid_setvar_multi": ("<uuid> <var>=<value>;<var>=<value>...", "Set multiple variables", "mod_commands"),
    "uuid_transfer": ("<uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]", "Transfer a session",
                      "mod_commands"),
    "version": ("[short]", "Version", "mod_commands"),
}


def global_vars(switch: "SimSwitch") -> dict[str, str]:
    """The switch's global variables (vars.xml of a vanilla 1.10 install, the sim's host and address)."""
    cfg = switch.config
    base = "/usr/local/freeswitch"
    return {
        "hostname": cfg.hostname, "local_mask_v4": "255.255.255.0", "local_ip_v6": "::1", "base_dir": base,
        "recordings_dir": f"{base}/recordings", "sounds_dir": f"{base}/sounds", "conf_dir": f"{base}/conf",
        "log_dir": f"{base}/log", "run_dir": f"{base}/run", "db_dir": f"{base}/db", "mod_dir": f"{base}/mod",
        "htdocs_dir": f"{base}/htdocs", "script_dir": f"{base}/scripts", "temp_dir": "/tmp",
        "grammar_dir": f"{base}/grammar", "fonts_dir": f"{base}/fonts", "images_dir": f"{base}/images",
        "certs_dir": f"{base}/certs", "storage_dir": f"{base}/storage", "cache_dir": f"{base}/cache",
        "data_dir": base, "localstate_dir": base, "default_password": "1234", "local_ip_v4": cfg.ipv4,
        "sound_prefix": f"{base}/sounds/en/us/callie", "domain": cfg.ipv4, "domain_name": cfg.ipv4,
        "hold_music": "local_stream://moh", "use_profile": "external", "global_codec_prefs": "OPUS,G722,PCMU,PCMA",
        "outbound_codec_prefs": "OPUS,G722,PCMU,PCMA", "bind_server_ip": "auto", "external_rtp_ip": cfg.ipv4,
        "external_sip_ip": cfg.ipv4, "unroll_loops": "true", "outbound_caller_name": "FreeSWITCH",
        "outbound_caller_id": "0000000000", "call_debug": "false", "console_loglevel": "info",
        "default_areacode": "918", "default_country": "US", "presence_privacy": "false",
        "internal_sip_port": "5060", "external_sip_port": "5080",
    }


def _duration(seconds: float) -> dict[str, int]:
    """switch_core_measure_time: years/days/hours/minutes/seconds/ms/us of an uptime."""
    us = int(seconds * 1_000_000)
    s = us // 1_000_000
    return {"years": s // 31_536_000, "days": s % 31_536_000 // 86400, "hours": s % 86400 // 3600,
            "minutes": s % 3600 // 60, "seconds": s % 60, "milliseconds": us // 1000 % 1000,
            "microseconds": us % 1000}


def _xml_text(text: str) -> str:
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")


def _rows_xml(rows: list[dict], count: bool) -> str:
    """show ... as xml: show_as_xml_callback's <result>/<row row_id> tree, printed by switch_xml_toxml."""
    if count:
        return f'<result row_count="{len(rows)}"></result>\n'
    if not rows:
        return '<result row_count="0"/>\n'
    out = [f'<result row_count="{len(rows)}">\n']
    for i, row in enumerate(rows, 1):
        out.append(f'  <row row_id="{i}">\n')
        out += [f"    <{k}>{_xml_text(str(v))}</{k}>\n" for k, v in row.items()]
        out.append("  </row>\n")
    out.append("</result>\n")
    return "".join(out)


class InfoCommands:
    """The handlers; ``api`` is the :class:`~.cmd_api.ApiCommands` they are registered into."""

    def __init__(self, api) -> None:
        self.api = api
        self.switch: "SimSwitch" = api.switch
        self.globals = global_vars(self.switch)

    def table(self) -> dict[str, Callable[[str], str]]:
        return {
            "status": self.status, "json": self.json_api, "switchname": self.hostname, "hostname": self.hostname,
            "uptime": self.uptime, "global_getvar": self.global_getvar, "module_exists": self.module_exists,
            "show": self.show, "help": self.help, "reloadxml": self.reloadxml, "uuid_park": self.uuid_park,
            "uuid_hold": self.uuid_hold,
        }

    # -- status ------------------------------------------------------------------------
    def _uptime_s(self) -> float:
        return max(0.0, time.time() - self.switch.started_at)

    def status(self, arg: str) -> str:
        """status_function: plural "s" only when the count is not 1 ("1 minute", as captured)."""
        sw = self.switch
        d = _duration(self._uptime_s())
        units = [(d["years"], "year"), (d["days"], "day"), (d["hours"], "hour"), (d["minutes"], "minute"),
                 (d["seconds"], "second"), (d["milliseconds"], "millisecond"), (d["microseconds"], "microsecond")]
        up = ", ".join(f"{n} {unit}{'' if n == 1 else 's'}" for n, unit in units)
        return (
            f"UP {up}\n"
            f"FreeSWITCH (Version {VERSION_HUMAN}) is ready\n"
            f"{sw.session_count} session(s) since startup\n"
            f"{len(sw.channels)} session(s) - peak {sw.peak}, last 5min {sw.peak} \n"
            f"0 session(s) per Sec out of max {sw.config.sessions_per_second}, peak 0, last 5min 0 \n"
            f"{sw.config.max_sessions} session(s) max\n"
            "min idle cpu 0.00/99.00\n"
            "Current Stack Size/Max 240K/8192K\n"
        )

    def _json_status(self) -> dict:
        """json_status_function, field for field."""
        sw = self.switch
        return {
            "systemStatus": "ready", "uptime": _duration(self._uptime_s()), "version": VERSION_HUMAN,
            "sessions": {
                "count": {"total": sw.session_count, "active": len(sw.channels), "peak": sw.peak,
                          "peak5Min": sw.peak, "limit": sw.config.max_sessions},
                "rate": {"current": 0, "max": sw.config.sessions_per_second, "peak": 0, "peak5Min": 0},
            },
            "idleCPU": {"used": 0, "allowed": 99},
            "stackSizeKB": {"current": 240, "max": 8192},
        }

    def json_api(self, arg: str) -> str:
        """json_function + switch_json_api_execute: the request echoed with status and response."""
        if not arg:
            return "-ERR No JSON supplied.\n"
        try:
            request = json.loads(arg)
        except ValueError:
            return "-ERR Parse error.\n"
        if not isinstance(request, dict):
            return "-ERR Parse error.\n"
        command = request.get("command")
        if command == "status" and "data" in request:
            request["status"] = "success"
            request["response"] = self._json_status()
        else:  # the only JSON api the sim has is "status"
            request["status"] = "error"
            request["message"] = "Invalid request or non-existant command"
            request["response"] = None
        pretty = str(request.get("format", "")).lower() == "pretty"
        if pretty:  # cJSON_Print: tabs
            return json.dumps(request, indent="\t", separators=(",", ":\t"), ensure_ascii=False) + "\n"
        return json.dumps(request, separators=(",", ":"), ensure_ascii=False) + "\n"  # cJSON_PrintUnformatted

    # -- the switch ----------------------------------------------------------------------
    def hostname(self, arg: str) -> str:
        return self.switch.config.hostname  # no newline (hostname_api_function, switchname_api_function)

    def uptime(self, arg: str) -> str:
        scale = UPTIME_SCALE.get(arg.lower())
        if scale is None:
            return f"-USAGE: {UPTIME_SYNTAX}\n"
        return f"{int(self._uptime_s() * 1_000_000) // scale}\n"

    def global_getvar(self, arg: str) -> str:
        if not arg:  # switch_core_dump_variables
            return "".join(f"{k}={v}\n" for k, v in self.globals.items())
        return self.globals.get(arg, "")

    def module_exists(self, arg: str) -> str:
        if not arg:
            return ""
        return "true" if arg in MODULES else "false"

    def reloadxml(self, arg: str) -> str:
        self.switch.fire("RELOADXML")
        return "+OK [Success]\n"

    # -- show / help -------------------------------------------------------------------
    def _rows(self, what: str) -> list[dict] | None:
        host = self.switch.config.hostname
        channels = sorted(self.switch.channels.values(), key=lambda c: c.created)
        if what == "channels":
            return [show_row(ch, host) for ch in channels]
        if what in ("calls", "bridged_calls"):
            seen, calls = set(), []
            for ch in channels:
                if ch.uuid in seen:
                    continue
                seen.add(ch.uuid)
                other = self.switch.find(ch.bridged_to) or self.switch.find(ch.loopback_peer)
                if other is None and what == "bridged_calls":
                    continue
                row = show_row(ch, host)
                if other is not None:
                    seen.add(other.uuid)
                    for k, v in show_row(other, host).items():
                        row[f"b_{k}"] = v
                calls.append(row)
            return calls
        if what == "registrations":
            return []
        return None

    def show(self, arg: str) -> str:
        """show_function: rows as delim/csv (default ","), json or a count (``\\nN total.\\n``)."""
        argv = arg.split(" ") if arg else []
        argv += [None] * (6 - len(argv))
        command = argv[0]
        if not command:
            return f"-USAGE: {SHOW_SYNTAX}\n"
        as_ = argv[2] if argv[2] and (argv[1] or "").lower() == "as" else None
        low = command.lower()
        if low.startswith("status"):
            return self.status("")
        if low.startswith("help"):
            return self._help_rows()
        count = (argv[1] or "").lower() == "count" and low in ("calls", "registrations", "channels")
        if count and argv[2] and argv[3] and argv[2].lower() == "as":
            as_ = argv[3]
        rows = self._rows(low)
        if low == "channels" and (argv[1] or "").lower() == "like":
            like = (argv[2] or "").replace("%", "").lower()
            rows = [r for r in rows if any(like in str(r[k]).lower() for k in
                                           ("uuid", "name", "cid_name", "cid_num", "presence_data", "accountcode"))]
            if argv[4] and (argv[3] or "").lower() == "as":
                as_ = argv[4]
        if rows is None:
            return f"-USAGE: {SHOW_SYNTAX}\n"
        fmt = (as_ or "delim").lower()
        if fmt in ("delim", "csv"):
            if count:
                return f"\n{len(rows)} total.\n"
            delim = "," if as_ is None else (argv[3] or ",")
            if not rows:
                return "\n0 total.\n"
            columns = list(rows[0].keys())
            lines = [delim.join(columns)] + [delim.join(str(r.get(c, "")) for c in columns) for r in rows]
            return "\n".join(lines) + f"\n\n{len(rows)} total.\n"
        if fmt == "json":
            if count:
                return json.dumps({"row_count": len(rows), "rows": []}, separators=(",", ":"))
            if not rows:
                return '{"row_count": 0}\n'
            return json.dumps({"row_count": len(rows), "rows": rows}, separators=(",", ":"))
        if fmt == "xml":
            return _rows_xml(rows, count)
        return f"-ERR Cannot find format {as_}\n"

    def _help_rows(self) -> str:
        names = sorted(self.api.table)
        return "".join(f"{n},{','.join(API_HELP.get(n, ('', 'simulator control (sim only)', 'sim')))}\n"
                       for n in names)

    def help(self, arg: str) -> str:
        # help_function runs show_function("help ...") whose strchr(command, ' ') never finds the
        # argument (already split off): `help <cmd>` lists every command too, without the heading.
        return ("" if arg else "\nValid Commands:\n\n") + self._help_rows()

    # -- channel control -----------------------------------------------------------------
    def uuid_park(self, arg: str) -> str:
        if not arg:
            return "-USAGE: <uuid>\n"
        ch = self.switch.find(arg)
        if ch is None or not ch.alive:
            return "-ERR No such channel!\n"
        # switch_ivr_park_session: the channel goes to CS_PARK on its next media frame (e_timing:
        # CHANNEL_UNPARK and CHANNEL_PARK 20 ms after the reply)
        step = self.switch.config.timing.seconds("media_step_ms")
        if step > 0:
            self.switch.spawn(self._park_later, ch, self.switch.clock.real(step))
        else:
            self.switch.transfer(ch, PARK_STATE, "inline")
        return "+OK\n"

    def _park_later(self, ch, delay: float) -> None:
        gevent.sleep(delay)
        if ch.alive:
            self.switch.transfer(ch, PARK_STATE, "inline")

    def uuid_hold(self, arg: str) -> str:
        """uuid_hold_function; the sim's legs never report callstate HELD (like the loopback leg of the
        capture), so ``off`` fails on a live channel and ``toggle`` always holds an active one."""
        argv = arg.split(" ") if arg else []
        if not argv or not argv[0]:
            return f"-USAGE: {HOLD_SYNTAX}\n-ERR Operation failed\n"
        mode = argv[0].lower()
        target = argv[1] if mode in ("off", "toggle") and len(argv) > 1 else (argv[0] if mode not in ("off", "toggle")
                                                                               else "")
        ch = self.switch.find(target)
        if ch is None:  # switch_ivr_*hold_uuid: no session, status stays SUCCESS
            return "+OK Success\n"
        if mode == "off":
            return "-ERR Operation failed\n"  # switch_ivr_unhold: "Call is not on hold"
        if mode == "toggle" and ch.call_state != CallState.ACTIVE:
            return "+OK Success\n"
        self._hold(ch)
        return "+OK Success\n"

    def _hold(self, ch) -> None:
        """switch_ivr_hold: CHANNEL_HOLD, and hold music to the bridged partner."""
        self.switch.fire_channel("CHANNEL_HOLD", ch)
        ch.note(self.switch.clock.now(), "hold")
        partner = self.switch.find(ch.bridged_to)
        music = ch.variables.get("hold_music") or self.globals.get("hold_music")
        if partner is not None and music:
            self.switch.queue_message(partner.uuid, Message("execute", app="playback", arg=music))

"""Builders for the FreeSWITCH command strings the switch adapter sends (pure).

Everything a caller passes in ends up inside one ESL command line, so every
piece is checked here before it is joined. What FreeSWITCH does with the line
(sources: mod_event_socket.c ``parse_command``/``read_packet``; mod_commands.c
syntax strings; switch_event.c ``switch_event_create_brackets``;
switch_utils.c ``switch_separate_string``):

* A command ends at the first CR or LF; following ``Name: value`` lines
  become headers of the command and an empty line ends it. A CR/LF in any
  argument would therefore inject headers or a second command: refused
  everywhere (as is every other control character).
* API arguments are split on spaces (``switch_separate_string(' ')``). A UUID,
  variable name, cause, path or number that contains a space would shift the
  other arguments: refused. Only originate variable values may hold spaces,
  and they are wrapped in single quotes as the originate docs require.
* Originate variables: ``{a=1,b=2}`` for all legs, ``[a=1]`` per leg. The
  block ends at the matching bracket, values are split on ``,`` (escape a
  comma as ``\\,``), quotes and backslashes are interpreted at two levels (the
  space split and the comma split). We escape commas, quote values with spaces,
  and refuse the characters whose meaning changes between the two levels
  (``'``, ``\\``, brackets) plus ``${`` (variable/API expansion).
"""
from __future__ import annotations

import re
import uuid as uuidlib
from typing import Iterable, Mapping

__all__ = [
    "CommandError", "check_uuid", "check_cause", "check_var_name", "check_token", "check_endpoint",
    "check_path", "format_vars", "originate", "uuid_bridge", "uuid_transfer", "uuid_broadcast",
    "uuid_break", "uuid_kill", "uuid_setvar", "uuid_getvar", "uuid_exists", "uuid_answer",
    "uuid_record", "hupall", "new_uuid", "BROADCAST_LEGS", "uuid_dump", "show_channels", "dial_string",
    "bridge_dial_string", "sendmsg_execute", "set_arg", "playback_arg", "file_string", "check_dial_value",
]


class CommandError(ValueError):
    """A value that cannot be placed safely in an ESL command (would inject or mis-parse)."""


_UUID_RE = re.compile(r"^[A-Za-z0-9][A-Za-z0-9\-_.]{0,127}$")
_CAUSE_RE = re.compile(r"^[A-Z][A-Z0-9_]{1,63}$")
_VAR_RE = re.compile(r"^[A-Za-z_][A-Za-z0-9_\-.]{0,127}$")
_TOKEN_RE = re.compile(r"^[A-Za-z0-9_\-.+*#@:/=%]{1,256}$")
# Dial strings: sofia/gateway/gw/+1415..., user/1001@domain, loopback/9990, error/user_busy.
_ENDPOINT_RE = re.compile(r"^[A-Za-z0-9_\-]+/[A-Za-z0-9_\-.+*#@:/=%;]{1,512}$")
_PATH_RE = re.compile(r"^[^\s'\"\\{}\[\]|&]{1,1024}$")
_CTRL_RE = re.compile(r"[\x00-\x1f\x7f]")
_APP_RE = re.compile(r"^[a-z][a-z0-9_]{0,63}$")
# One value placed into a dial-string template (number, skill, proxy id): no '/', '@', ',', '|',
# ':' or ';' that would change the gateway, domain, endpoint list or parameters.
_DIAL_VALUE_RE = re.compile(r"^[A-Za-z0-9_\-.+*#]{1,128}$")
_FIELD_RE = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")

BROADCAST_LEGS = ("aleg", "bleg", "both")


def new_uuid() -> str:
    return str(uuidlib.uuid4())


def _no_ctrl(value: str, what: str) -> str:
    if not isinstance(value, str):
        raise CommandError(f"{what} must be a string, not {type(value).__name__}")
    if _CTRL_RE.search(value):
        raise CommandError(f"{what} contains a control character (CR/LF would inject ESL lines): {value!r}")
    return value


def _match(regex: re.Pattern[str], value: object, what: str) -> str:
    text = _no_ctrl(str(value) if isinstance(value, int) and not isinstance(value, bool) else value, what)  # type: ignore[arg-type]
    if not regex.match(text):
        raise CommandError(f"invalid {what}: {text!r}")
    return text


def check_uuid(value: str) -> str:
    return _match(_UUID_RE, value, "channel uuid")


def check_cause(value: str) -> str:
    return _match(_CAUSE_RE, value, "hangup cause")


def check_var_name(value: str) -> str:
    return _match(_VAR_RE, value, "variable name")


def check_token(value: str, what: str = "argument") -> str:
    return _match(_TOKEN_RE, value, what)


def check_endpoint(value: str) -> str:
    return _match(_ENDPOINT_RE, value, "endpoint / dial string")


def check_path(value: str, what: str = "path") -> str:
    return _match(_PATH_RE, value, what)


def _var_value(value: object) -> str:
    if isinstance(value, bool):
        text = "true" if value else "false"
    elif isinstance(value, (int, float)):
        text = str(value)
    elif isinstance(value, str):
        text = value
    else:
        raise CommandError(f"variable value must be str/int/float/bool, not {type(value).__name__}")
    _no_ctrl(text, "variable value")
    for bad in ("'", "\\", "{", "}", "[", "]", "<", ">", "${"):
        if bad in text:
            raise CommandError(f"variable value contains {bad!r}, which originate cannot carry safely: {text!r}")
    text = text.replace(",", "\\,")
    if " " in text or text == "":
        # switch_separate_string(' ') keeps a quoted span together and strips the quotes.
        text = f"'{text}'"
    return text


def format_vars(variables: Mapping[str, object] | None, brackets: str = "{}") -> str:
    """``{name=value,...}`` (or ``[...]`` for per-leg variables); empty string when none."""
    if not variables:
        return ""
    open_, close = brackets
    parts = [f"{check_var_name(k)}={_var_value(v)}" for k, v in variables.items()]
    return open_ + ",".join(parts) + close


def _app_token(app: str, args: str | None) -> str:
    name = _match(_APP_RE, app, "application name")
    if not args:
        return f"&{name}()"
    _no_ctrl(args, "application arguments")
    for bad in ("'", "\\", "(", ")"):
        if bad in args:
            raise CommandError(f"application arguments contain {bad!r}: {args!r}")
    token = f"&{name}({args})"
    # originate splits on spaces: quote the whole token when the args hold one.
    return f"'{token}'" if " " in args else token


def originate(endpoint: str, *, uuid: str, app: str | None = "park", app_args: str | None = None,
              extension: str | None = None, dialplan: str | None = None, context: str | None = None,
              variables: Mapping[str, object] | None = None, leg_variables: Mapping[str, object] | None = None,
              cid_name: str | None = None, cid_num: str | None = None, timeout_s: int | None = None) -> str:
    """``originate {origination_uuid=...,vars}[leg vars]<endpoint> &app(args)|<exten> [dialplan] [context]``.

    The B part is either an application (``app``/``app_args``) or a dialplan
    extension (``extension`` with optional ``dialplan``/``context``).
    ``timeout_s`` sets ``originate_timeout`` as a variable (the positional
    timeout needs cid name/number placeholders). Caller ID goes in
    ``origination_caller_id_name/number`` variables for the same reason.
    """
    all_vars: dict[str, object] = {"origination_uuid": check_uuid(uuid)}
    if cid_name is not None:
        all_vars["origination_caller_id_name"] = cid_name
    if cid_num is not None:
        all_vars["origination_caller_id_number"] = check_token(cid_num, "caller id number")
    if timeout_s is not None:
        if not isinstance(timeout_s, int) or isinstance(timeout_s, bool) or not 1 <= timeout_s <= 3600:
            raise CommandError(f"originate timeout must be 1..3600 s, got {timeout_s!r}")
        all_vars["originate_timeout"] = timeout_s
    for key, value in (variables or {}).items():
        if key in all_vars and key == "origination_uuid":
            raise CommandError("pass the channel uuid as uuid=, not as a variable")
        all_vars[key] = value
    url = format_vars(all_vars) + format_vars(leg_variables, "[]") + check_endpoint(endpoint)
    if extension is not None:
        parts = [url, check_token(extension, "extension")]
        if dialplan is not None or context is not None:
            parts.append(check_token(dialplan or "XML", "dialplan"))
        if context is not None:
            parts.append(check_token(context, "context"))
        return "originate " + " ".join(parts)
    if app is None:
        raise CommandError("originate needs an application or an extension")
    return f"originate {url} {_app_token(app, app_args)}"


def uuid_bridge(a: str, b: str) -> str:
    return f"uuid_bridge {check_uuid(a)} {check_uuid(b)}"


def uuid_transfer(uuid: str, extension: str, dialplan: str | None = None, context: str | None = None,
                  leg: str | None = None) -> str:
    """``uuid_transfer <uuid> [-bleg|-both] <dest-exten> [<dialplan>] [<context>]`` (mod_commands TRANSFER_SYNTAX)."""
    parts = ["uuid_transfer", check_uuid(uuid)]
    if leg is not None:
        if leg not in ("bleg", "both"):
            raise CommandError(f"transfer leg must be 'bleg' or 'both', got {leg!r}")
        parts.append("-" + leg)
    parts.append(check_token(extension, "extension"))
    if dialplan is not None or context is not None:
        parts.append(check_token(dialplan or "XML", "dialplan"))
    if context is not None:
        parts.append(check_token(context, "context"))
    return " ".join(parts)


def uuid_broadcast(uuid: str, path: str, leg: str = "both") -> str:
    """``uuid_broadcast <uuid> <path> [aleg|bleg|both]`` (mod_commands BROADCAST_SYNTAX)."""
    if leg not in BROADCAST_LEGS:
        raise CommandError(f"broadcast leg must be one of {BROADCAST_LEGS}, got {leg!r}")
    return f"uuid_broadcast {check_uuid(uuid)} {check_path(path, 'playback path')} {leg}"


def uuid_break(uuid: str, all_: bool = False) -> str:
    return f"uuid_break {check_uuid(uuid)}" + (" all" if all_ else "")


def uuid_kill(uuid: str, cause: str | None = None) -> str:
    return f"uuid_kill {check_uuid(uuid)}" + (f" {check_cause(cause)}" if cause else "")


def uuid_setvar(uuid: str, name: str, value: object | None = None) -> str:
    """``uuid_setvar <uuid> <var> [value]``; no value unsets. The value is the rest of the line."""
    cmd = f"uuid_setvar {check_uuid(uuid)} {check_var_name(name)}"
    if value is None:
        return cmd
    text = value if isinstance(value, str) else str(value)
    _no_ctrl(text, "variable value")
    return f"{cmd} {text}"


def uuid_getvar(uuid: str, name: str) -> str:
    return f"uuid_getvar {check_uuid(uuid)} {check_var_name(name)}"


def uuid_exists(uuid: str) -> str:
    return f"uuid_exists {check_uuid(uuid)}"


def uuid_answer(uuid: str) -> str:
    return f"uuid_answer {check_uuid(uuid)}"


def uuid_record(uuid: str, action: str, path: str, limit_s: int | None = None) -> str:
    """``uuid_record <uuid> [start|stop] <path> [<limit>]`` (mod_commands SESS_REC_SYNTAX)."""
    if action not in ("start", "stop"):
        raise CommandError(f"record action must be start or stop, got {action!r}")
    cmd = f"uuid_record {check_uuid(uuid)} {action} {check_path(path, 'recording path')}"
    if limit_s is not None:
        if not isinstance(limit_s, int) or isinstance(limit_s, bool) or limit_s <= 0:
            raise CommandError(f"record limit must be a positive int, got {limit_s!r}")
        cmd += f" {limit_s}"
    return cmd


def hupall(cause: str = "NORMAL_CLEARING", var: str | None = None, value: str | None = None) -> str:
    """``hupall <cause> [<var> <value>]``: hang up every channel (or those with var=value)."""
    cmd = f"hupall {check_cause(cause)}"
    if var is not None:
        if value is None:
            raise CommandError("hupall with a variable needs a value")
        cmd += f" {check_var_name(var)} {check_token(value, 'variable value')}"
    return cmd


def event_subscription(names: Iterable[str], fmt: str = "plain") -> str:
    """``event plain NAME ... [CUSTOM sub::class ...]``."""
    if fmt not in ("plain", "json"):
        raise CommandError(f"event format must be plain or json, got {fmt!r}")
    words = [check_token(n, "event name") for n in names]
    if not words:
        raise CommandError("no event names")
    return f"event {fmt} " + " ".join(words)


def uuid_dump(uuid: str, fmt: str = "json") -> str:
    """``uuid_dump <uuid> [format]`` (mod_commands DUMP_SYNTAX): every header and variable of a channel."""
    if fmt not in ("json", "plain", "xml"):
        raise CommandError(f"dump format must be json, plain or xml, got {fmt!r}")
    return f"uuid_dump {check_uuid(uuid)}" + ("" if fmt == "plain" else f" {fmt}")


def show_channels(fmt: str = "json") -> str:
    """``show channels as <fmt>``: the channels table of core.db (no channel variables)."""
    if fmt not in ("json", "xml", "delim"):
        raise CommandError(f"show format must be json, xml or delim, got {fmt!r}")
    return "show channels" if fmt == "delim" else f"show channels as {fmt}"


def check_dial_value(value: object, what: str = "dial string value") -> str:
    return _match(_DIAL_VALUE_RE, value, what)


def dial_string(template: str, **values: object) -> str:
    """Fill ``{name}`` fields of a dial-string template with checked values.

    Every value must be a plain dial token (digits, letters, ``+*#._-``): a
    number, skill or proxy id can therefore never add a gateway, domain,
    endpoint (``,`` ``|``) or variable block.  The result is an endpoint.
    """
    _no_ctrl(template, "dial string template")
    fields = _FIELD_RE.findall(template)
    missing = [f for f in fields if f not in values]
    if missing:
        raise CommandError(f"dial string template {template!r} needs {missing}")
    checked = {k: check_dial_value(v, f"dial string value {k}") for k, v in values.items() if k in fields}
    text = _FIELD_RE.sub(lambda m: checked[m.group(1)], template)
    return check_endpoint(text)


def bridge_dial_string(endpoint: str, variables: Mapping[str, object] | None = None,
                       leg_variables: Mapping[str, object] | None = None) -> str:
    """``{vars}[leg vars]<endpoint>``: the argument of the ``bridge`` application.

    The same syntax and escaping as ``originate``'s call URL: values such as a
    remote center's token or proxy id become originate variables, checked so
    that none can close the block or start another variable or endpoint.
    """
    return format_vars(variables) + format_vars(leg_variables, "[]") + check_endpoint(endpoint)


def set_arg(name: str, value: object) -> str:
    """``<var>=<value>``: the argument of the ``set`` application (the value is the rest of the line)."""
    text = value if isinstance(value, str) else _var_value(value)
    _no_ctrl(text, "variable value")
    if "${" in text:
        raise CommandError(f"variable value contains '${{' (expansion): {text!r}")
    return f"{check_var_name(name)}={text}"


def playback_arg(path: str) -> str:
    """A file for ``playback``: a path, ``tone_stream://``/``local_stream://`` URL or ``file_string://``."""
    return check_path(path, "playback path")


def file_string(paths: Iterable[str]) -> str:
    """``file_string://a!b!c``: mod_dptools plays the files in a row; ``!`` separates them."""
    items = [check_path(p, "playback path") for p in paths]
    if not items:
        raise CommandError("file_string needs at least one file")
    for p in items:
        if "!" in p:
            raise CommandError(f"a file in file_string cannot contain '!': {p!r}")
    return "file_string://" + "!".join(items)


def sendmsg_execute(app: str, arg: str | None = None, *, event_uuid: str | None = None,
                    uuid: str | None = None, loops: int | None = None, lock: bool = False) -> str:
    """``sendmsg [<uuid>]`` + ``call-command: execute`` headers, as one command text.

    mod_event_socket reads the headers up to the empty line; a CR/LF in any
    value would add headers (another command) and is refused.  The argument
    travels as a header value: control characters are refused there, and
    ``${`` (FreeSWITCH expands variables and API calls in application data);
    the rest of what the application makes of it is for the argument's own builder.
    """
    lines = ["sendmsg" + (f" {check_uuid(uuid)}" if uuid else ""), "call-command: execute",
             f"execute-app-name: {_match(_APP_RE, app, 'application name')}"]
    if arg:
        lines.append(f"execute-app-arg: {_no_expansion(_no_ctrl(arg, 'application arguments'), 'application arguments')}")
    if loops is not None:
        if not isinstance(loops, int) or isinstance(loops, bool) or not 1 <= loops <= 1000:
            raise CommandError(f"loops must be 1..1000, got {loops!r}")
        lines.append(f"loops: {loops}")
    if lock:
        lines.append("event-lock: true")
    if event_uuid is not None:
        lines.append(f"Event-UUID: {check_uuid(event_uuid)}")
    return "\n".join(lines)


def _int(value: object, what: str, low: int, high: int) -> int:
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise CommandError(f"{what} must be an integer {low}..{high}, got {value!r}")
    return value


_DIGITS_RE = re.compile(r"^[0-9*#]{1,16}$|^none$")
# A play_and_get_digits regex is one space-separated argument: no spaces or quotes; ``${`` refused below.
_REGEX_RE = re.compile(r"^[^\s'\"]{1,256}$")


def _no_expansion(text: str, what: str) -> str:
    """FreeSWITCH expands ``${var}`` and ``${api args}`` in application data: refused."""
    if "${" in text:
        raise CommandError(f"{what} contains '${{' (variable/API expansion): {text!r}")
    return text


def play_and_get_digits_arg(min_digits: int, max_digits: int, tries: int, timeout_ms: int, terminators: str,
                            prompt: str, invalid_prompt: str, variable: str, regex: str,
                            digit_timeout_ms: int | None = None) -> str:
    """``<min> <max> <tries> <timeout> <terminators> <file> <invalid_file> <var_name> <regexp> [<digit_timeout>]``.

    mod_dptools splits the argument on spaces: every field is checked to be one word.
    """
    parts = [str(_int(min_digits, "min digits", 0, 128)), str(_int(max_digits, "max digits", 1, 128)),
             str(_int(tries, "tries", 1, 100)), str(_int(timeout_ms, "timeout ms", 1, 3_600_000)),
             _match(_DIGITS_RE, terminators, "terminators"), check_path(prompt, "prompt"),
             check_path(invalid_prompt, "invalid prompt"), check_var_name(variable),
             _no_expansion(_match(_REGEX_RE, regex, "digits regex"), "digits regex")]
    if digit_timeout_ms is not None:
        parts.append(str(_int(digit_timeout_ms, "digit timeout ms", 1, 3_600_000)))
    return " ".join(parts)


def transfer_arg(destination: str, dialplan: str = "XML", context: str = "default") -> str:
    """``<destination_number> [<dialplan> [<context>]]`` (mod_dptools transfer)."""
    return " ".join([check_token(destination, "transfer destination"), check_token(dialplan, "dialplan"),
                     check_token(context, "context")])


def record_arg(path: str, limit_s: int | None = None, silence_thresh: int | None = None,
               silence_hits: int | None = None) -> str:
    """``<path> [<time_limit_secs>] [<silence_thresh>] [<silence_hits>]`` (mod_dptools record)."""
    parts = [check_path(path, "recording path")]
    for value, what in ((limit_s, "time limit"), (silence_thresh, "silence threshold"),
                        (silence_hits, "silence hits")):
        if value is None:
            break
        parts.append(str(_int(value, what, 0, 86_400)))
    return " ".join(parts)


def hangup_arg(cause: str | None) -> str | None:
    """The ``hangup`` application's cause (or none)."""
    return check_cause(cause) if cause else None


def linger(seconds: int | float | None = None) -> str:
    """``linger [<seconds>]``: keep the outbound socket open after the hang-up for the last events."""
    if seconds is None:
        return "linger"
    return f"linger {_int(int(seconds), 'linger seconds', 0, 3600)}"


#: outbound socket: events of this channel only
MYEVENTS = "myevents"
#: outbound socket: the first command, answered with the channel's data
CONNECT = "connect"
#: end the ESL session
EXIT = "exit"


def event_filter(header: str, value: str) -> str:
    """``filter <header> <value>``: only events whose header has this value."""
    return f"filter {check_var_name(header)} {check_token(value, 'filter value')}"


def _one_line(command: str) -> str:
    if not isinstance(command, str) or not command.strip():
        raise CommandError("empty command")
    return _no_ctrl(command, "command")


def api(command: str) -> str:
    """``api <command>``: a built command, checked once more to be one line."""
    return "api " + _one_line(command)


def bgapi(command: str, job_uuid: str) -> str:
    """``bgapi <command>`` with our own ``Job-UUID`` header (mod_event_socket honours it)."""
    return f"bgapi {_one_line(command)}\nJob-UUID: {check_uuid(job_uuid)}"

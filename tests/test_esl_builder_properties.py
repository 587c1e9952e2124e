"""Issue 15 point 7: no value passed to a builder can inject a command, application or variable.

Property tests over esl_dialer.esl.commands: for any text value a builder
either raises CommandError or returns a command that is one line (one frame
for sendmsg), whose value sits in its own slot (the same number of
space-separated arguments, variables or dial-string parts as with a plain
value) and reads back as the value given, parsed the way FreeSWITCH parses
it (switch_event_create_brackets / switch_separate_string: values split on
unescaped commas, ``\\,`` is a comma, single quotes group).
"""
from __future__ import annotations

import re

from hypothesis import given, settings
from hypothesis import strategies as st

from esl_dialer.esl import commands as c
from esl_dialer.esl.commands import CommandError

U1 = "0ca359d5-03f9-41a5-a52d-5921e9ed5d28"
NASTY = "abc 019+*#_-.,;:=@/%!'\"\\{}[]<>()$&|~`\r\n\t\x00\x7f"
values = st.one_of(st.text(max_size=40), st.text(alphabet=NASTY, max_size=40),
                   st.builds(lambda a, b, c_: a + b + c_, st.text(alphabet="ab1", max_size=3),
                             st.sampled_from(["}", "]", ",", "'", "${x}", "&park()", "|", " ", "\n", "\\,"]),
                             st.text(alphabet="ab1=", max_size=3)))
PROPS = settings(max_examples=400, deadline=None)


def one_line(text: str) -> bool:
    return not re.search(r"[\r\n\x00]", text)


def split_args(text: str) -> list[str]:
    """switch_separate_string(' '): spaces split, a single-quoted span stays together (quotes kept)."""
    out, cur, quoted = [], "", False
    for ch in text:
        if ch == "'":
            quoted = not quoted
        if ch == " " and not quoted:
            out.append(cur)
            cur = ""
        else:
            cur += ch
    out.append(cur)
    return out


def parse_vars(block: str) -> dict[str, str]:
    """``{a=1,b='x y',c=p\\,q}`` -> dict, the way originate reads it."""
    assert block[0] in "{[" and block[-1] in "}]"
    parts = re.split(r"(?<!\\),", block[1:-1])
    out = {}
    for part in parts:
        name, _, value = part.partition("=")
        if len(value) >= 2 and value[0] == value[-1] == "'":
            value = value[1:-1]
        out[name] = value.replace("\\,", ",")
    return out


def url_parts(url: str) -> tuple[dict[str, str], dict[str, str], str]:
    """Split ``{vars}[leg vars]endpoint``; the blocks end at the first closing bracket."""
    g = re.fullmatch(r"(\{[^}]*\})?(\[[^\]]*\])?([^{}\[\]]*)", url)
    assert g, url
    return (parse_vars(g.group(1)) if g.group(1) else {}, parse_vars(g.group(2)) if g.group(2) else {},
            g.group(3))


@PROPS
@given(values)
def test_originate_variable_values_stay_one_variable(value):
    try:
        cmd = c.originate("sofia/gateway/gw/15551230000", uuid=U1, variables={"dialer_token": value})
    except CommandError:
        return
    assert one_line(cmd) and "${" not in cmd
    args = split_args(cmd)
    assert len(args) == 3 and args[0] == "originate" and args[2] == "&park()"
    g, legs, endpoint = url_parts(args[1])
    assert g == {"origination_uuid": U1, "dialer_token": value} and legs == {}
    assert endpoint == "sofia/gateway/gw/15551230000"


@PROPS
@given(values)
def test_caller_id_name_stays_one_variable(value):
    try:
        cmd = c.originate("user/1001", uuid=U1, cid_name=value)
    except CommandError:
        return
    args = split_args(cmd)
    assert one_line(cmd) and len(args) == 3
    assert url_parts(args[1])[0] == {"origination_uuid": U1, "origination_caller_id_name": value}


@PROPS
@given(values, values)
def test_remote_token_and_proxy_id_cannot_leave_their_variables(token, proxy_id):
    """The IVR's bridge to a remote center (esl_dialer/ivr/app.py _bridge)."""
    try:
        dial = c.bridge_dial_string(c.dial_string("sofia/gateway/{center}/{skill}", center="remote", skill="sales"),
                                    {"sip_h_X-Dialer-Token": token, "dialer_token": token, "dialer_proxy": proxy_id,
                                     "originate_timeout": 30})
    except CommandError:
        return
    assert one_line(dial) and "${" not in dial
    g, legs, endpoint = url_parts(dial)
    assert g == {"sip_h_X-Dialer-Token": token, "dialer_token": token, "dialer_proxy": proxy_id,
                 "originate_timeout": "30"}
    assert legs == {} and endpoint == "sofia/gateway/remote/sales"


@PROPS
@given(values)
def test_dial_string_values_cannot_add_endpoints_gateways_or_blocks(value):
    try:
        endpoint = c.dial_string("sofia/gateway/remote-center/{skill}", skill=value)
    except CommandError:
        return
    assert endpoint == f"sofia/gateway/remote-center/{value}"
    assert not set(value) & set(",|/@:;{}[]'$& \r\n")


@PROPS
@given(values)
def test_number_in_the_worker_dial_template(value):
    try:
        endpoint = c.dial_string("sofia/gateway/outbound/{number}", number=value)
    except CommandError:
        return
    assert endpoint.split("/") == ["sofia", "gateway", "outbound", value]


@PROPS
@given(st.sampled_from(["playback", "bridge", "set", "hangup", "transfer"]), values)
def test_sendmsg_execute_is_one_frame_with_the_argument_in_its_header(app, arg):
    try:
        frame = c.sendmsg_execute(app, arg, event_uuid=U1)
    except CommandError:
        return
    lines = frame.split("\n")
    expected = ["sendmsg", "call-command: execute", f"execute-app-name: {app}"]
    if arg:
        expected.append(f"execute-app-arg: {arg}")
    assert lines == expected + [f"Event-UUID: {U1}"]
    assert "\r" not in frame and "\x00" not in frame and "${" not in frame


@PROPS
@given(values)
def test_set_argument_sets_one_variable_without_expansion(value):
    try:
        arg = c.set_arg("continue_on_fail", value)
    except CommandError:
        return
    assert arg == f"continue_on_fail={value}" and one_line(arg) and "${" not in arg


@PROPS
@given(values, values)
def test_play_and_get_digits_fields_stay_in_place(prompt, regex):
    try:
        arg = c.play_and_get_digits_arg(1, 4, 3, 5000, "#", prompt, "/snd/invalid.wav", "digits", regex, 3000)
    except CommandError:
        return
    fields = arg.split(" ")
    assert len(fields) == 10 and fields[5] == prompt and fields[8] == regex and fields[7] == "digits"
    assert one_line(arg) and "${" not in arg


@PROPS
@given(values)
def test_playback_and_file_string_paths(path):
    try:
        one = c.playback_arg(path)
    except CommandError:
        one = None
    if one is not None:
        assert one == path and one_line(one) and "${" not in one and " " not in one
    try:
        several = c.file_string([path, "/snd/b.wav"])
    except CommandError:
        return
    assert several == f"file_string://{path}!/snd/b.wav" and several.count("!") == 1


@PROPS
@given(values)
def test_api_commands_keep_their_argument_count(value):
    builders = [
        (lambda v: c.uuid_broadcast(U1, v, "both"), 4, 2),
        (lambda v: c.uuid_kill(U1, v), 3, 2),
        (lambda v: c.uuid_getvar(U1, v), 3, 2),
        (lambda v: c.uuid_record(U1, "start", v), 4, 3),
        (lambda v: c.uuid_transfer(U1, v), 3, 2),
        (lambda v: c.uuid_dump(v), 3, 1),
        (lambda v: c.hupall("NORMAL_CLEARING", "dialer_owner", v), 4, 3),
        (lambda v: c.transfer_arg(v), 3, 0),
        (lambda v: c.record_arg(v, 60, 200, 3), 4, 0),
        (lambda v: c.event_filter("Unique-ID", v), 3, 2),
    ]
    for build, count, slot in builders:
        try:
            cmd = build(value)
        except CommandError:
            continue
        words = cmd.split(" ")
        if value == "" and build is builders[1][0]:  # uuid_kill: no cause given, the switch's default
            assert words == ["uuid_kill", U1]
            continue
        assert one_line(cmd) and len(words) == count and words[slot] == value, (cmd, value)


@PROPS
@given(values)
def test_uuid_setvar_value_is_the_rest_of_one_line(value):
    try:
        cmd = c.uuid_setvar(U1, "dialer_owner", value)
    except CommandError:
        return
    assert one_line(cmd) and cmd == f"uuid_setvar {U1} dialer_owner {value}"


@PROPS
@given(values)
def test_api_and_bgapi_framing(value):
    try:
        line = c.api(value)
    except CommandError:
        line = None
    if line is not None:
        assert one_line(line) and line == f"api {value}"
    try:
        frame = c.bgapi(value, U1)
    except CommandError:
        return
    assert frame.split("\n") == [f"bgapi {value}", f"Job-UUID: {U1}"]


def test_the_escapes_are_used_not_just_refusals():
    """Commas and spaces in a value are carried (escaped / quoted), not refused."""
    assert url_parts(c.bridge_dial_string("user/1001", {"v": "a, b"}))[0] == {"v": "a, b"}
    assert c.originate("user/1001", uuid=U1, cid_name="Acme, Inc").split(" ")[1].startswith(
        "{origination_uuid=" + U1 + ",origination_caller_id_name='Acme\\,")

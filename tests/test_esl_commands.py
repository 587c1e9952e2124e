"""FreeSWITCH command strings built by esl_dialer.esl.commands (X2): exact syntax and injection refusal."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esl_dialer.esl import commands as c
from esl_dialer.esl.commands import CommandError

U1 = "0ca359d5-03f9-41a5-a52d-5921e9ed5d28"
U2 = "14bb429e-32b0-42a7-9c85-99098dfb9f74"


def test_originate_matches_captured_command():
    # The exact line sent to the real FreeSWITCH in a_inbound.script.json (bgapi part).
    cmd = c.originate("loopback/9990", uuid=U1, variables={
        "origination_caller_id_number": 15551230000, "dialer_record_id": 42, "dialer_campaign": "demo"})
    assert cmd == ("originate {origination_uuid=" + U1 + ",origination_caller_id_number=15551230000,"
                   "dialer_record_id=42,dialer_campaign=demo}loopback/9990 &park()")


def test_originate_variants():
    assert c.originate("error/user_busy", uuid=U1) == "originate {origination_uuid=" + U1 + "}error/user_busy &park()"
    assert c.originate("user/1001", uuid=U1, app="bridge", app_args="user/1002") == \
        "originate {origination_uuid=" + U1 + "}user/1001 &bridge(user/1002)"
    assert c.originate("user/1001", uuid=U1, extension="7000", context="default") == \
        "originate {origination_uuid=" + U1 + "}user/1001 7000 XML default"
    assert c.originate("sofia/gateway/gw1/+14155550100", uuid=U1, cid_name="Acme Sales", cid_num="+14155550000",
                       timeout_s=25, leg_variables={"leg_timeout": 20}) == (
        "originate {origination_uuid=" + U1 + ",origination_caller_id_name='Acme Sales',"
        "origination_caller_id_number=+14155550000,originate_timeout=25}[leg_timeout=20]"
        "sofia/gateway/gw1/+14155550100 &park()")
    assert c.originate("user/1001", uuid=U1, app="playback", app_args="/tmp/a b.wav").endswith(
        " '&playback(/tmp/a b.wav)'")


def test_variable_values_are_escaped():
    assert c.format_vars({"a": "x,y", "b": "two words", "c": True, "d": ""}) == \
        "{a=x\\,y,b='two words',c=true,d=''}"
    assert c.format_vars({"a": 1}, "[]") == "[a=1]"
    assert c.format_vars({}) == ""


@pytest.mark.parametrize("value", [
    "a}sofia/gateway/evil/1", "x]y", "it's", "back\\slash", "${system(rm)}", "line\nbreak", "cr\rx", "nul\x00",
    "{nested}", "<enterprise>",
])
def test_variable_values_that_break_originate_syntax_are_refused(value):
    with pytest.raises(CommandError):
        c.format_vars({"v": value})


@pytest.mark.parametrize("name", ["a b", "a=b", "a,b", "x}", "", "1abc", "a\nb"])
def test_bad_variable_names_refused(name):
    with pytest.raises(CommandError):
        c.format_vars({name: "1"})


@pytest.mark.parametrize("endpoint", [
    "sofia/gateway/gw1/1415 5550100", "sofia/gateway/gw1/1415\n", "user/1001,user/1002", "user/1001|user/2",
    "noslash", "sofia/gateway/gw/{x}", "user/10'01", "",
])
def test_bad_endpoints_refused(endpoint):
    with pytest.raises(CommandError):
        c.originate(endpoint, uuid=U1)


def test_uuid_commands():
    assert c.uuid_bridge(U1, U2) == f"uuid_bridge {U1} {U2}"
    assert c.uuid_transfer(U1, "7000") == f"uuid_transfer {U1} 7000"
    assert c.uuid_transfer(U1, "7000", context="default", leg="both") == f"uuid_transfer {U1} -both 7000 XML default"
    assert c.uuid_broadcast(U1, "tone_stream://%(500,0,440)") == \
        f"uuid_broadcast {U1} tone_stream://%(500,0,440) both"
    assert c.uuid_broadcast(U1, "/srv/prompts/hello.wav", "aleg") == f"uuid_broadcast {U1} /srv/prompts/hello.wav aleg"
    assert c.uuid_break(U1) == f"uuid_break {U1}"
    assert c.uuid_break(U1, True) == f"uuid_break {U1} all"
    assert c.uuid_kill(U1) == f"uuid_kill {U1}"
    assert c.uuid_kill(U1, "USER_BUSY") == f"uuid_kill {U1} USER_BUSY"
    assert c.uuid_setvar(U1, "dialer_agent", 1001) == f"uuid_setvar {U1} dialer_agent 1001"
    assert c.uuid_setvar(U1, "dialer_agent") == f"uuid_setvar {U1} dialer_agent"
    assert c.uuid_getvar(U1, "dialer_missing_var") == f"uuid_getvar {U1} dialer_missing_var"
    assert c.uuid_exists(U1) == f"uuid_exists {U1}"
    assert c.uuid_answer(U1) == f"uuid_answer {U1}"
    assert c.uuid_record(U1, "start", "/var/rec/a.wav", 3600) == f"uuid_record {U1} start /var/rec/a.wav 3600"
    assert c.hupall() == "hupall NORMAL_CLEARING"
    assert c.hupall("MANAGER_REQUEST", "dialer_campaign", "demo") == "hupall MANAGER_REQUEST dialer_campaign demo"
    assert c.event_subscription(["CHANNEL_ANSWER", "CUSTOM", "callcenter::info"]) == \
        "event plain CHANNEL_ANSWER CUSTOM callcenter::info"


@pytest.mark.parametrize("call", [
    lambda: c.uuid_bridge(U1, U2 + " extra"),
    lambda: c.uuid_kill(U1, "normal clearing"),
    lambda: c.uuid_kill(U1 + "\nexit"),
    lambda: c.uuid_broadcast(U1, "/tmp/a.wav", "sideways"),
    lambda: c.uuid_broadcast(U1, "/tmp/a b.wav"),
    lambda: c.uuid_transfer(U1, "7000 evil"),
    lambda: c.uuid_transfer(U1, "7000", leg="aleg"),
    lambda: c.uuid_record(U1, "pause", "/tmp/a.wav"),
    lambda: c.uuid_record(U1, "start", "/tmp/a.wav", -1),
    lambda: c.uuid_setvar(U1, "x", "v\r\nexit"),
    lambda: c.hupall("NORMAL_CLEARING", "var"),
    lambda: c.originate("user/1", uuid=U1, app="Bridge"),
    lambda: c.originate("user/1", uuid=U1, app="bridge", app_args="user/2)evil("),
    lambda: c.originate("user/1", uuid=U1, timeout_s=0),
    lambda: c.originate("user/1", uuid=U1, variables={"origination_uuid": U2}),
])
def test_unsafe_arguments_refused(call):
    with pytest.raises(CommandError):
        call()


@settings(max_examples=300, deadline=None)
@given(st.dictionaries(st.from_regex(r"[a-z_][a-z0-9_]{0,10}", fullmatch=True), st.text(max_size=30), max_size=4),
       st.text(max_size=20))
def test_originate_never_emits_a_line_break_or_unbalanced_block(variables, number):
    """Property: whatever the input, the command is one line and the {} block closes where we put it."""
    try:
        cmd = c.originate("sofia/gateway/gw1/" + number, uuid=U1, variables=variables)
    except CommandError:
        return
    assert "\n" not in cmd and "\r" not in cmd
    block = cmd[len("originate "):]
    depth = 0
    for i, ch in enumerate(block):
        if ch == "{":
            depth += 1
        elif ch == "}":
            depth -= 1
            if depth == 0:
                assert block[i + 1:].startswith("sofia/gateway/gw1/")
                break
    assert " " not in block.split("}", 1)[1].split(" &park()")[0]

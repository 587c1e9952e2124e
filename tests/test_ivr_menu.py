"""The pure IVR menu interpreter (SPEC R2, R8): events in, actions out."""
from __future__ import annotations

import json

import pytest
from hypothesis import given, settings, strategies as st

from esl_dialer.ivr.menu import (
    Digits, Hangup, Lookup, LookupDone, Menu, MenuError, MenuRun, MenuStateError, Play, PlayAndGetDigits,
    PlayDone, Remote, RemoteDone, Transfer, load_menu, parse_menu,
)

SAMPLE = "freeswitch/ivr/main.toml"


def simple_menu(**over) -> Menu:
    doc = {
        "name": "t",
        "start": "welcome",
        "defaults": {"tries": 2, "timeout_ms": 1000, "invalid_prompt": "ivr/bad.wav"},
        "nodes": {
            "welcome": {"type": "menu", "prompt": "ivr/welcome.wav",
                        "branches": {"1": "support", "2": "info", "42": "xfer"}, "on_fail": "bye"},
            "info": {"type": "play", "prompt": "ivr/info-{ani}.wav", "next": "bye"},
            "support": {"type": "remote", "center": "remote", "skill": "support", "next": "bye"},
            "xfer": {"type": "transfer", "destination": "1000"},
            "bye": {"type": "hangup", "prompt": "voicemail/vm-goodbye.wav"},
        },
    }
    doc.update(over)
    return Menu.from_dict(doc)


def test_r2_menu_decides_remote_from_dtmf():
    run = MenuRun(simple_menu(), {"ani": "15551230001"})
    action = run.start()
    assert isinstance(action, PlayAndGetDigits)
    # play_and_get_digits: min max tries timeout terminators file invalid_file var regexp digit_timeout
    assert (action.min_digits, action.max_digits, action.tries, action.timeout_ms) == (1, 2, 2, 1000)
    assert action.regex == "^(1|2|42)$"
    assert action.invalid_prompt == "ivr/bad.wav"
    assert run.feed(Digits("1")) == Remote("remote", "support", "support")
    assert run.feed(RemoteDone("callback")) == Hangup("NORMAL_CLEARING", "voicemail/vm-goodbye.wav")
    assert run.finished and run.variables["remote_outcome"] == "callback"
    assert run.path == ["welcome", "support", "bye"]


def test_r2_menu_local_branch_never_goes_remote():
    run = MenuRun(simple_menu(), {"ani": "15551230001"})
    run.start()
    assert run.feed(Digits("2")) == Play("ivr/info-15551230001.wav")
    assert isinstance(run.feed(PlayDone()), Hangup)
    run2 = MenuRun(simple_menu())
    run2.start()
    assert run2.feed(Digits("42")) == Transfer("1000", "XML", "default")


@pytest.mark.parametrize("digits", [None, "", "7", "4"])
def test_r2_invalid_or_no_input_takes_on_fail(digits):
    run = MenuRun(simple_menu())
    run.start()
    assert run.feed(Digits(digits)) == Hangup("NORMAL_CLEARING", "voicemail/vm-goodbye.wav")


def test_r2_missing_on_fail_hangs_up():
    menu = Menu.from_dict({"name": "x", "nodes": {"m": {"type": "menu", "prompt": "a.wav", "branches": {"1": "m"}}}})
    run = MenuRun(menu)
    run.start()
    assert run.feed(Digits(None)) == Hangup("NORMAL_CLEARING", None)


def test_r8_lookup_stores_answer_in_call_variables():
    run = MenuRun(load_menu(SAMPLE), {"ani": "+15551230001"})
    run.start()
    action = run.feed(Digits("1"))
    assert isinstance(action, PlayAndGetDigits) and action.variable == "account"
    lookup = run.feed(Digits("123456"))
    assert isinstance(lookup, Lookup)
    assert "number=%2B15551230001" in lookup.url and "account=123456" in lookup.url
    action = run.feed(LookupDone(True, {"name": "Ann Smith", "vip": True, "ignored": 1}))
    assert action == Remote("remote", "priority", "priority")
    assert run.variables["customer_name"] == "Ann Smith"
    assert run.variables["lookup_ok"] == "true"


def test_r8_lookup_failure_takes_on_error():
    run = MenuRun(load_menu(SAMPLE), {"ani": "1"})
    run.start()
    run.feed(Digits("1"))
    run.feed(Digits("123456"))
    assert run.feed(LookupDone(False)) == Remote("remote", "support", "support")
    assert run.variables["lookup_ok"] == "false"


def test_input_rejects_wrong_length():
    run = MenuRun(load_menu(SAMPLE))
    run.start()
    run.feed(Digits("1"))
    # too short for min_digits=4: goes to on_fail (support)
    assert run.feed(Digits("12")) == Remote("remote", "support", "support")
    assert "account" not in run.variables


def test_feeding_the_wrong_event_is_a_named_error():
    run = MenuRun(simple_menu())
    with pytest.raises(MenuStateError):
        run.feed(Digits("1"))
    run.start()
    with pytest.raises(MenuStateError):
        run.feed(PlayDone())
    with pytest.raises(MenuStateError):
        run.start()


def test_switch_loop_is_bounded():
    menu = Menu.from_dict({"name": "loop", "nodes": {
        "a": {"type": "switch", "variable": "x", "cases": {}, "default": "b"},
        "b": {"type": "switch", "variable": "x", "cases": {}, "default": "a"},
    }})
    assert MenuRun(menu).start() == Hangup("NORMAL_TEMPORARY_FAILURE")


@pytest.mark.parametrize("doc, message", [
    ({}, "name"),
    ({"name": "x"}, "nodes"),
    ({"name": "x", "nodes": {"a": {"type": "dance"}}}, "type"),
    ({"name": "x", "nodes": {"a": {"type": "play", "prompt": "p.wav", "next": "zz"}}}, "unknown node 'zz'"),
    ({"name": "x", "nodes": {"a": {"type": "menu", "prompt": "p.wav", "branches": {"x": "a"}}}}, "not DTMF"),
    ({"name": "x", "nodes": {"a": {"type": "play", "prompt": "has space.wav", "next": "a"}}}, "without spaces"),
    ({"name": "x", "nodes": {"a": {"type": "menu", "prompt": "p", "branches": {"1": "a"}, "tries": 0}}}, "tries"),
    ({"name": "x", "nodes": {"a": {"type": "lookup", "url": "ftp://x", "next": "a"}}}, "http"),
    ({"name": "x", "nodes": {"a": {"type": "remote", "center": "r"}}}, "skill"),
    ({"name": "x", "start": "q", "nodes": {"a": {"type": "hangup"}}}, "start node"),
    ({"name": "x", "nodes": {"a": {"type": "input", "prompt": "p", "variable": "1x", "next": "a"}}}, "identifier"),
])
def test_invalid_menus_are_refused_with_a_clear_message(doc, message):
    with pytest.raises(MenuError, match=message):
        Menu.from_dict(doc)


def test_menu_parses_json_and_toml_alike(tmp_path):
    toml_menu = load_menu(SAMPLE)
    doc = {"name": toml_menu.name, "start": toml_menu.start, "version": toml_menu.version,
           "nodes": {k: v for k, v in toml_menu.nodes.items() if k != "__hangup__"}}
    path = tmp_path / "m.json"
    path.write_text(json.dumps(doc))
    assert load_menu(path) == toml_menu
    with pytest.raises(MenuError, match="not valid JSON"):
        parse_menu(b"{nope")
    with pytest.raises(MenuError, match="cannot read"):
        load_menu(tmp_path / "missing.json")


events = st.one_of(
    st.builds(Digits, st.one_of(st.none(), st.text("0123456789#*", max_size=12))),
    st.builds(PlayDone),
    st.builds(LookupDone, st.booleans(), st.dictionaries(st.sampled_from(["name", "vip"]), st.booleans())),
    st.builds(RemoteDone, st.sampled_from(["bridged", "fallback", "hangup"])),
)


@settings(max_examples=200, deadline=None)
@given(st.lists(events, max_size=20))
def test_interpreter_fuzz_only_actions_or_state_errors(seq):
    """Invariant: any event sequence yields actions or MenuStateError, never anything else."""
    run = MenuRun(load_menu(SAMPLE), {"ani": "1"})
    action = run.start()
    for event in seq:
        try:
            action = run.feed(event)
        except MenuStateError:
            continue
        assert isinstance(action, (Play, PlayAndGetDigits, Lookup, Remote, Transfer, Hangup))

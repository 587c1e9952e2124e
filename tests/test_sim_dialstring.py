"""X2: originate argument parsing (pure functions of the simulator)."""
from __future__ import annotations

import pytest

from esl_dialer.sim.dialstring import DialStringError, parse_app, parse_dialstring, parse_vars, split_args


def test_x2_split_args_keeps_groups_together():
    assert split_args("{a=1,b='x y'}sofia/gateway/gw/1 &bridge({c=2}user/1001) XML default 'John Doe' 123") == [
        "{a=1,b='x y'}sofia/gateway/gw/1", "&bridge({c=2}user/1001)", "XML", "default", "'John Doe'", "123"]
    assert split_args("  a   b ") == ["a", "b"]


def test_x2_parse_vars_quotes_escapes_and_delimiter():
    assert parse_vars("a=1,b='x, y',c=d\\,e") == {"a": "1", "b": "x, y", "c": "d,e"}
    assert parse_vars("^^:a=1,2:b=3") == {"a": "1,2", "b": "3"}
    assert parse_vars("") == {}
    with pytest.raises(DialStringError):
        parse_vars("novalue")
    with pytest.raises(DialStringError):
        parse_vars("a='open")


def test_x2_parse_dialstring_global_and_per_leg():
    ds = parse_dialstring("{origination_uuid=u1,x=1}[y=2]sofia/gateway/gw/1|[y=3,z=4]user/1001")
    assert ds.global_vars == {"origination_uuid": "u1", "x": "1"}
    assert [(leg.url, leg.variables) for leg in ds.legs] == [
        ("sofia/gateway/gw/1", {"y": "2"}), ("user/1001", {"y": "3", "z": "4"})]
    assert ds.legs[1].kind == "user"
    for bad in ("", "{a=1}", "{a=1", "nourl"):
        with pytest.raises(DialStringError):
            parse_dialstring(bad)


def test_x2_parse_app():
    assert parse_app("&park()") == ("park", "")
    assert parse_app("&bridge(user/1001)") == ("bridge", "user/1001")
    assert parse_app("'&playback(/tmp/a b.wav)'") == ("playback", "/tmp/a b.wav")
    assert parse_app("9993") is None

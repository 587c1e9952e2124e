"""`dialer worker` and `dialer agent greeting record`: options, config file, errors."""
from __future__ import annotations

import click
import gevent
import pytest
from click.testing import CliRunner

from controller.cli import main
from esl_dialer.commands.worker import build_settings, parse_hostport
from esl_dialer.messages import DialMode


def test_build_settings_from_options():
    settings, switch, pw = build_settings(
        {"controller": "http://c:5000", "agents": "1001, 1002", "token": "t1,t2", "mode": "power", "ratio": 3.0,
         "switch": "fs:8022", "password": "pw", "data_dir": "/tmp/x"}, None)
    assert [s.agent for s in settings] == ["1001", "1002"] and [s.token for s in settings] == ["t1", "t2"]
    assert settings[0].mode is DialMode.POWER and settings[0].ratio == 3.0
    assert switch == ("fs", 8022) and pw == "pw"
    assert str(settings[1].contingency_path).endswith("contingency-1002.sqlite")
    assert settings[0].endpoint == "user/1001" and settings[0].greeting_path.endswith("/1001.wav")


def test_build_settings_from_toml_with_overrides():
    cfg = {"controller": "http://c", "mode": "predictive", "agent": [
        {"extension": "1001", "token": "a", "greeting": "/g/one.wav"},
        {"extension": "1002", "token": "b", "agent_endpoint": "sofia/gateway/gw/+15550001"}]}
    settings, switch, _ = build_settings({"mode": "progressive"}, cfg)
    assert settings[0].mode is DialMode.PROGRESSIVE  # the command line wins
    assert settings[0].greeting_path == "/g/one.wav" and settings[1].endpoint == "sofia/gateway/gw/+15550001"
    assert switch == ("127.0.0.1", 8021)


@pytest.mark.parametrize("opts,cfg,msg", [
    ({"agents": "1001", "token": "t"}, None, "--controller"),
    ({"controller": "http://c", "agents": "1001,1002", "token": "t"}, None, "one --token per agent"),
    ({"controller": "http://c"}, None, "no agents"),
    ({"controller": "http://c", "agents": "1001,1001", "token": "a,b"}, None, "listed twice"),
    ({"controller": "http://c", "agents": "1001", "token": "a", "mode": "warp"}, None, "mode must be"),
    ({}, {"controller": "http://c", "agent": [{"extension": "1001"}]}, "extension and a token"),
])
def test_build_settings_errors(opts, cfg, msg):
    with pytest.raises(click.ClickException, match=msg):
        build_settings(opts, cfg)


def test_parse_hostport():
    assert parse_hostport("fs") == ("fs", 8021)
    assert parse_hostport("10.0.0.1:9000") == ("10.0.0.1", 9000)
    with pytest.raises(click.BadParameter):
        parse_hostport("fs:x")


def test_cli_help_and_usage_errors(tmp_path):
    runner = CliRunner()
    r = runner.invoke(main, ["worker", "--help"])
    assert r.exit_code == 0 and "Run dialing workers" in r.output
    r = runner.invoke(main, ["worker", "--agents", "1001"])
    assert r.exit_code == 2 and "--controller URL is required" in r.output
    bad = tmp_path / "w.toml"
    bad.write_text("controller = [")
    r = runner.invoke(main, ["worker", "--config", str(bad)])
    assert r.exit_code == 1 and "cannot read" in r.output
    r = runner.invoke(main, ["agent", "greeting", "record", "--help"])
    assert r.exit_code == 0 and "greeting" in r.output


def test_d4_greeting_record_calls_agent_into_recording_extension():
    from esl_dialer import switch as sw
    from esl_dialer.commands.agent import record_greeting
    from esl_dialer.sim import SimConfig, SimSwitch

    sim = SimSwitch(SimConfig(time_scale=0.1), host="127.0.0.1", port=0).start()
    sim.add_user("1001", answer_after_s=0.2)
    sim.dialplan = {**sim.dialplan, "7199": [("answer", ""), ("playback", "tone_stream://%(500,0,800)"),
                                            ("hangup", "NORMAL_CLEARING")]}
    try:
        with sw.Switch("127.0.0.1", sim.port, sim.password) as switch, gevent.Timeout(10):
            uuid = record_greeting(switch, "1001")
            gevent.sleep(0.5)
        ch = sim.history_of(uuid) or sim.channels[uuid]
        assert ch.variables.get("dialer_role") == "greeting"
        assert ch.caller_id_number == "1001"
        assert any(p.file.startswith("tone_stream://") for p in ch.playbacks)  # it ran extension 7199
        with sw.Switch("127.0.0.1", sim.port, sim.password) as switch, gevent.Timeout(10):
            sim.add_user("1002", registered=False)
            with pytest.raises(ValueError, match="did not answer"):
                record_greeting(switch, "1002")
    finally:
        sim.stop()

"""X2: the simulator's TOML call model and the `dialer sim` command."""
from __future__ import annotations

import os
import random
import subprocess
import sys
from pathlib import Path

import pytest
from click.testing import CliRunner

from esl_dialer.sim import SimConfig, SimConfigError, SimSwitch, load_sim_config
from esl_dialer.sim.config import Dist
from esl_dialer.sim.testing import RawEslClient, wait_until

ROOT = Path(__file__).resolve().parent.parent
DEFAULT_TOML = ROOT / "freeswitch" / "sim.toml"


def test_x2_default_toml_loads():
    cfg = load_sim_config(DEFAULT_TOML)
    assert cfg.password == "ClueCon" and cfg.port == 8021
    assert cfg.rule_for("15550001234").rates == {"answer": 1.0}
    assert cfg.rule_for("15559991234").rates == {"busy": 1.0}
    assert cfg.rule_for("4915112345678") is cfg.default_rule
    assert set(cfg.default_rule.rates) == {"answer", "busy", "no_answer", "failed", "machine",
                                          "hangup_while_waiting"}
    assert cfg.users["1001"].answer_after_s == 0.5
    assert cfg.dialplan["7000"] == (("socket", "127.0.0.1:8084 async full"),)
    assert cfg.dialplan["9993"] == (("answer", ""), ("park", ""))  # built-in capture extensions stay


@pytest.mark.parametrize("text,message", [
    ("[sim]\nport = 'x'\n", "sim.port"),
    ("[sim]\nbogus = 1\n", "unknown key"),
    ("[calls]\nanswer = -1\n", "calls.answer"),
    ("[calls]\nring = [5, 1]\n", "calls.ring"),
    ("[calls]\ntalk = {dist = 'weird'}\n", "unknown dist"),
    ("[[numbers]]\nmatch = '('\n", "invalid regex"),
    ("[nonsense]\n", "unknown table"),
    ("[sim]\ntime_scale = 0\n", "time_scale"),
    ("not toml ][", "invalid TOML"),
])
def test_x2_bad_toml_names_the_key(tmp_path, text, message):
    path = tmp_path / "sim.toml"
    path.write_text(text)
    with pytest.raises(SimConfigError, match=message):
        load_sim_config(path)


def test_x2_distributions_bounded_and_seeded():
    rng = random.Random(3)
    for dist in (Dist.parse(5, "x"), Dist.parse([1, 2], "x"),
                 Dist.parse({"dist": "exponential", "mean": 10, "min": 2, "max": 20}, "x"),
                 Dist.parse({"dist": "normal", "mean": 10, "sd": 5, "min": 0}, "x"),
                 Dist.parse({"dist": "lognormal", "mean": 90, "sd": 60, "max": 300}, "x")):
        values = [dist.sample(rng) for _ in range(500)]
        assert min(values) >= max(dist.lo, 0) and max(values) <= dist.hi
    exp = Dist.parse({"dist": "exponential", "mean": 10}, "x")
    mean = sum(exp.sample(rng) for _ in range(4000)) / 4000
    assert 9 < mean < 11


def test_x2_outcome_rates_follow_the_model():
    cfg = SimConfig.from_dict({"calls": {"answer": 0.7, "busy": 0.3}})
    sim = SimSwitch(cfg, port=0)
    outcomes = [sim._plan_for("1234", {}).outcome for _ in range(2000)]
    assert 0.65 < outcomes.count("answer") / 2000 < 0.75
    assert set(outcomes) == {"answer", "busy"}


def test_x2_poisson_inbound_callers_arrive():
    cfg = SimConfig.from_dict({
        "sim": {"time_scale": 0.001, "seed": 5},
        "dialplan": {"6000": ["answer", "park"]},
        "inbound": {"rate_per_minute": 60, "destination": "6000", "patience": 1000, "talk": 1000},
    })
    sim = SimSwitch(cfg, port=0).start()
    try:
        # 60/min with 1 ms per simulated second: ~1 caller per real millisecond
        assert wait_until(lambda: len(sim.history) >= 20, 5)
        ch = sim.history[0]
        assert ch.direction == "inbound" and ch.destination == "6000" and ch.caller_id_number.startswith("1555200")
    finally:
        sim.stop(timeout=2)


def test_x2_cli_has_help():
    from controller.cli import main

    result = CliRunner().invoke(main, ["sim", "--help"])
    assert result.exit_code == 0 and "simulated FreeSWITCH" in result.output


def test_x2_cli_bad_config_is_a_clear_error(tmp_path):
    from controller.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text("[calls]\nanswer = 'x'\n")
    result = CliRunner().invoke(main, ["sim", "--config", str(bad)])
    assert result.exit_code == 1 and "calls.answer" in result.output


@pytest.mark.slow
def test_x2_dialer_sim_process_answers_api_status():
    env = dict(os.environ, PYTHONUNBUFFERED="1")
    proc = subprocess.Popen(
        [sys.executable, "-c", "from controller.cli import main; main()", "sim", "--config", str(DEFAULT_TOML), "--port", "0"],
        stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True, env=env, cwd=ROOT)
    try:
        line = proc.stdout.readline()
        assert "listening on 127.0.0.1:" in line, (line, proc.stderr.read() if proc.poll() is not None else "")
        port = int(line.rsplit(":", 1)[1])
        c = RawEslClient("127.0.0.1", port)
        assert c.auth("ClueCon").reply_text == "+OK accepted"
        assert c.reply("api status").text.startswith("UP 0 years")
        assert c.reply("api originate sofia/gateway/gw/15559990000 &park()").text == "-ERR USER_BUSY\n"
        c.close()
    finally:
        proc.terminate()
        try:
            _, err = proc.communicate(timeout=10)
        except subprocess.TimeoutExpired:
            proc.kill()
            _, err = proc.communicate()
    assert "sim originate" in err  # it logs calls


def test_x2_history_is_bounded():
    sim = SimSwitch(SimConfig.from_dict({"sim": {"history_limit": 3}, "dialplan": {"6001": ["park"]}}), port=0)
    uuids = [sim.inbound_call("6001", f"1555000000{i}") for i in range(5)]
    assert isinstance(sim.history, list) and len(sim.history) <= 4
    assert [ch.uuid for ch in sim.history][-3:] == uuids[2:]
    assert sim.history_of(uuids[0]) is None and sim.history_of(uuids[4]).uuid == uuids[4]
    sim.stop(timeout=1)
    with pytest.raises(SimConfigError, match="history_limit"):
        SimConfig.from_dict({"sim": {"history_limit": 0}})


# --- configuration errors are errors: file, line and the nearest valid key ---------------------------
TYPOS = [
    # (what, TOML text, line, message part, suggestion)
    ("top level", "[sim]\nport = 8021\n\n[cals]\nanswer = 1\n", 4, "cals: unknown table", "calls"),
    ("in [sim]", "[sim]\nport = 8021\ntime_scal = 2   # typo\n", 3, "sim.time_scal: unknown key", "time_scale"),
    ("second [[numbers]]", "[[numbers]]\nmatch = '^1'\n\n[[numbers]]\nmatch = '^2'\ntlak = 3\n", 6,
     "numbers[1].tlak: unknown key", "talk"),
    ("inline table", "[calls]\nring = 2\ntalk = {dist = 'normal', mean = 90, sdd = 5}\n", 3,
     "calls.talk.sdd: unknown key", "sd"),
    ("[users.1001]", "[users.1001]\nanswer_after = 0.5\n[users.'1002']\nanswer_afer = 1\n", 4,
     "users.1002.answer_afer: unknown key", "answer_after"),
    ("unknown table", "[dialplan]\n'6000' = 'park'\n\n[inbond]\nrate_per_minute = 3\n", 4,
     "inbond: unknown table", "inbound"),
    ("dotted key", "sim.heartbeat = 3\n", 1, "sim.heartbeat: unknown key", "heartbeat_s"),
    ("quoted key in [inbound]", "[inbound]\n\"destinaton\" = '7000'\n", 2, "inbound.destinaton: unknown key",
     "destination"),
]


@pytest.mark.parametrize("what,text,line,message,suggestion", TYPOS, ids=[t[0] for t in TYPOS])
def test_a_typo_in_the_config_is_refused_with_file_line_and_nearest_key(tmp_path, what, text, line, message,
                                                                         suggestion):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SimConfigError) as info:
        load_sim_config(path)
    err = info.value
    assert str(err) == f"{path}:{line}: {message}; did you mean {suggestion!r}?"
    assert (err.file, err.line, err.suggestion) == (str(path), line, suggestion)


@pytest.mark.parametrize("text,line,message", [
    ("[sim]\nport = 'x'\n", 2, "sim.port: expected an integer, got 'x'"),
    ("[sim]\nport = 70000\n", 2, "sim.port: must be 0..65535"),
    ("[sim]\nseed = 1\n\ntime_scale = -1\n", 4, "sim.time_scale: must be > 0"),
    ("[calls]\nearly_media = 'yes'\n", 2, "calls.early_media: expected true or false, got 'yes'"),
    ("[[numbers]]\nmatch = '^1'\n[[numbers]]\nmatch = '('\n", 4, "numbers[1].match: invalid regex"),
    ("[calls]\ntalk = {dist = 'normal', mean = 'long', sd = 3}\n", 2, "calls.talk.mean: expected a number"),
    ("[calls]\nbusy = -1\n", 2, "calls.busy: a rate must be a number >= 0"),
    ("[users.1001]\nanswer_after = -2\n", 2, "users.1001.answer_after: must be >= 0"),
    ("[sim]\nacl = [1, 2]\n", 2, "sim.acl: expected a list of strings"),
    ("[calls]\nring = 2\n[calls.x]\n", 3, "calls.x: unknown key"),  # a sub-table is a key too
    ("[sim]\nport = 1\nhost = = 'x'\n", 3, "invalid TOML"),
])
def test_a_bad_value_is_refused_with_file_and_line(tmp_path, text, line, message):
    path = tmp_path / "bad.toml"
    path.write_text(text)
    with pytest.raises(SimConfigError) as info:
        load_sim_config(path)
    assert str(info.value).startswith(f"{path}:{line}: ")
    assert message in str(info.value)


def test_a_shipped_config_loads_and_every_key_is_checked():
    cfg = load_sim_config(DEFAULT_TOML)
    assert cfg.inbound.destination == "7000" and cfg.rules[1].rates == {"busy": 1.0}
    # a key that is a valid name elsewhere is still wrong where it stands
    with pytest.raises(SimConfigError, match="'port' belongs in the \\[sim\\] table"):
        SimConfig.from_dict({"port": 8021})


def test_a_dataclass_backed_table_is_one_line_to_register(monkeypatch):
    """A new [table] is checked by the same rules as soon as it is registered."""
    from dataclasses import dataclass
    from esl_dialer.sim import config

    @dataclass(frozen=True)
    class Extra:
        step_ms: float = 20.0
        jitter: bool = False

    monkeypatch.setitem(config.TABLES, "extra", config.TABLES["inbound"])  # keep the dict's shape restored
    config.register_table("extra", Extra, field_name="inbound")
    cfg = SimConfig.from_dict({"extra": {"step_ms": 40}})
    assert cfg.inbound == Extra(step_ms=40.0)
    with pytest.raises(SimConfigError, match=r"extra\.stepms: unknown key; did you mean 'step_ms'\?"):
        SimConfig.from_dict({"extra": {"stepms": 40}})
    with pytest.raises(SimConfigError, match=r"extra\.jitter: expected true or false"):
        SimConfig.from_dict({"extra": {"jitter": 1}})


def test_a_cli_prints_file_line_and_suggestion_without_traceback(tmp_path):
    from controller.cli import main

    bad = tmp_path / "bad.toml"
    bad.write_text("[sim]\nport = 0\n\n[[numbers]]\nmatch = '^1'\nrign = 2\n")
    result = CliRunner().invoke(main, ["sim", "--config", str(bad)])
    assert result.exit_code != 0
    assert f"{bad}:6: numbers[0].rign: unknown key; did you mean 'ring'?" in result.output
    assert "Traceback" not in result.output and not isinstance(result.exception, SimConfigError)

"""The simulated switch's call model, read from TOML (stdlib ``tomllib``).

Everything here is plain data plus deterministic sampling from a seeded
``random.Random``: no gevent, no sockets.  See ``freeswitch/sim.toml`` for the
documented default.
"""
from __future__ import annotations

import math
import random
import re
import tomllib
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import Any, Mapping

from .timing import REALISTIC, TimingConfig, TimingConfigError, timing_from_dict

OUTCOMES = ("answer", "busy", "no_answer", "failed", "machine", "hangup_while_waiting")

# Hang-up causes FreeSWITCH reports for each failed outcome (switch_types.h).
DEFAULT_FAIL_CAUSE = {
    "busy": "USER_BUSY",
    "no_answer": "NO_ANSWER",
    "failed": "NORMAL_TEMPORARY_FAILURE",
}


class SimConfigError(ValueError):
    """The TOML call model is invalid; the message names the key."""


@dataclass(frozen=True)
class Dist:
    """A duration distribution in (simulated) seconds.

    TOML forms: ``3`` (fixed), ``[1, 8]`` (uniform), or a table
    ``{dist = "exponential", mean = 90, min = 5, max = 600}``; ``dist`` is one
    of fixed, uniform, exponential, normal, lognormal.
    """

    kind: str = "fixed"
    a: float = 0.0
    b: float = 0.0
    lo: float = 0.0
    hi: float = math.inf

    @classmethod
    def parse(cls, value: Any, where: str) -> "Dist":
        if isinstance(value, bool):
            raise SimConfigError(f"{where}: expected a number, a [min, max] pair or a table")
        if isinstance(value, (int, float)):
            if value < 0:
                raise SimConfigError(f"{where}: durations cannot be negative")
            return cls("fixed", float(value))
        if isinstance(value, list):
            if len(value) != 2 or not all(isinstance(v, (int, float)) for v in value) or value[0] > value[1]:
                raise SimConfigError(f"{where}: a list must be [min, max] with min <= max")
            return cls("uniform", float(value[0]), float(value[1]), float(value[0]), float(value[1]))
        if isinstance(value, Mapping):
            kind = value.get("dist", "fixed")
            lo, hi = float(value.get("min", 0.0)), float(value.get("max", math.inf))
            try:
                if kind == "fixed":
                    return cls("fixed", float(value["value"]), 0.0, lo, hi)
                if kind == "uniform":
                    return cls("uniform", float(value["min"]), float(value["max"]), lo, hi)
                if kind == "exponential":
                    return cls("exponential", float(value["mean"]), 0.0, lo, hi)
                if kind in ("normal", "lognormal"):
                    return cls(kind, float(value["mean"]), float(value["sd"]), lo, hi)
            except KeyError as err:
                raise SimConfigError(f"{where}: dist {kind!r} needs {err.args[0]!r}") from err
            raise SimConfigError(f"{where}: unknown dist {kind!r}")
        raise SimConfigError(f"{where}: expected a number, a [min, max] pair or a table")

    def sample(self, rng: random.Random) -> float:
        if self.kind == "fixed":
            value = self.a
        elif self.kind == "uniform":
            value = rng.uniform(self.a, self.b)
        elif self.kind == "exponential":
            value = rng.expovariate(1.0 / self.a) if self.a > 0 else 0.0
        elif self.kind == "normal":
            value = rng.gauss(self.a, self.b)
        else:  # lognormal given by the mean/sd of the resulting durations
            sigma2 = math.log(1 + (self.b / self.a) ** 2) if self.a > 0 else 0.0
            value = rng.lognormvariate(math.log(self.a) - sigma2 / 2, math.sqrt(sigma2)) if self.a > 0 else 0.0
        return min(max(value, self.lo, 0.0), self.hi)


@dataclass(frozen=True)
class NumberRule:
    """Call model for destination numbers matching ``match`` (a regex, searched)."""

    match: str = ""
    rates: Mapping[str, float] = field(default_factory=lambda: {"answer": 1.0})
    ring: Dist = Dist("fixed", 2.0)
    talk: Dist = Dist("fixed", 30.0)
    patience: Dist | None = None  # answered parties hang up if not bridged within this
    machine_talk: Dist = Dist("fixed", 12.0)  # length of an answering machine greeting
    fail_cause: str = "NORMAL_TEMPORARY_FAILURE"
    early_media: bool = False
    dtmf: str = ""  # what the called party presses when prompted

    def matches(self, number: str) -> bool:
        return not self.match or re.search(self.match, number) is not None

    def pick_outcome(self, rng: random.Random) -> str:
        total = sum(self.rates.values())
        if total <= 0:
            return "answer"
        x = rng.random() * total
        for name in OUTCOMES:
            x -= self.rates.get(name, 0.0)
            if x < 0:
                return name
        return "answer"


@dataclass(frozen=True)
class UserPhone:
    """A simulated agent phone reachable as ``user/<ext>``."""

    ext: str
    answer_after_s: float = 0.2
    registered: bool = True
    busy: bool = False
    dtmf: str = ""


@dataclass(frozen=True)
class InboundModel:
    """Callers arriving by themselves (Poisson) at a dialplan destination."""

    rate_per_minute: float = 0.0
    destination: str = "7000"
    caller_id_prefix: str = "1555200"
    dtmf: str = "1#"
    patience: Dist = Dist("fixed", 120.0)
    talk: Dist = Dist("fixed", 60.0)


DEFAULT_DIALPLAN: Mapping[str, tuple[tuple[str, str], ...]] = {
    # The test extensions of the FreeSWITCH used for the captures.
    "9990": (("answer", ""), ("sleep", "1000"), ("hangup", "NORMAL_CLEARING")),
    "9992": (("hangup", "USER_BUSY"),),
    "9993": (("answer", ""), ("park", "")),
    "7000": (("socket", "127.0.0.1:8084 async full"),),
}


@dataclass(frozen=True)
class SimConfig:
    host: str = "127.0.0.1"
    port: int = 8021
    password: str = "ClueCon"
    acl: tuple[str, ...] = ()  # allowed client address prefixes; empty = everyone
    seed: int | None = 1
    time_scale: float = 1.0  # 0.1 makes a simulated 30 s last 3 s
    hostname: str = "sim"
    ipv4: str = "127.0.0.1"
    heartbeat_s: float = 20.0
    max_sessions: int = 1000
    sessions_per_second: int = 30
    playback_default_s: float = 3.0  # length of a playback whose file is not a WAV we can read
    sounds_dir: str = ""
    record_speech_s: float = 5.0  # `record`: the party speaks this long, then is silent (ends on silence_hits)
    say_item_s: float = 0.5  # `say`: length of each sound file the say module would play
    history_limit: int = 100_000  # finished channels kept in SimSwitch.history (oldest dropped)
    default_rule: NumberRule = NumberRule()
    rules: tuple[NumberRule, ...] = ()
    users: Mapping[str, UserPhone] = field(default_factory=dict)
    dialplan: Mapping[str, tuple[tuple[str, str], ...]] = field(default_factory=lambda: dict(DEFAULT_DIALPLAN))
    inbound: InboundModel = InboundModel()
    gateways: tuple[str, ...] = ()  # empty = any gateway name is accepted
    timing: TimingConfig = REALISTIC  # switch-side delays ([timing]; see timing.py)

    def rule_for(self, number: str) -> NumberRule:
        for rule in self.rules:
            if rule.matches(number):
                return rule
        return self.default_rule

    def with_overrides(self, **changes: Any) -> "SimConfig":
        return replace(self, **changes)

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> "SimConfig":
        return _from_dict(data)


def _rule(data: Mapping[str, Any], where: str, base: NumberRule | None = None) -> NumberRule:
    base = base or NumberRule()
    rates = dict(base.rates)
    given = {k: data[k] for k in OUTCOMES if k in data}
    if given:
        for key, value in given.items():
            if not isinstance(value, (int, float)) or isinstance(value, bool) or value < 0:
                raise SimConfigError(f"{where}.{key}: a rate must be a number >= 0")
        rates = {k: float(v) for k, v in given.items()}
    match = data.get("match", base.match)
    try:
        re.compile(match)
    except re.error as err:
        raise SimConfigError(f"{where}.match: invalid regex: {err}") from err
    unknown = set(data) - set(OUTCOMES) - {
        "match", "ring", "talk", "patience", "machine_talk", "fail_cause", "early_media", "dtmf"
    }
    if unknown:
        raise SimConfigError(f"{where}: unknown keys {sorted(unknown)}")
    return NumberRule(
        match=match,
        rates=rates,
        ring=Dist.parse(data["ring"], f"{where}.ring") if "ring" in data else base.ring,
        talk=Dist.parse(data["talk"], f"{where}.talk") if "talk" in data else base.talk,
        patience=Dist.parse(data["patience"], f"{where}.patience") if "patience" in data else base.patience,
        machine_talk=Dist.parse(data["machine_talk"], f"{where}.machine_talk")
        if "machine_talk" in data else base.machine_talk,
        fail_cause=str(data.get("fail_cause", base.fail_cause)).upper(),
        early_media=bool(data.get("early_media", base.early_media)),
        dtmf=str(data.get("dtmf", base.dtmf)),
    )


def _dialplan_entry(value: Any, where: str) -> tuple[tuple[str, str], ...]:
    if isinstance(value, str):
        app, _, arg = value.strip().partition(" ")
        return ((app, arg.strip()),)
    if isinstance(value, list):
        out = []
        for item in value:
            if isinstance(item, str):
                app, _, arg = item.strip().partition(" ")
                out.append((app, arg.strip()))
            elif isinstance(item, list) and len(item) in (1, 2) and all(isinstance(x, str) for x in item):
                out.append((item[0], item[1] if len(item) == 2 else ""))
            else:
                raise SimConfigError(f"{where}: each step is \"app args\" or [app, args]")
        return tuple(out)
    raise SimConfigError(f"{where}: expected \"app args\" or a list of steps")


def _from_dict(data: Mapping[str, Any]) -> SimConfig:
    known = {"sim", "calls", "numbers", "users", "dialplan", "inbound", "timing"}
    unknown = set(data) - known
    if unknown:
        raise SimConfigError(f"unknown sections {sorted(unknown)} (expected {sorted(known)})")
    sim = dict(data.get("sim", {}))
    kwargs: dict[str, Any] = {}
    for key, typ in (
        ("host", str), ("port", int), ("password", str), ("seed", int), ("time_scale", float),
        ("hostname", str), ("ipv4", str), ("heartbeat_s", float), ("max_sessions", int),
        ("sessions_per_second", int), ("playback_default_s", float), ("sounds_dir", str),
        ("history_limit", int), ("record_speech_s", float), ("say_item_s", float),
    ):
        if key in sim:
            value = sim.pop(key)
            try:
                kwargs[key] = typ(value)
            except (TypeError, ValueError) as err:
                raise SimConfigError(f"sim.{key}: expected {typ.__name__}, got {value!r}") from err
    if "acl" in sim:
        kwargs["acl"] = tuple(str(x) for x in sim.pop("acl"))
    if "gateways" in sim:
        kwargs["gateways"] = tuple(str(x) for x in sim.pop("gateways"))
    if sim:
        raise SimConfigError(f"sim: unknown keys {sorted(sim)}")
    if kwargs.get("time_scale", 1.0) <= 0:
        raise SimConfigError("sim.time_scale must be > 0")
    for key in ("record_speech_s", "say_item_s"):
        if kwargs.get(key, 0.0) < 0:
            raise SimConfigError(f"sim.{key} must be >= 0")
    if kwargs.get("history_limit", 1) < 1:
        raise SimConfigError("sim.history_limit must be >= 1")
    default_rule = _rule(data.get("calls", {}), "calls")
    kwargs["default_rule"] = default_rule
    numbers = data.get("numbers", [])
    if not isinstance(numbers, list):
        raise SimConfigError("numbers: expected an array of tables ([[numbers]])")
    kwargs["rules"] = tuple(_rule(r, f"numbers[{i}]", default_rule) for i, r in enumerate(numbers))
    users = {}
    for ext, spec in dict(data.get("users", {})).items():
        if isinstance(spec, (int, float)):
            spec = {"answer_after": spec}
        users[str(ext)] = UserPhone(
            ext=str(ext),
            answer_after_s=float(spec.get("answer_after", 0.2)),
            registered=bool(spec.get("registered", True)),
            busy=bool(spec.get("busy", False)),
            dtmf=str(spec.get("dtmf", "")),
        )
    kwargs["users"] = users
    if "dialplan" in data:
        plan = dict(DEFAULT_DIALPLAN)
        for dest, value in dict(data["dialplan"]).items():
            plan[str(dest)] = _dialplan_entry(value, f"dialplan.{dest}")
        kwargs["dialplan"] = plan
    if "inbound" in data:
        inb = dict(data["inbound"])
        kwargs["inbound"] = InboundModel(
            rate_per_minute=float(inb.get("rate_per_minute", 0.0)),
            destination=str(inb.get("destination", "7000")),
            caller_id_prefix=str(inb.get("caller_id_prefix", "1555200")),
            dtmf=str(inb.get("dtmf", "1#")),
            patience=Dist.parse(inb.get("patience", 120.0), "inbound.patience"),
            talk=Dist.parse(inb.get("talk", 60.0), "inbound.talk"),
        )
    if "timing" in data:
        try:
            kwargs["timing"] = timing_from_dict(dict(data["timing"]))
        except TimingConfigError as err:
            raise SimConfigError(str(err)) from err
    return SimConfig(**kwargs)


def load_sim_config(path: str | Path) -> SimConfig:
    """Read a TOML call model; errors name the file and the key."""
    path = Path(path)
    try:
        with path.open("rb") as fh:
            data = tomllib.load(fh)
    except FileNotFoundError as err:
        raise SimConfigError(f"{path}: no such file") from err
    except tomllib.TOMLDecodeError as err:
        raise SimConfigError(f"{path}: invalid TOML: {err}") from err
    try:
        return _from_dict(data)
    except SimConfigError as err:
        raise SimConfigError(f"{path}: {err}") from err

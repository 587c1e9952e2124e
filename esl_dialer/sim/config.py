"""The simulated switch's call model, read from TOML (stdlib ``tomllib``).

Everything here is plain data plus deterministic sampling from a seeded
``random.Random``: no gevent, no sockets.  See ``freeswitch/sim.toml`` for the
documented default.
"""
from __future__ import annotations

import collections.abc
import difflib
import math
import random
import re
import tomllib
import typing
from dataclasses import dataclass, field, fields, is_dataclass, replace
from pathlib import Path
from typing import Any, Callable, Iterable, Mapping, Union

from ..toml_lines import key_lines, line_of

from .timing import REALISTIC, TimingConfig, TimingConfigError, profile as timing_profile

OUTCOMES = ("answer", "busy", "no_answer", "failed", "machine", "hangup_while_waiting")

# Hang-up causes FreeSWITCH reports for each failed outcome (switch_types.h).
DEFAULT_FAIL_CAUSE = {
    "busy": "USER_BUSY",
    "no_answer": "NO_ANSWER",
    "failed": "NORMAL_TEMPORARY_FAILURE",
}


Key = Union[str, int]


class SimConfigError(ValueError):
    """The TOML call model is invalid.

    ``path`` is where (``("numbers", 1, "talk")``), ``suggestion`` the nearest
    valid key for a typo; :func:`load_sim_config` adds the file and the line:
    ``sim.toml:12: numbers[1].tlak: unknown key; did you mean 'talk'?``.
    """

    def __init__(self, message: str, path: tuple[Key, ...] | str = (), suggestion: str | None = None,
                 file: str | None = None, line: int | None = None) -> None:
        self.message = message
        self.path = (path,) if isinstance(path, str) and path else tuple(path or ())
        self.suggestion, self.file, self.line = suggestion, file, line
        super().__init__(self._text())

    def _text(self) -> str:
        where = dotted(self.path)
        text = f"{where}: {self.message}" if where else self.message
        if self.suggestion:
            text += f"; did you mean {self.suggestion!r}?"
        if self.file:
            text = f"{self.file}:{self.line}: {text}" if self.line else f"{self.file}: {text}"
        return text

    def located(self, file: str, line: int | None) -> "SimConfigError":
        return SimConfigError(self.message, self.path, self.suggestion, file, line)


def dotted(path: tuple[Key, ...]) -> str:
    """("numbers", 1, "talk") -> "numbers[1].talk"."""
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def unknown_key(path: tuple[Key, ...], key: Any, allowed: Iterable[str], what: str = "key") -> SimConfigError:
    """An unknown key, with the nearest allowed one (difflib) as the suggestion."""
    allowed = sorted(str(a) for a in allowed)
    guess = difflib.get_close_matches(str(key), allowed, n=1, cutoff=0.6)
    hint = "" if guess else f" (expected one of: {', '.join(allowed)})"
    return SimConfigError(f"unknown {what}{hint}", path + (key,), guess[0] if guess else None)


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

    KEYS = ("dist", "value", "min", "max", "mean", "sd")  # of the table form
    KINDS = ("fixed", "uniform", "exponential", "normal", "lognormal")

    @classmethod
    def parse(cls, value: Any, where: tuple[Key, ...] | str) -> "Dist":
        if isinstance(value, bool):
            raise SimConfigError("expected a number, a [min, max] pair or a table", where)
        if isinstance(value, (int, float)):
            if value < 0:
                raise SimConfigError("durations cannot be negative", where)
            return cls("fixed", float(value))
        if isinstance(value, list):
            if len(value) != 2 or not all(_is_number(v) for v in value) or value[0] > value[1]:
                raise SimConfigError("a list must be [min, max] with min <= max", where)
            return cls("uniform", float(value[0]), float(value[1]), float(value[0]), float(value[1]))
        if isinstance(value, Mapping):
            path = (where,) if isinstance(where, str) else tuple(where)
            for key, item in value.items():
                if key not in cls.KEYS:
                    raise unknown_key(path, key, cls.KEYS)
                if key != "dist" and not _is_number(item):
                    raise SimConfigError(f"expected a number, got {item!r}", path + (key,))
            kind = value.get("dist", "fixed")
            if kind not in cls.KINDS:
                guess = difflib.get_close_matches(str(kind), cls.KINDS, n=1)
                raise SimConfigError(f"unknown dist {kind!r}", path + ("dist",), guess[0] if guess else None)
            lo, hi = float(value.get("min", 0.0)), float(value.get("max", math.inf))
            try:
                if kind == "fixed":
                    return cls("fixed", float(value["value"]), 0.0, lo, hi)
                if kind == "uniform":
                    return cls("uniform", float(value["min"]), float(value["max"]), lo, hi)
                if kind == "exponential":
                    return cls("exponential", float(value["mean"]), 0.0, lo, hi)
                return cls(kind, float(value["mean"]), float(value["sd"]), lo, hi)
            except KeyError as err:
                raise SimConfigError(f"dist {kind!r} needs {err.args[0]!r}", path) from err
        raise SimConfigError("expected a number, a [min, max] pair or a table", where)

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
    callcenter: "CallcenterConfig" = field(default_factory=lambda: CallcenterConfig())  # defined below
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


def _is_number(value: Any) -> bool:
    return isinstance(value, (int, float)) and not isinstance(value, bool)


# --------------------------------------------------------------------------- TOML -> SimConfig
# Values are converted by the dataclass field's type; every key not a field is refused.
def convert(value: Any, typ: Any, path: tuple[Key, ...]) -> Any:
    """A TOML value as the field type ``typ`` wants it (bool, int, float, str, Dist, tuple[str, ...])."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    if origin is Union or type(typ).__name__ == "UnionType":
        options = [a for a in args if a is not type(None)]
        return convert(value, options[0], path) if len(options) == 1 else value
    if typ is bool:
        if not isinstance(value, bool):
            raise SimConfigError(f"expected true or false, got {value!r}", path)
        return value
    if typ is int:
        if not isinstance(value, int) or isinstance(value, bool):
            raise SimConfigError(f"expected an integer, got {value!r}", path)
        return value
    if typ is float:
        if not _is_number(value):
            raise SimConfigError(f"expected a number, got {value!r}", path)
        return float(value)
    if typ is str:
        if not isinstance(value, str):
            raise SimConfigError(f"expected a string, got {value!r}", path)
        return value
    if typ is Dist:
        return Dist.parse(value, path)
    if origin is tuple and args[-1:] == (Ellipsis,) and args[0] is str:
        if not isinstance(value, list) or not all(isinstance(v, str) for v in value):
            raise SimConfigError(f"expected a list of strings, got {value!r}", path)
        return tuple(value)
    return value


def _is_table_type(typ: Any) -> bool:
    """Fields that are tables of their own (not keys of [sim])."""
    origin, args = typing.get_origin(typ), typing.get_args(typ)
    return (is_dataclass(typ) or origin in (dict, collections.abc.Mapping) or typ is Mapping
            or (origin is tuple and bool(args) and is_dataclass(args[0])))


# Range checks: (table, key) -> (test, what it must be).  Field metadata {"check": (test, text)} works too.
CHECKS: dict[tuple[str, str], tuple[Callable[[Any], bool], str]] = {
    ("sim", "port"): (lambda v: 0 <= v <= 65535, "must be 0..65535"),
    ("sim", "time_scale"): (lambda v: v > 0, "must be > 0"),
    ("sim", "heartbeat_s"): (lambda v: v > 0, "must be > 0"),
    ("sim", "max_sessions"): (lambda v: v >= 1, "must be >= 1"),
    ("sim", "sessions_per_second"): (lambda v: v >= 0, "must be >= 0"),
    ("sim", "playback_default_s"): (lambda v: v >= 0, "must be >= 0"),
    ("sim", "record_speech_s"): (lambda v: v >= 0, "must be >= 0"),
    ("sim", "say_item_s"): (lambda v: v >= 0, "must be >= 0"),
    ("sim", "history_limit"): (lambda v: v >= 1, "must be >= 1"),
    ("inbound", "rate_per_minute"): (lambda v: v >= 0, "must be >= 0"),
    ("users", "answer_after"): (lambda v: v >= 0, "must be >= 0"),
}


def parse_dataclass(cls: type, data: Any, path: tuple[Key, ...], *, base: Any = None,
                    aliases: Mapping[str, str] | None = None, exclude: Iterable[str] = (),
                    fixed: Mapping[str, Any] | None = None) -> Any:
    """A TOML table as an instance of ``cls``: keys are its fields (``aliases`` maps field -> TOML key)."""
    if not isinstance(data, Mapping):
        raise SimConfigError(f"expected a table, got {data!r}", path)
    hints = typing.get_type_hints(cls)
    aliases = aliases or {}
    by_key = {aliases.get(f.name, f.name): f for f in fields(cls) if f.name not in set(exclude)}
    kwargs: dict[str, Any] = dict(fixed or {})
    for key, value in data.items():
        f = by_key.get(key)
        if f is None:
            raise unknown_key(path, key, by_key)
        converted = convert(value, hints[f.name], path + (key,))
        check = f.metadata.get("check") or CHECKS.get((str(path[0]) if path else "", key))
        if check is not None and _is_number(converted) and not check[0](converted):
            raise SimConfigError(check[1], path + (key,))
        kwargs[f.name] = converted
    try:
        return replace(base, **kwargs) if base is not None else cls(**kwargs)
    except (TypeError, ValueError) as err:
        raise SimConfigError(str(err), path) from err


def _rule(data: Any, path: tuple[Key, ...] | str, base: NumberRule | None = None) -> NumberRule:
    path = (path,) if isinstance(path, str) else path
    if not isinstance(data, Mapping):
        raise SimConfigError("expected a table", path)
    base = base or NumberRule()
    given = {k: v for k, v in data.items() if k in OUTCOMES}
    for key, value in given.items():
        if not _is_number(value) or value < 0:
            raise SimConfigError("a rate must be a number >= 0", path + (key,))
    others = {k: v for k, v in data.items() if k not in OUTCOMES}
    keys = [f.name for f in fields(NumberRule) if f.name != "rates"]
    for key in others:
        if key not in keys:
            raise unknown_key(path, key, [*keys, *OUTCOMES])
    rule = parse_dataclass(NumberRule, others, path, base=base, exclude=("rates",))
    try:
        re.compile(rule.match)
    except re.error as err:
        raise SimConfigError(f"invalid regex: {err}", path + ("match",)) from err
    rates = {k: float(v) for k, v in given.items()} if given else dict(base.rates)
    return replace(rule, rates=rates, fail_cause=rule.fail_cause.upper())


def _dialplan_entry(value: Any, where: tuple[Key, ...] | str) -> tuple[tuple[str, str], ...]:
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
                raise SimConfigError("each step is \"app args\" or [app, args]", where)
        return tuple(out)
    raise SimConfigError("expected \"app args\" or a list of steps", where)


def sim_keys() -> dict[str, str]:
    """[sim] keys: the SimConfig fields that are not tables of their own."""
    hints = typing.get_type_hints(SimConfig)
    return {f.name: f.name for f in fields(SimConfig) if not _is_table_type(hints[f.name])}


def _sim_table(data: Any, path: tuple[Key, ...]) -> dict[str, Any]:
    keys = sim_keys()
    if not isinstance(data, Mapping):
        raise SimConfigError("expected a table", path)
    for key in data:
        if key not in keys:
            raise unknown_key(path, key, keys)
    cfg = parse_dataclass(SimConfig, data, path, exclude=[f.name for f in fields(SimConfig) if f.name not in keys])
    return {k: getattr(cfg, k) for k in data}


def _calls_table(data: Any, path: tuple[Key, ...]) -> dict[str, Any]:
    return {"default_rule": _rule(data, path)}


def _numbers_table(data: Any, path: tuple[Key, ...], default_rule: NumberRule) -> dict[str, Any]:
    if not isinstance(data, list):
        raise SimConfigError("expected an array of tables ([[numbers]])", path)
    return {"rules": tuple(_rule(r, path + (i,), default_rule) for i, r in enumerate(data))}


def _users_table(data: Any, path: tuple[Key, ...]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise SimConfigError("expected a table of extensions ([users.1001])", path)
    users = {}
    for ext, spec in data.items():
        if _is_number(spec):
            spec = {"answer_after": spec}
        users[str(ext)] = parse_dataclass(UserPhone, spec, path + (ext,), aliases={"answer_after_s": "answer_after"},
                                          exclude=("ext",), fixed={"ext": str(ext)})
    return {"users": users}


def _dialplan_table(data: Any, path: tuple[Key, ...]) -> dict[str, Any]:
    if not isinstance(data, Mapping):
        raise SimConfigError("expected a table of destinations", path)
    plan = dict(DEFAULT_DIALPLAN)
    for dest, value in data.items():
        plan[str(dest)] = _dialplan_entry(value, path + (dest,))
    return {"dialplan": plan}


# Top-level tables of the TOML file: name -> parser(data, path) -> SimConfig keyword arguments.
TABLES: dict[str, Callable[..., dict[str, Any]]] = {
    "sim": _sim_table,
    "calls": _calls_table,
    "numbers": _numbers_table,
    "users": _users_table,
    "dialplan": _dialplan_table,
    "callcenter": lambda data, path: _callcenter_table(data, path),
    "timing": lambda data, path: _timing_table(data, path),
}


# -- [callcenter]: mod_callcenter's callcenter.conf ------------------------------------------
@dataclass(frozen=True)
class CallcenterQueue:
    """A <queue> of mod_callcenter's callcenter.conf (the params, ``-`` written ``_``; "" = unset)."""

    strategy: str = "longest-idle-agent"
    moh_sound: str = ""
    time_base_score: str = "queue"
    tier_rules_apply: bool = False
    tier_rule_wait_second: int = 0
    tier_rule_wait_multiply_level: bool = False
    tier_rule_no_agent_no_wait: bool = True
    discard_abandoned_after: int = 60
    abandoned_resume_allowed: bool = False
    max_wait_time: int = 0
    max_wait_time_with_no_agent: int = 0
    max_wait_time_with_no_agent_time_reached: int = 5
    record_template: str = ""
    ring_progressively_delay: int = 0
    skip_agents_with_external_calls: bool = True
    agent_no_answer_status: str = "On Break"


@dataclass(frozen=True)
class CallcenterAgent:
    """An <agent> of callcenter.conf (loaded as ``agent add`` + ``agent set``)."""

    name: str = ""
    type: str = "callback"
    contact: str = ""
    status: str = ""
    max_no_answer: int = 0
    wrap_up_time: int = 0
    reject_delay_time: int = 0
    busy_delay_time: int = 0
    no_answer_delay_time: int = 0


@dataclass(frozen=True)
class CallcenterTier:
    """A <tier> of callcenter.conf."""

    queue: str = ""
    agent: str = ""
    level: int = 1
    position: int = 1


# conf/vanilla/autoload_configs/callcenter.conf.xml, the queue of c_callcenter.jsonl
VANILLA_CALLCENTER_QUEUES: Mapping[str, CallcenterQueue] = {
    "support@default": CallcenterQueue(
        moh_sound="local_stream://moh", time_base_score="system", tier_rule_wait_second=300,
        tier_rule_wait_multiply_level=True, tier_rule_no_agent_no_wait=False),
}


@dataclass(frozen=True)
class CallcenterConfig:
    """``[callcenter]``: mod_callcenter's settings, queues, agents and tiers.

    Giving ``queues`` replaces the vanilla ``support@default`` (like writing
    one's own callcenter.conf)."""

    agent_originate_timeout: int = 60
    queues: Mapping[str, CallcenterQueue] = field(default_factory=lambda: dict(VANILLA_CALLCENTER_QUEUES))
    agents: tuple[CallcenterAgent, ...] = ()
    tiers: tuple[CallcenterTier, ...] = ()


def _callcenter_table(data: Any, path: tuple[Key, ...]) -> dict[str, Any]:
    """``[callcenter]``: settings, ``[callcenter.queues."<name>"]``, ``[[callcenter.agents]]``, ``[[callcenter.tiers]]``."""
    if not isinstance(data, Mapping):
        raise SimConfigError("expected a table", path)
    allowed = [f.name for f in fields(CallcenterConfig)]
    kwargs: dict[str, Any] = {}
    for key, value in data.items():
        where = path + (key,)
        if key == "agent_originate_timeout":
            if isinstance(value, bool) or not isinstance(value, int) or value <= 0:
                raise SimConfigError("expected an integer > 0", where)
            kwargs[key] = value
        elif key == "queues":
            if not isinstance(value, Mapping):
                raise SimConfigError('expected tables [callcenter.queues."<name>"]', where)
            kwargs[key] = {str(name): parse_dataclass(CallcenterQueue, spec, where + (name,))
                           for name, spec in value.items()}
        elif key in ("agents", "tiers"):
            cls = CallcenterAgent if key == "agents" else CallcenterTier
            if not isinstance(value, list):
                raise SimConfigError(f"expected an array of tables ([[callcenter.{key}]])", where)
            kwargs[key] = tuple(parse_dataclass(cls, item, where + (i,)) for i, item in enumerate(value))
        else:
            raise unknown_key(path, key, allowed)
    names = set()
    for i, agent in enumerate(kwargs.get("agents", ())):
        where = path + ("agents", i)
        if not agent.name:
            raise SimConfigError("name is required", where)
        if agent.type.lower() not in ("callback", "uuid-standby"):
            raise SimConfigError(f"type: callback or uuid-standby, got {agent.type!r}", where)
        if agent.status and agent.status.lower() not in ("logged out", "available", "available (on demand)",
                                                         "on break"):
            raise SimConfigError(f"status: unknown status {agent.status!r}", where)
        names.add(agent.name)
    queues = kwargs.get("queues", VANILLA_CALLCENTER_QUEUES)
    for i, tier in enumerate(kwargs.get("tiers", ())):
        if tier.queue not in queues or tier.agent not in names:
            raise SimConfigError("queue and agent must be ones defined here", path + ("tiers", i))
    return {"callcenter": CallcenterConfig(**kwargs)}


def _timing_table(data: Any, path: tuple[Key, ...]) -> dict[str, Any]:
    """``[timing]``: ``profile = "realistic"|"ideal"`` plus overrides of TimingConfig's fields (ms >= 0)."""
    if not isinstance(data, Mapping):
        raise SimConfigError("expected a table", path)
    try:
        base = timing_profile(data["profile"] if isinstance(data.get("profile"), str) else "realistic")
    except TimingConfigError as err:
        raise SimConfigError(str(err).split(": ", 1)[-1], path + ("profile",)) from err
    if "profile" in data and not isinstance(data["profile"], str):
        raise SimConfigError(f"expected a string, got {data['profile']!r}", path + ("profile",))
    rest = {k: v for k, v in data.items() if k != "profile"}
    timing = parse_dataclass(TimingConfig, rest, path, base=base, exclude=("profile",))
    for key in rest:
        value = getattr(timing, key)
        if not isinstance(value, bool) and value < 0:
            raise SimConfigError("must be a number of milliseconds >= 0", path + (key,))
    return {"timing": timing}


def register_table(name: str, cls: type, field_name: str | None = None) -> None:
    """A dataclass-backed table: ``[name]`` keys are ``cls``'s fields; the result goes to SimConfig.<field_name>.

    One line per new table, e.g. ``register_table("timing", TimingConfig)``.
    """
    TABLES[name] = lambda data, path: {field_name or name: parse_dataclass(cls, data, path)}


register_table("inbound", InboundModel)


def _from_dict(data: Mapping[str, Any]) -> SimConfig:
    kwargs: dict[str, Any] = {}
    for name, value in data.items():
        if name not in TABLES:
            if name in sim_keys():
                raise SimConfigError(f"{name!r} belongs in the [sim] table", (name,))
            raise unknown_key((), name, TABLES, what="table" if isinstance(value, (Mapping, list)) else "key")
        if name != "numbers":
            kwargs.update(TABLES[name](value, (name,)))
    if "numbers" in data:
        kwargs.update(TABLES["numbers"](data["numbers"], ("numbers",), kwargs.get("default_rule", NumberRule())))
    return SimConfig(**kwargs)


def load_sim_config(path: str | Path) -> SimConfig:
    """Read a TOML call model; errors are ``file:line: key: message; did you mean 'x'?``."""
    path = Path(path)
    try:
        text = path.read_text(encoding="utf-8")
    except FileNotFoundError as err:
        raise SimConfigError("no such file", file=str(path)) from err
    except (OSError, UnicodeDecodeError) as err:
        raise SimConfigError(f"cannot read: {err}", file=str(path)) from err
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:
        m = re.search(r"\(at line (\d+), column \d+\)", str(err))
        raise SimConfigError(f"invalid TOML: {err}", file=str(path), line=int(m.group(1)) if m else None) from err
    try:
        return _from_dict(data)
    except SimConfigError as err:
        raise err.located(str(path), line_of(key_lines(text), err.path)) from None

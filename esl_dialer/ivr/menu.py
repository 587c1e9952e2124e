"""IVR menus as data, and a pure interpreter (SPEC R2, R3, R8).

A menu is a JSON or TOML document::

    name = "main"
    start = "welcome"
    [defaults]                       # applied to every node that lacks the key
    timeout_ms = 5000
    tries = 3
    invalid_prompt = "ivr/ivr-that_was_an_invalid_entry.wav"
    [nodes.welcome]
    type = "menu"                    # play_and_get_digits + branches on the digits
    prompt = "ivr/ivr-welcome.wav"
    branches = { "1" = "support", "2" = "account" }
    on_fail = "goodbye"              # no valid input after all tries

Node types and their keys:

- ``play``: ``prompt``, ``next``.
- ``menu``: ``prompt``, ``branches`` (digits -> node), ``min_digits``/``max_digits``
  (default from the branch keys), ``tries``, ``timeout_ms``, ``digit_timeout_ms``,
  ``terminators``, ``invalid_prompt``, ``variable``, ``on_fail``.
- ``input``: collects digits into ``variable`` (``regex``, ``min_digits``,
  ``max_digits`` ...), then ``next``; ``on_fail``.
- ``lookup``: ``url`` (``{var}`` placeholders, URL-quoted), ``timeout_s``,
  ``store`` (call variable -> key of the JSON answer), ``next``, ``on_error``.
- ``switch``: ``variable``, ``cases`` (value -> node), ``default``.
- ``remote``: ``center``, ``skill``, ``next`` (after the remote part ends, optional).
- ``transfer``: ``destination``, ``dialplan`` (XML), ``context`` (default).
- ``hangup``: optional ``prompt`` and ``cause``.

The interpreter (:class:`MenuRun`) is a state machine: it is fed events
(:class:`Digits`, :class:`PlayDone`, :class:`LookupDone`, :class:`RemoteDone`)
and returns the next action; it does no I/O, so it is tested without a switch.
Retries of a prompt are FreeSWITCH's own (``play_and_get_digits`` max_tries
plus its invalid-input file); the interpreter sees the final result only.
"""
from __future__ import annotations

import dataclasses
import json
import re
import tomllib
import urllib.parse
from pathlib import Path
from typing import Any, Mapping, Union

#: Cap on nodes executed by one call without caller input: a menu whose
#: ``play``/``switch`` nodes loop on themselves must not spin forever.
MAX_STEPS_WITHOUT_INPUT = 100

IMPLICIT_HANGUP = "__hangup__"
NODE_TYPES = ("play", "menu", "input", "lookup", "switch", "remote", "transfer", "hangup")
DIGIT_TERMINATORS = re.compile(r"^[0-9*#]*$")
_PLACEHOLDER = re.compile(r"\{([A-Za-z_][A-Za-z0-9_]*)\}")
_VARIABLE_NAME = re.compile(r"^[A-Za-z_][A-Za-z0-9_]*$")


class MenuError(ValueError):
    """The menu document is invalid; the message names the node and key."""


class MenuStateError(RuntimeError):
    """The interpreter was fed an event it was not waiting for (a caller bug)."""


# ---------------------------------------------------------------- actions


@dataclasses.dataclass(frozen=True)
class Play:
    prompt: str


@dataclasses.dataclass(frozen=True)
class PlayAndGetDigits:
    """Arguments of mod_dptools ``play_and_get_digits``, in its own order."""

    min_digits: int
    max_digits: int
    tries: int
    timeout_ms: int
    terminators: str
    prompt: str
    invalid_prompt: str
    variable: str
    regex: str
    digit_timeout_ms: int


@dataclasses.dataclass(frozen=True)
class Lookup:
    url: str
    timeout_s: float


@dataclasses.dataclass(frozen=True)
class Remote:
    center: str
    skill: str
    node: str


@dataclasses.dataclass(frozen=True)
class Transfer:
    destination: str
    dialplan: str
    context: str


@dataclasses.dataclass(frozen=True)
class Hangup:
    cause: str = "NORMAL_CLEARING"
    prompt: str | None = None


Action = Union[Play, PlayAndGetDigits, Lookup, Remote, Transfer, Hangup]


# ---------------------------------------------------------------- events


@dataclasses.dataclass(frozen=True)
class Digits:
    """Result of play_and_get_digits: the digits, or ``None`` on failure/timeout."""

    value: str | None


@dataclasses.dataclass(frozen=True)
class PlayDone:
    pass


@dataclasses.dataclass(frozen=True)
class LookupDone:
    ok: bool
    data: Mapping[str, Any] = dataclasses.field(default_factory=dict)


@dataclasses.dataclass(frozen=True)
class RemoteDone:
    """The remote part ended without the call being handed over (fallback done)."""

    outcome: str


Event = Union[Digits, PlayDone, LookupDone, RemoteDone]


# ---------------------------------------------------------------- the document


@dataclasses.dataclass(frozen=True)
class Menu:
    name: str
    start: str
    nodes: Mapping[str, Mapping[str, Any]]
    version: str = ""

    @classmethod
    def from_dict(cls, doc: Mapping[str, Any]) -> "Menu":
        if not isinstance(doc, Mapping):
            raise MenuError("a menu must be a JSON object / TOML table")
        name = doc.get("name")
        if not isinstance(name, str) or not name:
            raise MenuError("menu needs a non-empty 'name'")
        raw_nodes = doc.get("nodes")
        if not isinstance(raw_nodes, Mapping) or not raw_nodes:
            raise MenuError(f"menu {name!r} needs a non-empty 'nodes' table")
        defaults = doc.get("defaults") or {}
        if not isinstance(defaults, Mapping):
            raise MenuError(f"menu {name!r}: 'defaults' must be a table")
        nodes = {}
        for node_id, node in raw_nodes.items():
            if not isinstance(node, Mapping):
                raise MenuError(f"menu {name!r} node {node_id!r} must be a table")
            nodes[str(node_id)] = {**defaults, **node}
        start = doc.get("start", next(iter(nodes)))
        nodes.setdefault(IMPLICIT_HANGUP, {"type": "hangup", "cause": "NORMAL_CLEARING"})
        menu = cls(name=name, start=str(start), nodes=nodes, version=str(doc.get("version", "")))
        menu.validate()
        return menu

    def validate(self) -> None:
        if self.start not in self.nodes:
            raise MenuError(f"menu {self.name!r}: start node {self.start!r} does not exist")
        for node_id, node in self.nodes.items():
            _validate_node(self, node_id, node)

    def remote_targets(self) -> set[tuple[str, str]]:
        return {(n["center"], n["skill"]) for n in self.nodes.values() if n.get("type") == "remote"}


def _where(menu: Menu, node_id: str) -> str:
    return f"menu {menu.name!r} node {node_id!r}"


def _need(menu: Menu, node_id: str, node: Mapping[str, Any], key: str, kind=str):
    value = node.get(key)
    if value is None or (kind is str and value == ""):
        raise MenuError(f"{_where(menu, node_id)}: missing {key!r}")
    if not isinstance(value, kind):
        raise MenuError(f"{_where(menu, node_id)}: {key!r} must be {getattr(kind, '__name__', kind)}")
    return value


def _check_target(menu: Menu, node_id: str, key: str, target: Any, required: bool = True) -> None:
    if target is None and not required:
        return
    if not isinstance(target, str) or target not in menu.nodes:
        raise MenuError(f"{_where(menu, node_id)}: {key!r} points at unknown node {target!r}")


def _check_int(menu: Menu, node_id: str, node: Mapping[str, Any], key: str, low: int, high: int) -> None:
    value = node.get(key)
    if value is None:
        return
    if not isinstance(value, int) or isinstance(value, bool) or not low <= value <= high:
        raise MenuError(f"{_where(menu, node_id)}: {key!r} must be an integer in [{low}, {high}]")


def _validate_node(menu: Menu, node_id: str, node: Mapping[str, Any]) -> None:
    kind = node.get("type")
    if kind not in NODE_TYPES:
        raise MenuError(f"{_where(menu, node_id)}: 'type' must be one of {', '.join(NODE_TYPES)}")
    for key, low, high in (("min_digits", 0, 128), ("max_digits", 1, 128), ("tries", 1, 10),
                           ("timeout_ms", 100, 600_000), ("digit_timeout_ms", 100, 600_000)):
        _check_int(menu, node_id, node, key, low, high)
    for key in ("prompt", "invalid_prompt"):
        value = node.get(key)
        # play_and_get_digits splits its arguments on spaces: a path with a
        # space would shift every later argument.
        if value is not None and (not isinstance(value, str) or " " in value):
            raise MenuError(f"{_where(menu, node_id)}: {key!r} must be a file/stream without spaces")
    if "terminators" in node and not (
        isinstance(node["terminators"], str) and DIGIT_TERMINATORS.match(node["terminators"])
    ):
        raise MenuError(f"{_where(menu, node_id)}: 'terminators' must be DTMF characters")
    if kind == "play":
        _need(menu, node_id, node, "prompt")
        _check_target(menu, node_id, "next", node.get("next"))
    elif kind == "menu":
        _need(menu, node_id, node, "prompt")
        branches = _need(menu, node_id, node, "branches", Mapping)
        if not branches:
            raise MenuError(f"{_where(menu, node_id)}: 'branches' is empty")
        for digits, target in branches.items():
            if not re.fullmatch(r"[0-9*#]+", str(digits)):
                raise MenuError(f"{_where(menu, node_id)}: branch key {digits!r} is not DTMF")
            _check_target(menu, node_id, f"branches.{digits}", target)
        _check_target(menu, node_id, "on_fail", node.get("on_fail"), required=False)
    elif kind == "input":
        _need(menu, node_id, node, "prompt")
        variable = _need(menu, node_id, node, "variable")
        if not _VARIABLE_NAME.match(variable):
            raise MenuError(f"{_where(menu, node_id)}: 'variable' must be an identifier")
        if "regex" in node:
            try:
                re.compile(_need(menu, node_id, node, "regex"))
            except re.error as err:
                raise MenuError(f"{_where(menu, node_id)}: bad 'regex': {err}") from None
        _check_target(menu, node_id, "next", node.get("next"))
        _check_target(menu, node_id, "on_fail", node.get("on_fail"), required=False)
    elif kind == "lookup":
        url = _need(menu, node_id, node, "url")
        if not url.startswith(("http://", "https://")):
            raise MenuError(f"{_where(menu, node_id)}: 'url' must be http(s)")
        store = node.get("store", {})
        if not isinstance(store, Mapping) or not all(_VARIABLE_NAME.match(k) for k in store):
            raise MenuError(f"{_where(menu, node_id)}: 'store' maps variable names to answer keys")
        _check_target(menu, node_id, "next", node.get("next"))
        _check_target(menu, node_id, "on_error", node.get("on_error"), required=False)
    elif kind == "switch":
        _need(menu, node_id, node, "variable")
        cases = _need(menu, node_id, node, "cases", Mapping)
        for value, target in cases.items():
            _check_target(menu, node_id, f"cases.{value}", target)
        _check_target(menu, node_id, "default", node.get("default"))
    elif kind == "remote":
        _need(menu, node_id, node, "center")
        _need(menu, node_id, node, "skill")
        _check_target(menu, node_id, "next", node.get("next"), required=False)
    elif kind == "transfer":
        _need(menu, node_id, node, "destination")


def load_menu(path: str | Path) -> Menu:
    """Read a ``.json`` or ``.toml`` menu file; :class:`MenuError` if invalid."""
    path = Path(path)
    try:
        raw = path.read_bytes()
    except OSError as err:
        raise MenuError(f"cannot read menu file {path}: {err.strerror}") from None
    return parse_menu(raw, fmt="toml" if path.suffix == ".toml" else "json", origin=str(path))


def parse_menu(raw: bytes | str, fmt: str = "json", origin: str = "menu") -> Menu:
    text = raw.decode("utf-8") if isinstance(raw, bytes) else raw
    try:
        doc = tomllib.loads(text) if fmt == "toml" else json.loads(text)
    except (ValueError, tomllib.TOMLDecodeError) as err:
        raise MenuError(f"{origin} is not valid {fmt.upper()}: {err}") from None
    return Menu.from_dict(doc)


# ---------------------------------------------------------------- the interpreter


def interpolate(template: str, variables: Mapping[str, Any], quote: bool = False) -> str:
    """Replace ``{name}`` by the call variable (URL-quoted when ``quote``); unknown -> ''."""

    def repl(match: re.Match) -> str:
        value = str(variables.get(match.group(1), ""))
        return urllib.parse.quote(value, safe="") if quote else value

    return _PLACEHOLDER.sub(repl, template)


class MenuRun:
    """One caller's walk through a menu.

    ``start()`` returns the first action; after performing it the caller feeds
    the matching event to ``feed()`` and gets the next action, until a
    :class:`Hangup` or :class:`Transfer` (terminal).  ``variables`` holds the
    call variables (``ani``, ``dnis``, ``uuid`` preset by the app, input and
    look-up answers added on the way) and ``path`` the nodes visited.
    """

    def __init__(self, menu: Menu, variables: Mapping[str, Any] | None = None) -> None:
        self.menu = menu
        self.variables: dict[str, Any] = dict(variables or {})
        self.path: list[str] = []
        self._node_id: str | None = None
        self._waiting: type | None = None
        self.finished = False

    @property
    def node_id(self) -> str | None:
        return self._node_id

    def start(self) -> Action:
        if self._node_id is not None:
            raise MenuStateError("menu already started")
        return self._enter(self.menu.start)

    def feed(self, event: Event) -> Action:
        if self.finished:
            raise MenuStateError("menu already finished")
        if self._waiting is None or not isinstance(event, self._waiting):
            expected = self._waiting.__name__ if self._waiting else "nothing"
            raise MenuStateError(f"node {self._node_id!r} waits for {expected}, got {type(event).__name__}")
        node = self.menu.nodes[self._node_id]
        handler = _ON_EVENT[node["type"]]
        return self._enter(handler(self, node, event))

    # -- moving between nodes

    def _enter(self, node_id: str) -> Action:
        for _ in range(MAX_STEPS_WITHOUT_INPUT):
            self._node_id = node_id
            self.path.append(node_id)
            node = self.menu.nodes[node_id]
            result = _ON_ENTER[node["type"]](self, node)
            if isinstance(result, str):  # an immediate jump (switch)
                node_id = result
                continue
            action, waiting = result
            self._waiting = waiting
            if waiting is None:
                self.finished = True
            return action
        self.finished = True
        return Hangup(cause="NORMAL_TEMPORARY_FAILURE")

    def _digits_action(self, node: Mapping[str, Any], variable: str, regex: str) -> PlayAndGetDigits:
        return PlayAndGetDigits(
            min_digits=int(node.get("min_digits", 1)),
            max_digits=int(node.get("max_digits", 1)),
            tries=int(node.get("tries", 3)),
            timeout_ms=int(node.get("timeout_ms", 5000)),
            terminators=node.get("terminators", "#") or "none",
            prompt=interpolate(node["prompt"], self.variables),
            invalid_prompt=node.get("invalid_prompt") or "silence_stream://250",
            variable=variable,
            regex=regex,
            digit_timeout_ms=int(node.get("digit_timeout_ms", node.get("timeout_ms", 5000))),
        )


def _menu_enter(run: MenuRun, node):
    keys = [str(k) for k in node["branches"]]
    lengths = [len(k) for k in keys]
    node = {"min_digits": min(lengths), "max_digits": max(lengths), **node}
    regex = "^(" + "|".join(re.escape(k) for k in sorted(keys)) + ")$"
    variable = node.get("variable", "dialer_menu_digits")
    return run._digits_action(node, variable, regex), Digits


def _menu_event(run: MenuRun, node, event: Digits) -> str:
    branches = {str(k): v for k, v in node["branches"].items()}
    if event.value is not None and event.value in branches:
        if node.get("variable"):
            run.variables[node["variable"]] = event.value
        return branches[event.value]
    return node.get("on_fail") or _implicit_hangup(run)


def _input_enter(run: MenuRun, node):
    regex = node.get("regex", r"^\d+$")
    return run._digits_action(node, node["variable"], regex), Digits


def _input_event(run: MenuRun, node, event: Digits) -> str:
    value = event.value
    regex = node.get("regex", r"^\d+$")
    lo, hi = int(node.get("min_digits", 1)), int(node.get("max_digits", 1))
    if value is not None and lo <= len(value) <= hi and re.search(regex, value):
        run.variables[node["variable"]] = value
        return node["next"]
    return node.get("on_fail") or _implicit_hangup(run)


def _implicit_hangup(run: MenuRun) -> str:
    """A node with no ``on_fail``: end the call (node added by :meth:`Menu.from_dict`)."""
    return IMPLICIT_HANGUP


def _lookup_event(run: MenuRun, node, event: LookupDone) -> str:
    if not event.ok:
        run.variables["lookup_ok"] = "false"
        return node.get("on_error") or node["next"]
    run.variables["lookup_ok"] = "true"
    for variable, key in (node.get("store") or {}).items():
        value = event.data.get(key)
        if value is not None:
            run.variables[variable] = value if isinstance(value, (str, int, float)) else json.dumps(value)
    return node["next"]


def _switch_enter(run: MenuRun, node) -> str:
    value = run.variables.get(node["variable"])
    cases = {str(k): v for k, v in node["cases"].items()}
    key = str(value).lower() if isinstance(value, bool) else str(value)
    return cases.get(key, node["default"])


def _remote_event(run: MenuRun, node, event: RemoteDone) -> str:
    run.variables["remote_outcome"] = event.outcome
    return node.get("next") or _implicit_hangup(run)


_ON_ENTER = {
    "play": lambda run, node: (Play(interpolate(node["prompt"], run.variables)), PlayDone),
    "menu": _menu_enter,
    "input": _input_enter,
    "lookup": lambda run, node: (
        Lookup(interpolate(node["url"], run.variables, quote=True), float(node.get("timeout_s", 3.0))),
        LookupDone,
    ),
    "switch": _switch_enter,
    "remote": lambda run, node: (Remote(node["center"], node["skill"], run.node_id or ""), RemoteDone),
    "transfer": lambda run, node: (
        Transfer(interpolate(node["destination"], run.variables), node.get("dialplan", "XML"),
                 node.get("context", "default")),
        None,
    ),
    "hangup": lambda run, node: (Hangup(node.get("cause", "NORMAL_CLEARING"), node.get("prompt")), None),
}

_ON_EVENT = {
    "play": lambda run, node, event: node["next"],
    "menu": _menu_event,
    "input": _input_event,
    "lookup": _lookup_event,
    "remote": _remote_event,
}

"""Parsing of FreeSWITCH argument strings: originate, dial strings, variables.

Pure functions; they follow switch_separate_string (quotes group words) and
switch_event_create_brackets (``{a=b,c='x y'}`` with ``\\,`` escapes and the
``^^:`` delimiter override).
"""
from __future__ import annotations

import re
from dataclasses import dataclass, field


class DialStringError(ValueError):
    pass


def split_args(text: str) -> list[str]:
    """Split on spaces outside quotes, braces, brackets and parentheses."""
    out: list[str] = []
    cur: list[str] = []
    depth = 0
    quote: str | None = None
    for ch in text:
        if quote:
            cur.append(ch)
            if ch == quote:
                quote = None
            continue
        if ch in "'\"" :
            quote = ch
            cur.append(ch)
            continue
        if ch in "{[(<":
            depth += 1
        elif ch in "}])>" and depth:
            depth -= 1
        if ch == " " and depth == 0:
            if cur:
                out.append("".join(cur))
                cur = []
            continue
        cur.append(ch)
    if cur:
        out.append("".join(cur))
    return out


def unquote_arg(text: str) -> str:
    if len(text) >= 2 and text[0] == text[-1] and text[0] in "'\"":
        return text[1:-1]
    return text


def parse_vars(body: str) -> dict[str, str]:
    """``a=b,c='x, y',d=e\\,f`` -> dict; ``^^:a=b,c:d=e`` uses ':' as separator."""
    sep = ","
    if body.startswith("^^") and len(body) > 2:
        sep, body = body[2], body[3:]
    items: list[str] = []
    cur: list[str] = []
    quote = None
    i = 0
    while i < len(body):
        ch = body[i]
        if ch == "\\" and i + 1 < len(body) and body[i + 1] == sep:
            cur.append(sep)
            i += 2
            continue
        if quote:
            if ch == quote:
                quote = None
            else:
                cur.append(ch)
        elif ch == "'":
            quote = ch
        elif ch == sep:
            items.append("".join(cur))
            cur = []
        else:
            cur.append(ch)
        i += 1
    if quote:
        raise DialStringError(f"unterminated quote in variables {body[:60]!r}")
    items.append("".join(cur))
    out: dict[str, str] = {}
    for item in items:
        if not item.strip():
            continue
        name, eq, value = item.partition("=")
        if not eq or not name.strip():
            raise DialStringError(f"variable without '=': {item[:60]!r}")
        out[name.strip()] = value
    return out


@dataclass
class Endpoint:
    url: str  # e.g. sofia/gateway/gw1/15551234567, user/1001, loopback/9993, error/user_busy
    variables: dict[str, str] = field(default_factory=dict)  # [per-leg]

    @property
    def kind(self) -> str:
        return self.url.split("/", 1)[0].lower()


@dataclass
class DialString:
    global_vars: dict[str, str]
    legs: list[Endpoint]  # tried in order ('|' failover; ',' treated the same)


def _take_block(text: str, open_ch: str, close_ch: str) -> tuple[str, str]:
    depth = 0
    quote = False
    for i, ch in enumerate(text):
        if ch == "'":
            quote = not quote
        elif not quote and ch == open_ch:
            depth += 1
        elif not quote and ch == close_ch:
            depth -= 1
            if depth == 0:
                return text[1:i], text[i + 1 :]
    raise DialStringError(f"unbalanced {open_ch}{close_ch} in {text[:60]!r}")


def parse_dialstring(text: str) -> DialString:
    text = text.strip()
    if not text:
        raise DialStringError("empty dial string")
    global_vars: dict[str, str] = {}
    while text.startswith("{") or text.startswith("<"):
        body, text = _take_block(text, text[0], "}" if text[0] == "{" else ">")
        global_vars.update(parse_vars(body))
    legs: list[Endpoint] = []
    for part in re.split(r"[|,](?![^\[{]*[\]}])", text):
        part = part.strip()
        if not part:
            continue
        leg_vars: dict[str, str] = {}
        while part.startswith("["):
            body, part = _take_block(part, "[", "]")
            leg_vars.update(parse_vars(body))
        if "/" not in part:
            raise DialStringError(f"invalid endpoint {part[:60]!r}")
        legs.append(Endpoint(part, leg_vars))
    if not legs:
        raise DialStringError("no endpoint in dial string")
    return DialString(global_vars, legs)


_APP_RE = re.compile(r"^&([A-Za-z0-9_]+)(?:\((.*)\))?$", re.S)


def parse_app(text: str) -> tuple[str, str] | None:
    """``&park()`` -> ("park", ""); ``&bridge(user/1001)`` -> ("bridge", "user/1001")."""
    text = unquote_arg(text)
    m = _APP_RE.match(text)
    if not m:
        if text.startswith("&"):
            name, _, arg = text[1:].partition(" ")
            return name, arg
        return None
    return m.group(1), m.group(2) or ""

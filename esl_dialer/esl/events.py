"""Fast, lazy ESL frames and events for the switch adapter (pure: no sockets, no gevent).

Why this module exists: a real FreeSWITCH sends every channel variable with
every channel event (``text/event-plain`` bodies of 3-7 KB, ~150 headers).
greenswitch decodes all of them into a dict for every event, then routes on two
of them. Here the routing keys (Event-Name, Unique-ID, Job-UUID,
Event-Subclass) are found directly in the bytes, and the other headers are
decoded only when a handler first asks for one.

Wire format (mod_event_socket, FreeSWITCH 1.10; see tests/esl-captures):
an outer header block ``Name: value`` lines ended by an empty line, then
exactly ``Content-Length`` bytes of body. An event-plain body is itself a
header block whose values are URL-encoded, optionally followed by
``Content-Length: N``, an empty line and N bytes of nested body (the result
of a BACKGROUND_JOB, for example). Each value is decoded after the lines are
split, never the whole block, so a value holding ``%0A`` stays one value.
"""
from __future__ import annotations

import json
from typing import Any, Iterator, Mapping
from urllib.parse import unquote

#: Largest frame body accepted (DoS guard); FreeSWITCH events are a few KB,
#: a ``show channels as json`` with thousands of calls a few MB.
MAX_BODY_BYTES = 64 * 1024 * 1024
#: Largest outer header block accepted before an empty line arrives.
MAX_HEADER_BYTES = 256 * 1024  # as esl_dialer.esl.codec

CT_EVENT_PLAIN = "text/event-plain"
CT_EVENT_JSON = "text/event-json"
CT_COMMAND_REPLY = "command/reply"
CT_API_RESPONSE = "api/response"
CT_AUTH_REQUEST = "auth/request"
CT_DISCONNECT = "text/disconnect-notice"
CT_RUDE_REJECTION = "text/rude-rejection"
CT_LOG = "log/data"


class ProtocolError(Exception):
    """The peer sent bytes that are not an ESL stream (the connection cannot be resynchronised)."""


def _decode(value: bytes) -> str:
    text = value.decode("utf-8", "replace")
    return unquote(text) if "%" in text else text


def parse_header_block(block: bytes, *, encoded: bool = True) -> dict[str, str]:
    """``Name: value`` lines -> dict; values URL-decoded one by one when ``encoded``.

    Lines without ``": "`` are ignored (they cannot be headers; a garbage line
    must not shift the following ones). The first occurrence of a name wins,
    which matters for event bodies that repeat ``Content-Length``. Decoding
    the block to text first is safe: ``%0A`` only becomes a newline inside
    ``unquote``, after the split.
    """
    headers: dict[str, str] = {}
    for line in block.decode("utf-8", "replace").split("\n"):
        name, sep, value = line.partition(": ")
        if not sep or name in headers:
            continue
        if value.endswith("\r"):
            value = value[:-1]
        headers[name] = unquote(value) if encoded and "%" in value else value
    return headers


class Frame:
    """One non-event frame: a reply, an api response, auth/request, a notice."""

    __slots__ = ("content_type", "headers", "body", "seq")

    def __init__(self, headers: dict[str, str], body: bytes, seq: int = 0) -> None:
        self.headers = headers
        self.content_type = headers.get("Content-Type")
        self.body = body
        self.seq = seq

    @property
    def text(self) -> str:
        """The body as text (api responses), or the Reply-Text of a command/reply."""
        if self.body:
            return self.body.decode("utf-8", "replace")
        return self.headers.get("Reply-Text", "")

    @property
    def data(self) -> str:
        """greenswitch's name for the reply text (its ``authenticate`` reads headers only)."""
        return self.text

    def __repr__(self) -> str:
        return f"Frame({self.content_type!r}, {self.text[:60]!r})"


class Event(Mapping[str, str]):
    """A FreeSWITCH event whose routing keys are read eagerly and the rest lazily.

    Acts as a read-only mapping of the decoded headers (``event["Answer-State"]``,
    ``event.get(...)``), with ``.headers`` for greenswitch-style code.
    ``name``, ``uuid``, ``job_uuid`` and ``subclass`` cost no decoding at all.
    ``body`` is the nested body (a BACKGROUND_JOB result), ``seq`` the adapter's
    receive counter (monotonic per Switch; used for "events after X" waits).
    """

    __slots__ = ("name", "uuid", "job_uuid", "subclass", "body", "seq", "received_at", "_raw", "_hend", "_headers")

    def __init__(self, name: str, uuid: str | None, job_uuid: str | None, subclass: str | None,
                 body: str, raw: bytes | None, hend: int, headers: dict[str, str] | None,
                 seq: int = 0, received_at: float = 0.0) -> None:
        self.name = name
        self.uuid = uuid
        self.job_uuid = job_uuid
        self.subclass = subclass
        self.body = body
        self._raw = raw
        self._hend = hend
        self._headers = headers
        self.seq = seq
        self.received_at = received_at

    # -- construction -----------------------------------------------------
    @classmethod
    def from_plain(cls, raw: bytes, seq: int = 0, received_at: float = 0.0) -> "Event":
        """Build from a ``text/event-plain`` body without decoding it."""
        hend = raw.find(b"\n\n")
        if hend < 0:
            hend = len(raw)
        name = _find_value(raw, b"Event-Name: ", hend) or ""
        uuid = _find_value(raw, b"Unique-ID: ", hend)
        job = subclass = None
        body = ""
        if name == "BACKGROUND_JOB":
            job = _find_value(raw, b"Job-UUID: ", hend)
        elif name == "CUSTOM":
            subclass = _find_value(raw, b"Event-Subclass: ", hend)
        if hend + 2 < len(raw):
            # Nested body after "Content-Length: N\n\n" (switch_event_serialize).
            clen = _find_value(raw, b"Content-Length: ", hend)
            start = hend + 2
            if clen is not None and clen.isdigit():
                body = raw[start:start + int(clen)].decode("utf-8", "replace")
            else:
                body = raw[start:].decode("utf-8", "replace")
        return cls(name, uuid, job, subclass, body, raw, hend, None, seq, received_at)

    @classmethod
    def from_json(cls, raw: bytes, seq: int = 0, received_at: float = 0.0) -> "Event":
        """Build from a ``text/event-json`` body (the result is in ``_body``)."""
        try:
            obj = json.loads(raw)
        except ValueError as exc:
            raise ProtocolError(f"event-json body is not JSON: {exc}") from None
        if not isinstance(obj, dict):
            raise ProtocolError("event-json body is not an object")
        headers = {str(k): v if isinstance(v, str) else json.dumps(v) for k, v in obj.items() if k != "_body"}
        body = obj.get("_body") or ""
        return cls(headers.get("Event-Name", ""), headers.get("Unique-ID"), headers.get("Job-UUID"),
                   headers.get("Event-Subclass"), body if isinstance(body, str) else str(body),
                   None, 0, headers, seq, received_at)

    @classmethod
    def from_headers(cls, headers: Mapping[str, str], body: str = "", seq: int = 0) -> "Event":
        """Build from already decoded headers (tests, the outbound ``connect`` reply)."""
        h = dict(headers)
        return cls(h.get("Event-Name", ""), h.get("Unique-ID"), h.get("Job-UUID"), h.get("Event-Subclass"),
                   body, None, 0, h, seq)

    # -- lazy headers -----------------------------------------------------
    @property
    def headers(self) -> dict[str, str]:
        """All headers, decoded on first access (then cached)."""
        h = self._headers
        if h is None:
            h = self._headers = parse_header_block(self._raw[:self._hend]) if self._raw is not None else {}
        return h

    @property
    def decoded(self) -> bool:
        """True once the full header block has been decoded (for tests and the benchmark)."""
        return self._headers is not None

    def __getitem__(self, key: str) -> str:
        return self.headers[key]

    def __iter__(self) -> Iterator[str]:
        return iter(self.headers)

    def __len__(self) -> int:
        return len(self.headers)

    def variable(self, name: str, default: Any = None) -> Any:
        """A channel variable (``variable_<name>`` header)."""
        return self.headers.get("variable_" + name, default)

    @property
    def channel_key(self) -> str | None:
        """The key handlers and waits route on: Event-Subclass for CUSTOM events, else Event-Name."""
        return self.subclass if self.name == "CUSTOM" else self.name

    def __repr__(self) -> str:
        return f"Event({self.name!r}, uuid={self.uuid!r}, seq={self.seq})"

    # Mapping's __eq__/__hash__ would decode every header; identity is enough.
    __eq__ = object.__eq__
    __hash__ = object.__hash__


def _find_value(raw: bytes, key: bytes, end: int) -> str | None:
    """Value of header ``key`` (given with its ``": "``) in ``raw[:end]``, or None.

    Matches only at the start of a line, so ``variable_Unique-ID: x`` or a
    ``Other-Leg-Unique-ID`` never shadows the real header.
    """
    if raw.startswith(key):
        start = len(key)
    else:
        pos = raw.find(b"\n" + key, 0, end)
        if pos < 0:
            return None
        start = pos + 1 + len(key)
    stop = raw.find(b"\n", start, end)
    if stop < 0:
        stop = end
    return _decode(raw[start:stop])


class StreamParser:
    """Splits an ESL byte stream into (outer headers, body) pairs; bytes in, frames out.

    ``feed(data)`` returns every frame completed by ``data``. Bounded: a header
    block over MAX_HEADER_BYTES or a body over MAX_BODY_BYTES raises
    ProtocolError, as does a malformed Content-Length (the stream can't be
    resynchronised after that; the caller drops the connection).
    """

    __slots__ = ("_buf", "_need")

    def __init__(self) -> None:
        self._buf = bytearray()
        self._need: tuple[dict[str, str], int] | None = None

    @property
    def buffered(self) -> int:
        return len(self._buf)

    def feed(self, data: bytes) -> list[tuple[dict[str, str], bytes]]:
        buf = self._buf
        buf += data
        out: list[tuple[dict[str, str], bytes]] = []
        pos = 0
        n = len(buf)
        while True:
            need = self._need
            if need is not None:
                headers, length = need
                if n - pos < length:
                    break
                out.append((headers, bytes(buf[pos:pos + length])))
                pos += length
                self._need = None
                continue
            # FreeSWITCH's own reader skips stray newlines between frames.
            while pos < n and buf[pos] == 10:
                pos += 1
            end = buf.find(b"\n\n", pos)
            if end < 0:
                if n - pos > MAX_HEADER_BYTES:
                    raise ProtocolError("header block too long without an empty line")
                break
            headers = parse_header_block(bytes(buf[pos:end]))
            pos = end + 2
            clen = headers.get("Content-Length")
            if clen is None:
                out.append((headers, b""))
                continue
            clen = clen.strip()
            if not clen.isdigit():
                raise ProtocolError(f"bad Content-Length {clen[:20]!r}")
            length = int(clen)
            if length > MAX_BODY_BYTES:
                raise ProtocolError(f"body of {length} bytes exceeds the limit")
            self._need = (headers, length)
        if pos:
            del buf[:pos]
        return out

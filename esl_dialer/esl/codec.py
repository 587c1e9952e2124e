"""Sans-IO codec for FreeSWITCH's event-socket (ESL) wire protocol.

Bytes in, frames out (:class:`FrameParser`); values in, bytes out (the
``encode_*`` functions).  No sockets, no gevent: the caller owns the I/O loop,
in the manner of h11.  The formats follow FreeSWITCH 1.10's
``mod_event_socket.c`` (frames), ``switch_event.c`` (``switch_event_serialize``
for ``text/event-plain``, ``switch_event_serialize_json`` for
``text/event-json``) and ``switch_utils.c`` (``switch_url_encode``), checked
against the frames captured from a real FreeSWITCH 1.10.12.

Wire format in one paragraph: a frame is a block of ``Name: value`` lines
ended by an empty line; when the block carries ``Content-Length: N`` exactly
``N`` **bytes** of body follow.  Header values are URL-encoded by FreeSWITCH
where needed (libesl's ``esl_recv_event`` URL-decodes each outer value), so we
decode each value separately once the frame is complete -- never the whole
block, because a decoded ``%0A`` would otherwise forge a line break.
A client->server frame starts with a command line (``api status``,
``sendmsg <uuid>``) that has no colon; parse those with
``FrameParser(commands=True)``.
"""
from __future__ import annotations

import functools
import json
import re
from dataclasses import dataclass, field
from typing import Iterable, Mapping, Union
from urllib.parse import unquote

__all__ = [
    "NEED_DATA",
    "ESLError",
    "ProtocolError",
    "UsageError",
    "Frame",
    "Event",
    "FrameParser",
    "url_encode",
    "url_decode",
    "parse_event",
    "parse_event_plain",
    "parse_event_json",
    "encode_auth_request",
    "encode_command_reply",
    "encode_api_response",
    "encode_event_plain",
    "plain_line",
    "encode_event_json",
    "encode_event_xml",
    "encode_log_data",
    "encode_disconnect_notice",
    "encode_rude_rejection",
    "encode_connect_reply",
    "encode_command",
    "encode_sendmsg",
    "DEFAULT_MAX_HEADER_BYTES",
    "DEFAULT_MAX_BODY_BYTES",
    "DISCONNECT_GOODBYE",
]

# Outer header blocks are tiny except the outbound ``connect`` reply, which
# carries every channel variable (~5 KB in the captures).  256 KiB leaves room
# for channels with many variables and still stops a peer that never sends
# the blank line from growing our buffer without limit.
DEFAULT_MAX_HEADER_BYTES = 256 * 1024
# ``show channels`` on a busy switch can be megabytes; 64 MiB is a DoS guard,
# not a real-world limit.
DEFAULT_MAX_BODY_BYTES = 64 * 1024 * 1024


class _NeedData:
    """Sentinel type returned by :meth:`FrameParser.next_frame`."""

    _instance = None

    def __new__(cls):
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def __repr__(self) -> str:
        return "NEED_DATA"

    def __bool__(self) -> bool:
        return False


NEED_DATA = _NeedData()


class ESLError(Exception):
    """Base of every error this codec raises."""


class ProtocolError(ESLError):
    """The peer sent something that is not valid ESL (the peer misbehaved).

    After a ProtocolError the parser is poisoned: the byte stream has lost
    framing and cannot be resynchronised, so the connection should be closed.
    """


class UsageError(ESLError):
    """The caller misused the codec (a bug on our side, not the peer's)."""


@dataclass(frozen=True)
class Frame:
    """One ESL frame.

    ``headers`` hold the URL-decoded outer header values in wire order (a
    repeated header keeps its last value, as libesl does for most headers).
    ``raw_headers`` keep the values exactly as received.  ``command`` is the
    first line of a client->server frame (``None`` on server->client frames).
    """

    headers: Mapping[str, str]
    body: bytes = b""
    command: str | None = None
    raw_headers: Mapping[str, str] = field(default_factory=dict, compare=False, repr=False)

    @property
    def content_type(self) -> str | None:
        return self.headers.get("Content-Type")

    @property
    def reply_text(self) -> str | None:
        return self.headers.get("Reply-Text")

    @property
    def text(self) -> str:
        """The body as text (FreeSWITCH bodies are UTF-8; bad bytes are replaced)."""
        return self.body.decode("utf-8", "replace")

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    @property
    def is_event(self) -> bool:
        return self.content_type in ("text/event-plain", "text/event-json")

    def event(self) -> "Event":
        """Parse the body of a ``text/event-plain``/``text/event-json`` frame."""
        return parse_event(self)


@dataclass(frozen=True)
class Event:
    """A decoded FreeSWITCH event: its headers and its optional own body.

    A BACKGROUND_JOB carries the command output as the event body (after a
    nested Content-Length in plain events, as ``_body`` in JSON events).
    """

    headers: Mapping[str, str]
    body: str | None = None

    @property
    def name(self) -> str | None:
        return self.headers.get("Event-Name")

    @property
    def unique_id(self) -> str | None:
        return self.headers.get("Unique-ID")

    @property
    def subclass(self) -> str | None:
        return self.headers.get("Event-Subclass")

    def get(self, name: str, default: str | None = None) -> str | None:
        return self.headers.get(name, default)

    def __getitem__(self, name: str) -> str:
        return self.headers[name]


# --------------------------------------------------------------------------
# URL encoding as FreeSWITCH does it (switch_utils.c: switch_url_encode).
# Unsafe characters: "\r\n \"#%&+:;<=>?@[\\]^`{|}", plus control characters
# and every non-ASCII byte.  '/', ',', '(' and ')' stay as they are (the
# captures show "Mon,%2023" and "tone_stream://%25(500,0,440)").
_UNSAFE_CHARS = "\r\n \"#%&+:;<=>?@[\\]^`{|}"
# One C-level search finds whether a value needs encoding at all (most do not).
_UNSAFE_RE = re.compile("[" + re.escape(_UNSAFE_CHARS) + "\\x00-\\x1f\\x7f-\\U0010ffff]+")


def _encode_match(m: "re.Match[str]") -> str:
    return "".join(f"%{b:02X}" for b in m.group().encode("utf-8"))


@functools.lru_cache(maxsize=8192)
def url_encode(value: str) -> str:
    """Encode one header value the way FreeSWITCH serialises events (cached: values repeat a lot)."""
    if _UNSAFE_RE.search(value) is None:
        return value
    return _UNSAFE_RE.sub(_encode_match, value)


def url_decode(value: str) -> str:
    """Decode one header value (``%XX`` only; '+' stays '+', as in libesl)."""
    if "%" not in value:
        return value
    return unquote(value, errors="replace")


# --------------------------------------------------------------------------
class FrameParser:
    """Incremental ESL frame parser.

    Feed bytes with :meth:`receive_data` (``b""`` means end of stream) and pull
    frames with :meth:`next_frame` until it returns :data:`NEED_DATA`.

    The scan position for the end of the header block is remembered between
    calls, so feeding a frame one byte at a time stays O(n).  The buffer is
    bounded: a header block larger than ``max_header_bytes`` or a declared
    body larger than ``max_body_bytes`` raises :class:`ProtocolError`.
    """

    def __init__(
        self,
        *,
        commands: bool = False,
        max_header_bytes: int = DEFAULT_MAX_HEADER_BYTES,
        max_body_bytes: int = DEFAULT_MAX_BODY_BYTES,
    ) -> None:
        if max_header_bytes <= 0 or max_body_bytes < 0:
            raise UsageError("limits must be positive")
        self._commands = commands
        self._max_header = max_header_bytes
        self._max_body = max_body_bytes
        self._buf = bytearray()
        self._scan = 0  # where to resume looking for the blank line
        self._pending: tuple[str | None, list[tuple[str, str]], int] | None = None
        self._eof = False
        self._error: ProtocolError | None = None

    # -- input ------------------------------------------------------------
    def receive_data(self, data: bytes) -> None:
        if self._error is not None:
            raise UsageError("parser already failed with a ProtocolError; close the connection")
        if self._eof:
            raise UsageError("receive_data() after end of stream")
        if not isinstance(data, (bytes, bytearray, memoryview)):
            raise UsageError(f"receive_data() takes bytes, not {type(data).__name__}")
        if not data:
            self._eof = True
            return
        self._buf += data
        limit = self._max_header + self._max_body + 1024
        if len(self._buf) > limit and self._pending is None and self._buf.find(b"\n\n") < 0:
            # Nothing framed yet and more than any legal frame: give up early.
            self._fail(f"receive buffer over {limit} bytes without a complete frame")

    @property
    def trailing_data(self) -> tuple[bytes, bool]:
        """Bytes buffered but not yet framed, and whether EOF was seen."""
        return bytes(self._buf), self._eof

    def _fail(self, message: str) -> None:
        self._error = ProtocolError(message)
        raise self._error

    # -- output -----------------------------------------------------------
    def next_frame(self) -> Union[Frame, _NeedData]:
        if self._error is not None:
            raise UsageError("parser already failed with a ProtocolError; close the connection")
        if self._pending is None:
            head = self._read_head()
            if head is None:
                return self._need_data()
            self._pending = head
        command, pairs, length = self._pending
        if len(self._buf) < length:
            return self._need_data()
        body = bytes(self._buf[:length])
        del self._buf[:length]
        self._pending = None
        self._scan = 0
        raw = dict(pairs)
        headers = {name: url_decode(value) for name, value in pairs}
        return Frame(headers=headers, body=body, command=command, raw_headers=raw)

    def _need_data(self) -> _NeedData:
        if self._eof and (self._buf.strip(b"\r\n") or self._pending is not None):
            self._fail("connection closed in the middle of a frame")
        return NEED_DATA

    def _read_head(self):
        buf = self._buf
        # Blank lines between frames are noise (telnet users, sloppy clients);
        # mod_event_socket skips them too.
        start = 0
        n = len(buf)
        while start < n and buf[start] in (10, 13):
            start += 1
        if start:
            del buf[:start]
            self._scan = max(0, self._scan - start)
        end, sep_len = self._find_blank_line()
        if end < 0:
            if len(buf) > self._max_header:
                self._fail(f"header block longer than {self._max_header} bytes")
            return None
        if end > self._max_header:
            self._fail(f"header block longer than {self._max_header} bytes")
        block = bytes(buf[:end])
        del buf[: end + sep_len]
        self._scan = 0
        return self._parse_head(block)

    def _find_blank_line(self) -> tuple[int, int]:
        """Index of the end of the header block and the separator length.

        Accepts ``\\n\\n`` and ``\\n\\r\\n`` (CRLF clients).  Scanning resumes
        from the remembered position, so repeated calls are O(n) overall.
        """
        buf = self._buf
        pos = max(self._scan - 2, 0)
        while True:
            nl = buf.find(b"\n", pos)
            if nl < 0 or nl + 1 >= len(buf):
                self._scan = max(len(buf) - 1, 0)
                return -1, 0
            nxt = buf[nl + 1]
            if nxt == 10:
                return nl + 1, 1
            if nxt == 13:
                if nl + 2 >= len(buf):
                    self._scan = nl
                    return -1, 0
                if buf[nl + 2] == 10:
                    return nl + 1, 2
            pos = nl + 1

    def _parse_head(self, block: bytes):
        try:
            text = block.decode("utf-8")
        except UnicodeDecodeError as err:
            self._fail(f"header block is not UTF-8: {err}")
        lines = text.split("\n")
        command: str | None = None
        if self._commands:
            command = lines.pop(0).rstrip("\r")
            if not command.strip():
                self._fail("empty command line")
        pairs: list[tuple[str, str]] = []
        for line in lines:
            line = line.rstrip("\r")
            if not line:
                continue
            name, sep, value = line.partition(":")
            if not sep or not name or name != name.strip():
                self._fail(f"malformed header line {line[:80]!r}")
            pairs.append((name, value[1:] if value.startswith(" ") else value))
        length = 0
        for name, value in pairs:
            if name.lower() == "content-length":  # strcasecmp in mod_event_socket
                value = value.strip()
                if not value.isdigit() or not value.isascii():
                    self._fail(f"bad Content-Length {value[:40]!r}")
                length = int(value)
                if length > self._max_body:
                    self._fail(f"Content-Length {length} over the limit {self._max_body}")
        return command, pairs, length


# --------------------------------------------------------------------------
# Event bodies
def parse_event_plain(body: bytes | str) -> Event:
    """Parse a ``text/event-plain`` body: URL-encoded ``Name: value`` lines.

    Each value is decoded after the lines are split.  If the event has its own
    body (BACKGROUND_JOB, some CUSTOM events) a nested ``Content-Length``
    header is followed by a blank line and exactly that many bytes.
    """
    raw = body.encode("utf-8") if isinstance(body, str) else bytes(body)
    sep = raw.find(b"\n\n")
    head = raw if sep < 0 else raw[:sep]
    rest = b"" if sep < 0 else raw[sep + 2 :]
    try:
        text = head.decode("utf-8")
    except UnicodeDecodeError as err:
        raise ProtocolError(f"event headers are not UTF-8: {err}") from err
    headers: dict[str, str] = {}
    for line in text.split("\n"):
        if not line:
            continue
        name, colon, value = line.partition(": ")
        if not colon:
            name, colon, value = line.partition(":")
            if not colon:
                raise ProtocolError(f"malformed event header line {line[:80]!r}")
        headers[name] = url_decode(value) if "%" in value else value
    event_body: str | None = None
    if "Content-Length" in headers:
        clen = headers["Content-Length"]
        if not clen.isdigit() or not clen.isascii():
            raise ProtocolError(f"bad nested Content-Length {clen[:40]!r}")
        n = int(clen)
        if len(rest) < n:
            raise ProtocolError("event body shorter than its nested Content-Length")
        event_body = rest[:n].decode("utf-8", "replace")
    return Event(headers=headers, body=event_body)


def parse_event_json(body: bytes | str) -> Event:
    """Parse a ``text/event-json`` body; the event's own body is ``_body``."""
    try:
        obj = json.loads(body)
    except (ValueError, UnicodeDecodeError) as err:
        raise ProtocolError(f"event-json body is not JSON: {err}") from err
    if not isinstance(obj, dict):
        raise ProtocolError("event-json body is not a JSON object")
    event_body = obj.pop("_body", None)
    headers = {str(k): (v if isinstance(v, str) else json.dumps(v)) for k, v in obj.items()}
    return Event(headers=headers, body=event_body if isinstance(event_body, str) else None)


def parse_event(frame: Frame) -> Event:
    if frame.content_type == "text/event-plain":
        return parse_event_plain(frame.body)
    if frame.content_type == "text/event-json":
        return parse_event_json(frame.body)
    raise UsageError(f"not an event frame: Content-Type {frame.content_type!r}")


# --------------------------------------------------------------------------
# Encoders, server side (what mod_event_socket writes)
HeaderItems = Union[Mapping[str, str], Iterable[tuple[str, str]]]


_BAD_NAME = re.compile(r"[:\r\n]|^\s|\s$|^$")


def _items(headers: HeaderItems | None) -> list[tuple[str, str]]:
    if headers is None:
        return []
    items = list(headers.items()) if isinstance(headers, Mapping) else list(headers)
    bad_name = _BAD_NAME.search
    for name, value in items:
        if type(name) is not str or type(value) is not str:
            if not isinstance(name, str) or not isinstance(value, str):
                raise UsageError(f"header {name!r} must map str to str, got {type(value).__name__}")
        if bad_name(name):
            raise UsageError(f"invalid header name {name!r}")
    return items


def _check_plain(name: str, value: str) -> None:
    if "\n" in value or "\r" in value:
        raise UsageError(f"header {name} value contains a line break: {value[:80]!r}")


def _as_bytes(body: bytes | str) -> bytes:
    return body.encode("utf-8") if isinstance(body, str) else bytes(body)


def _head(pairs: list[tuple[str, str]]) -> bytes:
    for name, value in pairs:
        _check_plain(name, value)
    return "".join(f"{n}: {v}\n" for n, v in pairs).encode("utf-8") + b"\n"


def encode_auth_request() -> bytes:
    return b"Content-Type: auth/request\n\n"


def encode_command_reply(reply_text: str, headers: HeaderItems | None = None) -> bytes:
    """``command/reply`` with ``Reply-Text`` (and e.g. ``Job-UUID`` for bgapi)."""
    return _head([("Content-Type", "command/reply"), ("Reply-Text", reply_text), *_items(headers)])


def encode_api_response(body: bytes | str) -> bytes:
    data = _as_bytes(body)
    return _head([("Content-Type", "api/response"), ("Content-Length", str(len(data)))]) + data


@functools.lru_cache(maxsize=32768)
def plain_line(name: str, value: str) -> str:
    """One serialised ``text/event-plain`` header line (``Name: url-encoded value\\n``).

    Cached: most lines of consecutive events are identical (profile, variables).
    The caller guarantees a safe ``name`` (no ':' or line breaks).
    """
    return f"{name}: {url_encode(value)}\n"


def _serialize_plain(headers: HeaderItems, body: str | bytes | None, validate: bool = True) -> bytes:
    # switch_event_serialize(): "Name: urlencoded\n" per header, then either
    # "Content-Length: N\n\n<body>" or a closing "\n".
    items = _items(headers) if validate else headers
    line = plain_line
    parts = [line(n, v) for n, v in items if n != "Content-Length"]
    out = "".join(parts).encode("utf-8")
    if body is not None:
        data = _as_bytes(body)
        return out + f"Content-Length: {len(data)}\n\n".encode() + data
    return out + b"\n"


def encode_event_plain(headers: HeaderItems, body: str | bytes | None = None, *, validate: bool = True) -> bytes:
    """A ``text/event-plain`` frame.  ``validate=False`` skips the header-name checks for
    producers that guarantee safe names (the simulator), which is most of the cost."""
    inner = _serialize_plain(headers, body, validate)
    return f"Content-Length: {len(inner)}\nContent-Type: text/event-plain\n\n".encode() + inner


def encode_event_json(headers: HeaderItems, body: str | None = None) -> bytes:
    obj = dict(_items(headers))
    if body is not None:
        obj["Content-Length"] = str(len(_as_bytes(body)))
        obj["_body"] = body if isinstance(body, str) else body.decode("utf-8", "replace")
    inner = json.dumps(obj, ensure_ascii=False, separators=(",", ":")).encode("utf-8")
    return f"Content-Length: {len(inner)}\nContent-Type: text/event-json\n\n".encode() + inner


def _xml_text(text: str) -> str:
    # switch_xml_ampencode for character data: & < > escaped, CR as &#xD;, the rest as is
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;").replace("\r", "&#xD;")


def encode_event_xml(headers: HeaderItems, body: str | bytes | None = None) -> bytes:
    """A ``text/event-xml`` frame (``event xml ...``).

    ``switch_event_xmlize`` puts each header in an element named after it with
    the URL-encoded value as text, and a non-empty body after ``</headers>``
    as ``<Content-Length>`` and ``<body>``; ``switch_xml_toxml`` indents with
    two spaces and indents a closing tag only when the text before it ends in
    a newline (so ``<body>+OK ...\n  </body>``), as in the e_timing capture.
    """
    lines = ["<event>\n  <headers>\n"]
    lines += [f"    <{n}>{_xml_text(url_encode(v))}</{n}>\n" for n, v in _items(headers) if n != "Content-Length"]
    lines.append("  </headers>\n")
    if body:
        text = body if isinstance(body, str) else body.decode("utf-8", "replace")
        lines.append(f"  <Content-Length>{len(_as_bytes(body))}</Content-Length>\n")
        indent = "  " if text.endswith("\n") else ""
        lines.append(f"  <body>{_xml_text(text)}{indent}</body>\n")
    lines.append("</event>\n")
    inner = "".join(lines).encode("utf-8")
    return f"Content-Length: {len(inner)}\nContent-Type: text/event-xml\n\n".encode() + inner


def encode_log_data(data: str, *, level: int, channel: int, file: str, func: str, line: int,
                    user_data: str = "") -> bytes:
    """A ``log/data`` frame (after ``log <level>``): one log line, its origin in headers.

    Header order and names as mod_event_socket.c read_packet writes them.
    """
    body = data.encode("utf-8")
    head = (f"Content-Type: log/data\nContent-Length: {len(body)}\nLog-Level: {level}\n"
            f"Text-Channel: {channel}\nLog-File: {file}\nLog-Func: {func}\nLog-Line: {line}\n"
            f"User-Data: {user_data}\n\n")
    return head.encode("utf-8") + body


DISCONNECT_GOODBYE = "Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n"


def encode_disconnect_notice(headers: HeaderItems | None = None, body: str | bytes = b"") -> bytes:
    """``text/disconnect-notice``: FreeSWITCH always sends a Content-Length (0 on linger)."""
    data = _as_bytes(body)
    pairs = [("Content-Type", "text/disconnect-notice"), *_items(headers), ("Content-Length", str(len(data)))]
    return _head(pairs) + data


def encode_rude_rejection(body: str = "Access Denied, go away.\n") -> bytes:
    data = _as_bytes(body)
    return _head([("Content-Type", "text/rude-rejection"), ("Content-Length", str(len(data)))]) + data


def encode_connect_reply(channel_data: HeaderItems, *, async_mode: bool = True, full: bool = True) -> bytes:
    """The outbound-socket reply to ``connect``: one header block, no body.

    The channel data (``Event-Name: CHANNEL_DATA`` ...) is URL-encoded like an
    event, followed by ``Content-Type: command/reply``, ``Reply-Text: %2BOK%0A``
    (sic, URL-encoded), ``Socket-Mode`` and ``Control`` (mod_event_socket.c,
    parse_command, "connect").
    """
    items = _items(channel_data)
    lines = [f"{n}: {url_encode(v)}\n" for n, v in items]
    lines.append("Content-Type: command/reply\n")
    lines.append(f"Reply-Text: {url_encode('+OK' + chr(10))}\n")
    lines.append(f"Socket-Mode: {'async' if async_mode else 'static'}\n")
    lines.append(f"Control: {'full' if full else 'single-channel'}\n")
    return "".join(lines).encode("utf-8") + b"\n"


# --------------------------------------------------------------------------
# Encoders, client side
def encode_command(command: str, headers: HeaderItems | None = None) -> bytes:
    """A client command (``api status``, ``event plain ALL``...).

    A line break inside the command would smuggle in a second command, so it
    is refused (UsageError) rather than sent.
    """
    if not command or "\n" in command or "\r" in command:
        raise UsageError(f"command must be one non-empty line: {command[:80]!r}")
    pairs = _items(headers)
    for name, value in pairs:
        _check_plain(name, value)
    return (command + "\n" + "".join(f"{n}: {v}\n" for n, v in pairs) + "\n").encode("utf-8")


def encode_sendmsg(
    uuid: str | None = None,
    headers: HeaderItems | None = None,
    body: str | bytes | None = None,
) -> bytes:
    """``sendmsg [<uuid>]`` with headers (``call-command: execute`` ...) and an optional body."""
    command = f"sendmsg {uuid}" if uuid else "sendmsg"
    pairs = [(n, v) for n, v in _items(headers) if n.lower() != "content-length"]
    if body is None:
        return encode_command(command, pairs)
    data = _as_bytes(body)
    pairs.append(("content-length", str(len(data))))
    return encode_command(command, pairs) + data

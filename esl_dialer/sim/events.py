"""An event (or a log line) as the simulated switch emits it: built once, encoded lazily per format."""
from __future__ import annotations

from datetime import datetime
from typing import Sequence

from esl_dialer.esl import encode_event_json, encode_event_plain, encode_event_xml, encode_log_data


class SimEvent:
    """One fired event; every listener shares it, so encode at most once per format."""

    __slots__ = ("name", "subclass", "headers", "body", "unique_id", "_plain", "_json", "_xml", "_dict")

    def __init__(self, name: str, headers: Sequence[tuple[str, str]], body: str | None = None,
                 subclass: str | None = None, unique_id: str | None = None) -> None:
        self.name = name
        self.subclass = subclass
        self.headers = list(headers)
        self.body = body
        self.unique_id = unique_id
        self._plain: bytes | None = None
        self._json: bytes | None = None
        self._xml: bytes | None = None
        self._dict: dict[str, str] | None = None

    def get(self, name: str) -> str | None:
        if self._dict is None:
            self._dict = {k.lower(): v for k, v in self.headers}
        return self._dict.get(name.lower())

    def plain(self) -> bytes:
        if self._plain is None:
            self._plain = encode_event_plain(self.headers, self.body, validate=False)
        return self._plain

    def json(self) -> bytes:
        if self._json is None:
            self._json = encode_event_json(self.headers, self.body)
        return self._json

    def xml(self) -> bytes:
        if self._xml is None:
            self._xml = encode_event_xml(self.headers, self.body)
        return self._xml

    def encode(self, fmt: str) -> bytes:
        """The frame for a listener's format (``plain``, ``json`` or ``xml``)."""
        if fmt == "json":
            return self.json()
        if fmt == "xml":
            return self.xml()
        return self.plain()

    def __repr__(self) -> str:
        return f"SimEvent({self.name}, {self.unique_id})"


# switch_log.c LEVELS (index = level + 1) and the text channels of switch_types.h.
LOG_LEVEL_NAMES = ("CONSOLE", "ALERT", "CRIT", "ERR", "WARNING", "NOTICE", "INFO", "DEBUG")
CHANNEL_ID_LOG, CHANNEL_ID_LOG_CLEAN, CHANNEL_ID_SESSION = 0, 1, 3


class SimLogLine:
    """One line of the switch's log, as ``log <level>`` listeners receive it (``log/data``).

    ``switch_log_meta_vprintf``: lines on every text channel but LOG_CLEAN start
    with the local time, the idle CPU and ``[LEVEL] file:line``; ``User-Data``
    is the channel's uuid (or empty).  Encoded once, shared by every listener.
    """

    __slots__ = ("level", "channel", "file", "func", "line", "text", "uuid", "ts", "_frame")

    def __init__(self, level: int, file: str, func: str, line: int, text: str, *, uuid: str = "",
                 channel: int = CHANNEL_ID_SESSION, ts: float, idle_cpu: float = 99.0) -> None:
        self.level, self.channel, self.file, self.func, self.line = level, channel, file, func, line
        self.uuid, self.ts = uuid or "", ts
        if not text.endswith("\n"):
            text += "\n"
        if channel != CHANNEL_ID_LOG_CLEAN:
            when = datetime.fromtimestamp(ts)
            stamp = when.strftime("%Y-%m-%d %H:%M:%S") + f".{when.microsecond:06d}"
            text = f"{stamp} {idle_cpu:.2f}% [{LOG_LEVEL_NAMES[max(0, min(level, 7))]}] {file}:{line} {text}"
        self.text = text
        self._frame: bytes | None = None

    def frame(self) -> bytes:
        if self._frame is None:
            self._frame = encode_log_data(self.text, level=self.level, channel=self.channel, file=self.file,
                                          func=self.func, line=self.line, user_data=self.uuid)
        return self._frame

    def __repr__(self) -> str:
        return f"SimLogLine({self.level}, {self.text.rstrip()!r})"

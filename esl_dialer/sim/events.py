"""An event as the simulated switch fires it: built once, encoded lazily per format."""
from __future__ import annotations

from typing import Sequence

from esl_dialer.esl import encode_event_json, encode_event_plain


class SimEvent:
    """One fired event; every listener shares it, so encode at most once per format."""

    __slots__ = ("name", "subclass", "headers", "body", "unique_id", "_plain", "_json", "_dict")

    def __init__(self, name: str, headers: Sequence[tuple[str, str]], body: str | None = None,
                 subclass: str | None = None, unique_id: str | None = None) -> None:
        self.name = name
        self.subclass = subclass
        self.headers = list(headers)
        self.body = body
        self.unique_id = unique_id
        self._plain: bytes | None = None
        self._json: bytes | None = None
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

    def __repr__(self) -> str:
        return f"SimEvent({self.name}, {self.unique_id})"

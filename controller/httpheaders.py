"""Request headers for gevent's WSGI server without the e-mail parser.

gevent's ``pywsgi`` reads a request's header lines with ``http.client`` and
hands them to ``email.parser`` (RFC 2822 messages: folding, defects,
policies).  For the worker API's short requests that parser was the largest
single cost of reading a request.  :func:`parse` reads the lines the same way
(same line-length and header-count limits) and, when every line is a plain
``Name: value``, builds :class:`RequestHeaders` directly; anything else (a
folded continuation line, a line without a colon, a malformed name) goes to
gevent's own parser, so unusual requests are read exactly as before.

:class:`RequestHeaders` offers what ``pywsgi.WSGIHandler`` uses of gevent's
``OldMessage``: ``status``, ``get``/``getheader`` (case-insensitive, first
occurrence), ``del h[name]``, ``headers`` (the raw ``Name: value`` lines) and
``typeheader``.  ``tests/test_httpheaders.py`` compares both parsers.
"""
from __future__ import annotations

import http.client
import io
import re
from typing import Iterator, Optional

#: a header name as e-mail's parser accepts it (printable, no space, no colon)
_NAME = re.compile(r"[\x21-\x39\x3b-\x7e]+\Z")
_END = (b"\r\n", b"\n", b"")


class RequestHeaders:
    """The header fields of one request, in order."""

    __slots__ = ("_items", "status")

    def __init__(self, items: list[tuple[str, str, str]]) -> None:
        self._items = items  # (lower-case name, name, value)
        self.status = ""

    def get(self, name: str, default: Optional[str] = None) -> Optional[str]:
        key = name.lower()
        for lower, _name, value in self._items:
            if lower == key:
                return value
        return default

    getheader = get

    def __contains__(self, name: str) -> bool:
        return self.get(name) is not None

    def __delitem__(self, name: str) -> None:
        key = name.lower()
        self._items = [item for item in self._items if item[0] != key]

    @property
    def headers(self) -> Iterator[str]:
        for _lower, name, value in self._items:
            yield f"{name}: {value}\r\n"

    @property
    def typeheader(self) -> Optional[str]:
        return self.get("content-type")


def _stock(lines: list[bytes]):
    """gevent's own parse of the same lines."""
    from gevent.pywsgi import headers_factory

    return headers_factory(io.BytesIO(b"".join(lines)))


def parse(fp, *_args):
    """Read a request's header block from ``fp`` (``pywsgi``'s ``MessageClass``)."""
    lines: list[bytes] = []
    while True:
        line = fp.readline(http.client._MAXLINE + 1)
        if len(line) > http.client._MAXLINE:
            return _stock([line])  # gevent's answer: status "Line too long"
        lines.append(line)
        if len(lines) > http.client._MAXHEADERS:
            raise http.client.HTTPException(f"got more than {http.client._MAXHEADERS} headers")
        if line in _END:
            break
    items = []
    for raw in lines[:-1]:  # the last line is the blank one (or end of input)
        text = raw.decode("iso-8859-1")
        name, colon, value = text.partition(":")
        if not colon or not _NAME.match(name):
            return _stock(lines)
        value = value.lstrip(" \t").rstrip("\r\n")
        if "\r" in value or "\n" in value:
            return _stock(lines)
        items.append((name.lower(), name, value))
    return RequestHeaders(items)

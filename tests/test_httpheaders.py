"""The controller's request-header reader (controller.httpheaders) answers as
gevent's own (http.client + email.parser) does, for plain and unusual headers."""
from __future__ import annotations

import io

import pytest
from gevent.pywsgi import headers_factory

from controller.httpheaders import RequestHeaders, parse

BLOCKS = [
    b"Host: 127.0.0.1\r\nAuthorization: Bearer abc\r\nContent-Type: application/json\r\n"
    b"Content-Length: 12\r\n\r\n",
    b"host:x\r\ncontent-length:   5  \r\nX-Empty:\r\nX-Tab:\tv\r\n\r\n",
    b"A: 1\r\nA: 2\r\nCookie: a=1\r\nCookie: b=2\r\n\r\n",  # repeated: first one wins in get()
    b"Transfer-Encoding: chunked\r\nContent-Length: 10\r\n\r\n",
    b"X-Latin: caf\xe9\r\n\r\n",
    b"Bare-LF: yes\n\n",
    b"\r\n",
    b"",
    # unusual forms: handed to gevent's parser
    b"X-Folded: one\r\n  two\r\nHost: h\r\n\r\n",
    b"No colon here\r\nHost: h\r\n\r\n",
    b"Bad Name: v\r\nHost: h\r\n\r\n",
    b"Under_score: v\r\n\r\n",
]
NAMES = ["host", "Authorization", "CONTENT-TYPE", "content-length", "x-empty", "x-tab", "a", "cookie",
         "transfer-encoding", "x-latin", "bare-lf", "x-folded", "under_score", "missing"]


def both(block: bytes):
    return parse(io.BytesIO(block + b"BODY")), headers_factory(io.BytesIO(block + b"BODY"))


@pytest.mark.parametrize("block", BLOCKS)
def test_same_answers_as_gevents_parser(block):
    ours, stock = both(block)
    assert ours.status == stock.status
    assert list(ours.headers) == list(stock.headers)
    assert ours.typeheader == stock.typeheader
    for name in NAMES:
        assert ours.get(name) == stock.get(name), name
        assert ours.getheader(name, "d") == stock.getheader(name, "d"), name


@pytest.mark.parametrize("block", [b for b in BLOCKS if b.endswith(b"\n")])
def test_the_body_is_left_unread(block):
    fp = io.BytesIO(block + b"BODY")
    parse(fp)
    assert fp.read() == b"BODY"


def test_plain_headers_take_the_fast_path_and_unusual_ones_do_not():
    fast, _ = both(BLOCKS[0])
    folded, _ = both(b"X-Folded: one\r\n  two\r\n\r\n")
    assert isinstance(fast, RequestHeaders)
    assert not isinstance(folded, RequestHeaders)


def test_deleting_a_header_removes_every_occurrence():
    ours, _ = both(b"Content-Length: 1\r\ncontent-length: 2\r\nHost: h\r\n\r\n")
    del ours["CONTENT-LENGTH"]
    assert ours.get("content-length") is None and "content-length" not in ours
    assert list(ours.headers) == ["Host: h\r\n"]


def test_a_line_too_long_is_reported_as_gevent_does():
    block = b"X-Big: " + b"x" * 70_000 + b"\r\n\r\n"
    ours, stock = both(block)
    assert ours.status == stock.status == "Line too long"


def test_too_many_headers_is_refused_as_gevent_does():
    import http.client

    block = b"".join(b"X-%d: v\r\n" % i for i in range(120)) + b"\r\n"
    with pytest.raises(http.client.HTTPException):
        headers_factory(io.BytesIO(block))
    with pytest.raises(http.client.HTTPException):
        parse(io.BytesIO(block))

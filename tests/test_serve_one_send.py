"""The controller's HTTP handler sends a small response (headers + body) in one
``send``, and still serves empty, large and streamed bodies as pywsgi does."""
from __future__ import annotations

import http.client

import gevent
import gevent.socket
import pytest
from gevent.pywsgi import WSGIServer

from controller.serve import ONE_SEND_MAX, handler_class


class _CountingSocket:
    """Proxy of a client socket that records each ``sendall``."""

    def __init__(self, sock, sends: list) -> None:
        self._sock = sock
        self._sends = sends

    def sendall(self, data, *args):
        self._sends.append(bytes(data))
        return self._sock.sendall(data, *args)

    def __getattr__(self, name):
        return getattr(self._sock, name)


def _app(environ, start_response):
    path = environ["PATH_INFO"]
    if path == "/small":
        body = b'{"records": []}'
        start_response("200 OK", [("Content-Type", "application/json"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/empty":
        start_response("204 No Content", [])
        return []
    if path == "/large":
        body = b"x" * (ONE_SEND_MAX + 1)
        start_response("200 OK", [("Content-Type", "text/plain"), ("Content-Length", str(len(body)))])
        return [body]
    if path == "/stream":  # no Content-Length: chunked, as the event stream (SSE) is
        start_response("200 OK", [("Content-Type", "text/event-stream")])
        return iter([b"data: one\n\n", b"data: two\n\n"])
    start_response("404 Not Found", [("Content-Length", "0")])
    return []


@pytest.fixture()
def served():
    sends: list[bytes] = []
    base = handler_class()

    class Counting(base):
        def __init__(self, sock, *args, **kwargs):
            super().__init__(_CountingSocket(sock, sends), *args, **kwargs)

    server = WSGIServer(("127.0.0.1", 0), _app, handler_class=Counting, log=None, error_log=None)
    server.start()
    try:
        yield server.server_port, sends
    finally:
        server.stop(timeout=2)


def _get(port: int, path: str) -> tuple[int, bytes, dict]:
    """GET over a gevent socket (the server runs in this thread), parsed by
    http.client's own response parser."""
    sock = gevent.socket.create_connection(("127.0.0.1", port), timeout=5)
    try:
        sock.sendall(f"GET {path} HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n".encode())
        resp = http.client.HTTPResponse(sock)
        resp.begin()
        return resp.status, resp.read(), dict(resp.getheaders())
    finally:
        sock.close()


def test_a_small_response_goes_out_in_one_send(served):
    port, sends = served
    status, body, _headers = _get(port, "/small")
    assert (status, body) == (200, b'{"records": []}')
    assert len(sends) == 1
    assert sends[0].startswith(b"HTTP/1.1 200 OK\r\n") and sends[0].endswith(b"\r\n\r\n" + body)


def test_an_empty_body_still_sends_its_headers(served):
    port, sends = served
    status, body, _headers = _get(port, "/empty")
    assert (status, body) == (204, b"")
    assert len(sends) == 1 and sends[0].startswith(b"HTTP/1.1 204")


def test_a_large_body_is_sent_after_its_headers_as_pywsgi_does(served):
    port, sends = served
    status, body, _headers = _get(port, "/large")
    assert status == 200 and body == b"x" * (ONE_SEND_MAX + 1)
    assert len(sends) == 2 and sends[0].endswith(b"\r\n\r\n")


def test_a_streamed_body_keeps_its_chunks(served):
    port, _sends = served
    status, body, headers = _get(port, "/stream")
    assert status == 200 and headers.get("Transfer-Encoding") == "chunked"
    assert body == b"data: one\n\ndata: two\n\n"

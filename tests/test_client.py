"""The gevent-native controller client (esl_dialer.client) against small WSGI apps.

The servers are gevent.pywsgi on port 0 in this process; the client uses
gevent sockets, so nothing is monkey-patched.
"""
from __future__ import annotations

import io
import json

import gevent
import gevent.event
import pytest
from gevent.pywsgi import WSGIServer

from esl_dialer.client import ApiError, ControllerClient, ControllerUnavailable, parse_sse


class FakeApp:
    """Scripted WSGI app: a list of (status, body) answers per path, recording requests."""

    def __init__(self):
        self.script: dict[str, list] = {}
        self.seen: list[tuple[str, str, dict, str]] = []
        self.last_ids: list = []

    def __call__(self, environ, start_response):
        path = environ["PATH_INFO"]
        length = int(environ.get("CONTENT_LENGTH") or 0)
        body = environ["wsgi.input"].read(length) if length else b""
        self.seen.append((environ["REQUEST_METHOD"], path, json.loads(body) if body else None, environ.get("HTTP_AUTHORIZATION")))
        if path.endswith("/events"):
            self.last_ids.append(environ.get("HTTP_LAST_EVENT_ID"))
        answers = self.script.get(path) or [(200, {"ok": True})]
        status, payload = answers.pop(0) if len(answers) > 1 else answers[0]
        if status == "sleep":
            gevent.sleep(payload)
            status, payload = 200, {"ok": True}
        if callable(payload):
            start_response("200 OK", [("Content-Type", "text/event-stream")])
            return payload()
        start_response(f"{status} X", [("Content-Type", "application/json")])
        return [json.dumps(payload).encode()]


@pytest.fixture
def server():
    app = FakeApp()
    srv = WSGIServer(("127.0.0.1", 0), app, log=None, error_log=None)
    srv.start()
    try:
        yield app, f"http://127.0.0.1:{srv.server_port}"
    finally:
        srv.stop(timeout=1)


def client(url, **kw):
    kw.setdefault("backoff_base", 0.01)
    return ControllerClient(url, "tok-1", **kw)


def test_token_and_json_roundtrip(server):
    app, url = server
    app.script["/api/v1/worker/results"] = [(200, {"accepted": ["a"], "duplicates": ["b"]})]
    acc, dup = client(url).results([{"client_id": "a"}, {"client_id": "b"}])
    assert (acc, dup) == (["a"], ["b"])
    method, path, body, auth = app.seen[-1]
    assert (method, path, auth) == ("POST", "/api/v1/worker/results", "Bearer tok-1")
    assert body == {"results": [{"client_id": "a"}, {"client_id": "b"}]}


def test_retries_5xx_then_succeeds(server):
    app, url = server
    app.script["/api/v1/worker/heartbeat"] = [(503, {}), (500, {}), (200, {"ok": True, "campaign_status": "active"})]
    assert client(url).heartbeat("idle")["campaign_status"] == "active"
    assert len(app.seen) == 3


def test_4xx_is_api_error_not_retried(server):
    app, url = server
    app.script["/api/v1/worker/dial-check"] = [(400, {"error": "invalid_input", "message": "bad", "field": "record_ids"})]
    with pytest.raises(ApiError) as exc:
        client(url).dial_check([1])
    assert (exc.value.status, exc.value.code, exc.value.field) == (400, "invalid_input", "record_ids")
    assert len(app.seen) == 1


def test_lease_retried_with_the_same_request_id(server):
    app, url = server
    app.script["/api/v1/worker/lease"] = [(502, {}), (200, {"records": [{"id": 7}]})]
    assert client(url).lease(5)["records"] == [{"id": 7}]
    bodies = [body for _, path, body, _ in app.seen if path == "/api/v1/worker/lease"]
    assert len(bodies) == 2 and bodies[0]["max"] == 5
    # the retry is the same request: the controller returns the first grant again
    assert bodies[0]["request_id"] == bodies[1]["request_id"] and len(bodies[0]["request_id"]) == 32
    client(url).lease(5)
    assert app.seen[-1][2]["request_id"] != bodies[0]["request_id"]  # a new lease, a new id


def test_lease_retried_after_a_timeout_with_the_same_request_id(server):
    app, url = server
    app.script["/api/v1/worker/lease"] = [("sleep", 2), (200, {"records": []})]
    with gevent.Timeout(5):
        assert client(url, timeout=0.2, retries=1).lease(3) == {"records": []}
    bodies = [body for _, path, body, _ in app.seen if path == "/api/v1/worker/lease"]
    assert len(bodies) == 2 and bodies[0]["request_id"] == bodies[1]["request_id"]


def test_claim_409_means_no_idle_agent(server):
    app, url = server
    app.script["/api/v1/agents/claim"] = [(409, {"error": "no_idle_agent", "message": "none"})]
    assert client(url).claim(call_uuid="u", record_id=1) is None
    app.script["/api/v1/agents/claim"] = [(200, {"agent": {"name": "a2", "extension": "1002", "worker": "w2"}})]
    assert client(url).claim(call_uuid="u", record_id=1, exclude=["1001"])["extension"] == "1002"
    assert app.seen[-1][2] == {"min_skill": 0, "call_uuid": "u", "record_id": 1, "exclude": ["1001"]}


def test_timeout_bounds_a_hung_controller(server):
    app, url = server
    app.script["/api/v1/worker/heartbeat"] = [("sleep", 5)]
    c = client(url, timeout=0.2, retries=1)
    with gevent.Timeout(3):
        with pytest.raises(ControllerUnavailable):
            c.heartbeat("idle")


def test_connection_refused_is_unavailable():
    srv = WSGIServer(("127.0.0.1", 0), FakeApp(), log=None)
    srv.start()
    url = f"http://127.0.0.1:{srv.server_port}"
    srv.stop()
    with pytest.raises(ControllerUnavailable):
        client(url, retries=2).heartbeat("idle")


def test_bad_url_rejected():
    with pytest.raises(ValueError):
        ControllerClient("ftp://x", "t")
    with pytest.raises(ValueError):
        ControllerClient("http://x", "")


def test_parse_sse_events_comments_multiline():
    raw = (
        b": comment\n\nevent: overflow\ndata: {\"call_uuid\": \"u1\"}\n\n"
        b"event: ping\ndata: {}\n\ndata: line1\ndata: line2\n\n"
        b"event: campaign\r\ndata: {\"status\": \"paused\"}\r\n\r\n"
        b"data: incomplete-at-eof"
    )
    evs = list(parse_sse(io.BytesIO(raw)))
    assert [(e.event, e.data) for e in evs] == [
        ("overflow", {"call_uuid": "u1"}),
        ("ping", {}),
        ("message", "line1\nline2"),
        ("campaign", {"status": "paused"}),
    ]


def test_sse_listener_reconnects(server):
    app, url = server
    n = {"conn": 0}

    def stream():
        n["conn"] += 1
        yield f"id: {n['conn']}\nevent: overflow\ndata: {json.dumps({'call_uuid': 'c%d' % n['conn']})}\n\n".encode()
        # then the stream ends: the listener must reconnect

    app.script["/api/v1/worker/events"] = [(200, stream)]
    got = []
    stop = gevent.event.Event()

    def handler(ev):
        got.append(ev.data["call_uuid"])
        if len(got) >= 3:
            stop.set()

    c = client(url)
    g = gevent.spawn(c.listen_events, handler, stop=stop)
    assert stop.wait(5)
    g.join(timeout=2)
    assert got[:3] == ["c1", "c2", "c3"]
    # reconnects resume after the last event seen
    assert app.last_ids[:3] == [None, "1", "2"]

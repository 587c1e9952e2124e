"""D5: the agent console receives the screen pop over SSE, behind a login."""
from __future__ import annotations

import json
import re
import time

import gevent
import pytest
from werkzeug.security import generate_password_hash

from esl_dialer.console import PopHub, create_console_app
from esl_dialer.worker_core import screen_pop_payload


@pytest.fixture
def app():
    hub = PopHub()
    app = create_console_app(hub, {"1001": generate_password_hash("pw1"), "1002": generate_password_hash("pw2")},
                             lambda a: "idle", secret_key="k")
    return app, hub


def login(c, agent, pw):
    page = c.get("/").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    return c.post("/", data={"agent": agent, "password": pw, "csrf": csrf})


def test_d5_console_requires_login_and_own_agent(app):
    app, hub = app
    c = app.test_client()
    assert c.get("/agent/1001").status_code == 401
    assert login(c, "1001", "wrong").status_code == 401
    assert c.post("/", data={"agent": "1001", "password": "pw1"}).status_code == 400  # no CSRF token
    r = login(c, "1001", "pw1")
    assert r.status_code == 302 and r.headers["Location"].endswith("/agent/1001")
    assert c.get("/agent/1001").status_code == 200
    assert c.get("/agent/1002").status_code == 403
    assert c.get("/agent/1002/events").status_code == 403


def test_d5_screen_pop_pushed_over_sse_at_once(app):
    app, hub = app
    c = app.test_client()
    login(c, "1001", "pw1")
    resp = c.get("/agent/1001/events", buffered=False)
    assert resp.mimetype == "text/event-stream"
    chunks = resp.response  # the streaming generator
    assert next(chunks).startswith(b"retry:")
    assert b"event: state" in next(chunks)
    rec = {"id": 7, "number": "+12025550107", "name": "Ada Lovelace", "city": "Austin", "region": "TX",
           "country": "US", "timezone": "America/Chicago",
           "previous_attempts": [{"started_at": "2024-01-01T10:00:00+00:00", "result": "no_answer", "disposition": None}]}
    t0 = time.monotonic()
    hub.publish("1001", "pop", screen_pop_payload(rec, "uuid-7", "1001", time.time()))
    hub.publish("1002", "pop", {"name": "not for 1001"})
    raw = next(chunks)
    assert time.monotonic() - t0 < 0.2
    event, data = raw.decode().strip().split("\n")
    assert event == "event: pop"
    pop = json.loads(data[len("data: "):])
    assert (pop["name"], pop["city"], pop["region"]) == ("Ada Lovelace", "Austin", "TX")
    assert re.fullmatch(r"\d\d:\d\d", pop["local_time"])
    assert pop["previous_attempts"][0]["result"] == "no_answer"
    resp.close()
    assert hub._subs["1001"] == []


def test_d2_preview_dial_button_reaches_the_worker():
    clicks = []
    hub = PopHub()
    app = create_console_app(hub, {"1001": generate_password_hash("pw1")}, lambda a: "idle", secret_key="k",
                             on_dial=lambda a: clicks.append(a) or len(clicks) == 1)
    c = app.test_client()
    login(c, "1001", "pw1")
    page = c.get("/agent/1001").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert c.post("/agent/1001/dial", data={}).status_code == 400  # CSRF
    assert c.post("/agent/1001/dial", data={"csrf": csrf}).status_code == 302
    assert c.post("/agent/1001/dial", data={"csrf": csrf}).status_code == 409  # refused by the worker
    assert c.post("/agent/1002/dial", data={"csrf": csrf}).status_code == 403
    assert clicks == ["1001", "1001"]


def test_p6_disposition_form_reaches_the_worker():
    got = []

    def on_disposition(agent, value):
        if value == "bad":
            raise ValueError("no call to set a disposition on")
        got.append((agent, value))

    app = create_console_app(PopHub(), {"1001": generate_password_hash("pw1")}, lambda a: "wrapup",
                             secret_key="k", on_disposition=on_disposition)
    c = app.test_client()
    login(c, "1001", "pw1")
    page = c.get("/agent/1001").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert c.post("/agent/1001/disposition", data={"disposition": "sale"}).status_code == 400  # CSRF
    assert c.post("/agent/1001/disposition", data={"disposition": "sale", "csrf": csrf}).status_code == 302
    r = c.post("/agent/1001/disposition", data={"disposition": "bad", "csrf": csrf})
    assert r.status_code == 400 and b"no call" in r.data
    assert got == [("1001", "sale")]

"""Agent console (D5): the screen pop, pushed over server-sent events.

Served by the worker process itself (the worker runs on the agent's PC, D11),
so the pop travels answer event -> worker -> browser without a round trip
through the controller: well inside the 200 ms the issue allows.

A Flask app (factory + one blueprint), one page per agent behind a login
(the agent's extension and console password, hashed with werkzeug), and an
SSE stream per logged-in agent.  Served by gevent's WSGIServer next to the
workers (``dialer worker --console 127.0.0.1:8090``).
"""
from __future__ import annotations

import hmac
import json
import logging
import secrets
from typing import Callable, Iterator

import gevent
import gevent.queue
from flask import Blueprint, Flask, Response, abort, current_app, redirect, render_template_string, request, session, url_for
from werkzeug.security import check_password_hash

from .greetings import GreetingError, install_greeting

logger = logging.getLogger(__name__)

KEEPALIVE_S = 15.0
MAX_GREETING_BYTES = 6 * 1024 * 1024  # 30 s of 48 kHz stereo 16-bit PCM, with room for the header
MAX_SUBSCRIBERS_PER_AGENT = 8

bp = Blueprint("console", __name__)


class PopHub:
    """Fan-out of screen pops and state changes to each agent's open consoles."""

    def __init__(self) -> None:
        self._subs: dict[str, list[gevent.queue.Queue]] = {}
        self.last: dict[str, dict] = {}

    def publish(self, agent: str, event: str, data: dict) -> None:
        if event == "pop":
            self.last[agent] = data
        for q in list(self._subs.get(agent, [])):
            if q.qsize() < 100:  # a stuck browser never grows memory without bound
                q.put((event, data))

    def subscribe(self, agent: str) -> gevent.queue.Queue:
        subs = self._subs.setdefault(agent, [])
        if len(subs) >= MAX_SUBSCRIBERS_PER_AGENT:
            raise OverflowError("too many consoles open for this agent")
        q: gevent.queue.Queue = gevent.queue.Queue()
        subs.append(q)
        return q

    def unsubscribe(self, agent: str, q: gevent.queue.Queue) -> None:
        subs = self._subs.get(agent, [])
        if q in subs:
            subs.remove(q)


PAGE = """<!doctype html>
<html><head><meta charset="utf-8"><title>Agent {{ agent }}</title>
<style>body{font-family:sans-serif;margin:2em}#pop{border:1px solid #888;padding:1em;min-height:8em}
td{padding:2px 8px}.muted{color:#888}</style></head>
<body><h1>Agent {{ agent }}</h1><p>State: <b id="state">?</b></p>
<div id="pop" class="muted">Waiting for a call…</div>
<form method="post" action="{{ url_for('console.disposition', agent=agent) }}"><input type="hidden" name="csrf" value="{{ csrf }}">
<input name="disposition" list="dispositions" maxlength="64" placeholder="Disposition" required>
<datalist id="dispositions"><option value="sale"><option value="callback"><option value="no_interest">
<option value="wrong_number"><option value="do_not_call"></datalist><button>Save</button></form>
<form method="post" action="{{ url_for('console.dial', agent=agent) }}"><input type="hidden" name="csrf" value="{{ csrf }}">
<button title="Preview mode: dial the next record">Dial next</button></form>
<form method="post" enctype="multipart/form-data" action="{{ url_for('console.greeting', agent=agent) }}"><input type="hidden" name="csrf" value="{{ csrf }}">
<label>My greeting (WAV, 16-bit PCM, 0.5-30 s) <input type="file" name="greeting" accept=".wav,audio/wav" required></label>
<button>Upload</button></form>
<form method="post" action="{{ url_for('console.logout') }}"><input type="hidden" name="csrf" value="{{ csrf }}">
<button>Log out</button></form>
<script>
const esc = s => String(s ?? "").replace(/[&<>"']/g, c => ({"&":"&amp;","<":"&lt;",">":"&gt;",'"':"&quot;","'":"&#39;"}[c]));
const es = new EventSource("{{ url_for('console.events', agent=agent) }}");
es.addEventListener("state", e => { document.getElementById("state").textContent = JSON.parse(e.data).state; });
es.addEventListener("pop", e => {
  const p = JSON.parse(e.data);
  const rows = (p.previous_attempts || []).map(a => `<tr><td>${esc(a.started_at)}</td><td>${esc(a.result)}</td><td>${esc(a.disposition)}</td></tr>`).join("");
  const el = document.getElementById("pop"); el.className = "";
  el.innerHTML = `<h2>${esc(p.name)} ${p.overflow ? "(overflow)" : ""}</h2>
    <p>${esc(p.number)} — ${esc(p.city)}, ${esc(p.region)} ${esc(p.country)} — local time <b>${esc(p.local_time)}</b></p>
    <table><tr><th>Previous attempt</th><th>Result</th><th>Disposition</th></tr>${rows}</table>`;
});
</script></body></html>"""

LOGIN = """<!doctype html><html><head><meta charset="utf-8"><title>Agent console</title></head><body>
<h1>Agent console</h1>{% if error %}<p style="color:#b00">{{ error }}</p>{% endif %}
<form method="post"><input type="hidden" name="csrf" value="{{ csrf }}">
<label>Extension <input name="agent" autocomplete="username"></label>
<label>Password <input name="password" type="password" autocomplete="current-password"></label>
<button>Log in</button></form></body></html>"""


def _csrf() -> str:
    if "csrf" not in session:
        session["csrf"] = secrets.token_urlsafe(24)
    return session["csrf"]


def _check_csrf() -> None:
    sent = request.form.get("csrf", "")
    if not sent or not hmac.compare_digest(sent, session.get("csrf", "")):
        abort(400, "bad CSRF token")


@bp.route("/", methods=["GET", "POST"])
def login():
    error = None
    if request.method == "POST":
        _check_csrf()
        agent = request.form.get("agent", "").strip()
        pw = request.form.get("password", "")
        hashes = current_app.config["CONSOLE_PASSWORDS"]
        if agent in hashes and check_password_hash(hashes[agent], pw):
            session.clear()
            session["agent"] = agent
            return redirect(url_for("console.page", agent=agent))
        error = "Wrong extension or password."
    return render_template_string(LOGIN, csrf=_csrf(), error=error), (401 if error else 200)


@bp.post("/logout")
def logout():
    _check_csrf()
    session.clear()
    return redirect(url_for("console.login"))


def _require(agent: str) -> None:
    if session.get("agent") != agent:
        abort(403 if session.get("agent") else 401)


@bp.get("/agent/<agent>")
def page(agent: str):
    _require(agent)
    return render_template_string(PAGE, agent=agent, csrf=_csrf())


@bp.post("/agent/<agent>/dial")
def dial(agent: str):
    """Preview mode (D2): the agent asks for the next call."""
    _require(agent)
    _check_csrf()
    on_dial = current_app.extensions.get("on_dial")
    if on_dial is None or not on_dial(agent):
        abort(409, "this agent's worker does not take dial requests now")
    return redirect(url_for("console.page", agent=agent))


@bp.post("/agent/<agent>/disposition")
def disposition(agent: str):
    """The agent's disposition for the current or just-finished call (P6)."""
    _require(agent)
    _check_csrf()
    on_disposition = current_app.extensions.get("on_disposition")
    if on_disposition is None:
        abort(409, "dispositions are not taken here")
    try:
        on_disposition(agent, request.form.get("disposition", ""))
    except ValueError as exc:
        abort(400, str(exc))
    return redirect(url_for("console.page", agent=agent))


@bp.post("/agent/<agent>/greeting")
def greeting(agent: str):
    """D4: the agent uploads a WAV as their greeting (installed where the switch plays it)."""
    _require(agent)
    _check_csrf()
    dir_of: Callable[[str], str | None] | None = current_app.extensions.get("greetings_dir_of")
    folder = dir_of(agent) if dir_of else None
    upload = request.files.get("greeting")
    if folder is None:
        abort(409, "greeting uploads are not taken here")
    if upload is None:
        abort(400, "choose a WAV file")
    data = upload.read(MAX_GREETING_BYTES + 1)
    if len(data) > MAX_GREETING_BYTES:
        abort(413, "a greeting file must be under 6 MB")
    try:
        info = install_greeting(data, agent, folder)
    except GreetingError as exc:
        abort(400, f"greeting refused: {exc}")
    logger.info("agent %s uploaded a greeting: %s (%.1f s)", agent, info.path, info.seconds)
    return redirect(url_for("console.page", agent=agent))


@bp.get("/agent/<agent>/events")
def events(agent: str):
    _require(agent)
    hub: PopHub = current_app.extensions["pop_hub"]
    state_of: Callable[[str], str | None] = current_app.extensions["state_of"]
    try:
        q = hub.subscribe(agent)
    except OverflowError as exc:
        abort(429, str(exc))

    def stream() -> Iterator[bytes]:
        try:
            yield b"retry: 1000\n\n"
            st = state_of(agent)
            if st:
                yield _sse("state", {"state": st})
            while True:
                try:
                    event, data = q.get(timeout=KEEPALIVE_S)
                except gevent.queue.Empty:
                    yield b": keep-alive\n\n"
                    continue
                yield _sse(event, data)
        finally:
            hub.unsubscribe(agent, q)

    return Response(stream(), mimetype="text/event-stream", headers={"Cache-Control": "no-cache", "X-Accel-Buffering": "no"})


def _sse(event: str, data: dict) -> bytes:
    return f"event: {event}\ndata: {json.dumps(data, default=str)}\n\n".encode()


def create_console_app(hub: PopHub, passwords: dict[str, str], state_of: Callable[[str], str | None], *,
                       secret_key: str | None = None, secure_cookies: bool = False,
                       on_dial: Callable[[str], bool] | None = None,
                       on_disposition: Callable[[str, str], None] | None = None,
                       greetings_dir_of: Callable[[str], str | None] | None = None) -> Flask:
    """``passwords``: extension -> werkzeug password hash; ``on_dial(agent)`` -> accepted (preview mode);
    ``greetings_dir_of(agent)`` -> where that agent's greeting is installed (D4 upload)."""
    app = Flask(__name__)
    app.config.update(
        SECRET_KEY=secret_key or secrets.token_hex(32),
        CONSOLE_PASSWORDS=dict(passwords),
        SESSION_COOKIE_HTTPONLY=True,
        SESSION_COOKIE_SAMESITE="Lax",
        SESSION_COOKIE_SECURE=secure_cookies,
    )
    app.extensions["pop_hub"] = hub
    app.extensions["state_of"] = state_of
    app.extensions["on_dial"] = on_dial
    app.extensions["on_disposition"] = on_disposition
    app.extensions["greetings_dir_of"] = greetings_dir_of
    app.register_blueprint(bp)
    return app

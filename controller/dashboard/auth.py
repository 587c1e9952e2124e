"""Login, logout and the login requirement of every dashboard page.

Session-cookie based: Flask's signed cookie holds only the user id and the
CSRF token.  Cookie flags come from the config (HttpOnly, SameSite=Lax, and
Secure when DIALER_SECURE_COOKIES=1, i.e. behind TLS).  The session is
cleared at login (no fixation) and logout.
"""
from __future__ import annotations

import functools
import logging
import math
from urllib.parse import urlsplit

from flask import (
    Blueprint,
    current_app,
    flash,
    g,
    redirect,
    render_template,
    request,
    session,
    url_for,
)

from .. import get_db
from ..services import users
from . import csrf, throttle

logger = logging.getLogger(__name__)

SESSION_USER = "user_id"
#: endpoints reachable without logging in
PUBLIC_ENDPOINTS = frozenset({"dashboard.login", "dashboard.static"})


def load_user() -> None:
    """before_request: put the logged-in user (or None) in ``g.user``."""
    user_id = session.get(SESSION_USER)
    g.user = users.get_user(get_db(), user_id) if isinstance(user_id, int) else None
    if user_id is not None and g.user is None:  # deleted user: drop the stale session
        session.pop(SESSION_USER, None)


def require_login():
    """before_request: every dashboard endpoint but the public ones needs a user."""
    if request.endpoint in PUBLIC_ENDPOINTS or g.get("user") is not None:
        return None
    return _to_login()


def login_required(view):
    """Decorator for views outside the dashboard blueprint that need a user."""
    @functools.wraps(view)
    def wrapped(*args, **kwargs):
        if g.get("user") is None:
            load_user()
        if g.user is None:
            return _to_login()
        return view(*args, **kwargs)
    return wrapped


def _to_login():
    if request.accept_mimetypes.best == "text/event-stream" or request.path.endswith("/stream"):
        return ("login required", 401, {"Content-Type": "text/plain; charset=utf-8"})
    return redirect(url_for("dashboard.login", next=request.full_path.rstrip("?")))


def _safe_next(target: str | None) -> str:
    """Only same-site relative paths (no open redirect via ?next=)."""
    if not target:
        return url_for("dashboard.campaigns")
    parts = urlsplit(target)
    if parts.scheme or parts.netloc or not target.startswith("/") or target.startswith("//") \
            or "\\" in target:
        return url_for("dashboard.campaigns")
    return target


def _throttles() -> tuple[throttle.LoginThrottle, throttle.LoginThrottle]:
    """(per user name, per client address) failed-login counters of this app."""
    ext = current_app.extensions
    if "dialer_login_throttle" not in ext:
        ext["dialer_login_throttle"] = (
            throttle.LoginThrottle(throttle.MAX_FAILURES),
            throttle.LoginThrottle(throttle.MAX_FAILURES_PER_ADDRESS),
        )
    return ext["dialer_login_throttle"]


def register(bp: Blueprint) -> None:
    bp.before_request(load_user)
    bp.before_request(require_login)

    @bp.route("/login", methods=["GET", "POST"])
    def login():
        error = None
        status = 200
        if request.method == "POST":
            username = request.form.get("username", "")
            by_user, by_addr = _throttles()
            user_key, addr_key = username.strip().lower()[:80], request.remote_addr or "?"
            wait = max(by_user.retry_after(user_key), by_addr.retry_after(addr_key))
            if wait > 0:
                logger.warning("dashboard login throttled for %r from %s", username[:80], request.remote_addr)
                minutes = max(1, math.ceil(wait / 60))
                return render_template(
                    "login.html", error=f"Too many failed logins. Try again in {minutes} minute"
                    f"{'s' if minutes > 1 else ''}.", no_users=False, next=request.args.get("next", ""),
                ), 429, {"Retry-After": str(math.ceil(wait))}
            user = users.authenticate(get_db(), username, request.form.get("password", ""))
            if user is None:
                by_user.failed(user_key)
                by_addr.failed(addr_key)
            else:
                by_user.reset(user_key)
            if user is not None:
                target = _safe_next(request.args.get("next") or request.form.get("next"))
                session.clear()
                session[SESSION_USER] = user.id
                csrf.rotate()
                logger.info("dashboard login: %s from %s", user.username, request.remote_addr)
                flash(f"Welcome, {user.username}.", "ok")
                return redirect(target)
            logger.warning("failed dashboard login for %r from %s", username[:80], request.remote_addr)
            error = "Wrong user name or password."
            status = 401
        elif g.get("user") is not None:
            return redirect(url_for("dashboard.campaigns"))
        no_users = not users.list_users(get_db())
        return render_template("login.html", error=error, no_users=no_users,
                               next=request.args.get("next", "")), status

    @bp.post("/logout")
    def logout():
        session.clear()
        csrf.rotate()
        flash("You are logged out.", "ok")
        return redirect(url_for("dashboard.login"))

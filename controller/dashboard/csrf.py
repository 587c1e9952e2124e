"""A small per-session CSRF token, checked on every state-changing request.

Why not Flask-WTF: the dashboard has a handful of hand-written forms and no
WTForms; a 40-line synchronizer token (the OWASP pattern) is all it needs.
The token lives in the signed session cookie; forms carry it in a hidden
``csrf_token`` field, scripts in an ``X-CSRF-Token`` header.  Comparison is
constant-time.  Together with ``SameSite=Lax`` cookies this stops cross-site
form posts, including login CSRF (the login form carries a token too).
"""
from __future__ import annotations

import hmac
import logging
import secrets

from flask import abort, request, session

logger = logging.getLogger(__name__)

SESSION_KEY = "_csrf"
FORM_FIELD = "csrf_token"
HEADER = "X-CSRF-Token"
SAFE_METHODS = frozenset({"GET", "HEAD", "OPTIONS", "TRACE"})


def csrf_token() -> str:
    """The session's token, created on first use (exposed to templates)."""
    token = session.get(SESSION_KEY)
    if not token:
        token = secrets.token_urlsafe(32)
        session[SESSION_KEY] = token
    return token


def rotate() -> None:
    """New token (after login/logout, so a token seen before login is useless)."""
    session[SESSION_KEY] = secrets.token_urlsafe(32)


def protect() -> None:
    """before_request hook: refuse unsafe methods without the session's token."""
    if request.method in SAFE_METHODS:
        return
    expected = session.get(SESSION_KEY)
    sent = request.form.get(FORM_FIELD) or request.headers.get(HEADER) or ""
    if not expected or not hmac.compare_digest(str(expected), str(sent)):
        logger.warning("CSRF check failed for %s %s from %s", request.method, request.path,
                       request.remote_addr)
        abort(400, description="This form has expired or was not sent from this site. "
                               "Go back, reload the page and try again.")

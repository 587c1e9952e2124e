"""Server-rendered dashboard (P14): login, campaigns, pools & queues, rules, agents, attempts.

Every page needs a logged-in user (``auth``), every POST a CSRF token
(``csrf``); views call services only.  Static files are vendored under
``static/`` (no CDN, no build step).
"""
from __future__ import annotations

from flask import Blueprint, render_template
from werkzeug.exceptions import HTTPException

from . import auth, csrf, stream, views

bp = Blueprint("dashboard", __name__, template_folder="templates", static_folder="static",
               static_url_path="/static/dashboard")

auth.register(bp)  # before_request: load user, require login
bp.before_request(csrf.protect)  # after the login check: anonymous POSTs go to the login page
views.register(bp)
stream.register(bp)


@bp.app_context_processor
def _template_helpers():
    return {"csrf_token": csrf.csrf_token}


@bp.errorhandler(HTTPException)
def _http_error(err: HTTPException):
    return render_template("error.html", code=err.code, name=err.name,
                           description=err.description), err.code


@bp.after_request
def _security_headers(response):
    response.headers.setdefault("X-Content-Type-Options", "nosniff")
    response.headers.setdefault("X-Frame-Options", "DENY")
    response.headers.setdefault("Referrer-Policy", "same-origin")
    response.headers.setdefault(
        "Content-Security-Policy",
        "default-src 'self'; img-src 'self' data:; style-src 'self' 'unsafe-inline'; "
        "script-src 'self'; object-src 'none'; frame-ancestors 'none'; base-uri 'self'; form-action 'self'",
    )
    return response

"""Flask control plane of esl-dialer: models, distribution, routing, API, UI."""
from __future__ import annotations

from typing import Any

from flask import Flask, current_app
from flask.sessions import SecureCookieSessionInterface

from .config import Config
from .db import Database


def create_app(config: Config | dict[str, Any] | None = None, *, check_migrated: bool = True) -> Flask:
    """App factory (Flask tutorial style).

    ``config`` is a :class:`Config` (or a dict overriding it).  The app refuses
    to start on a database that has not been migrated: the error names
    ``dialer db upgrade``.
    """
    app = Flask(__name__)
    from .jsonio import OrjsonProvider

    app.json = OrjsonProvider(app)
    app.session_interface = _ApiWithoutSessions()
    base = Config()
    app.config.from_mapping(base.as_dict())
    if isinstance(config, Config):
        app.config.from_mapping(config.as_dict())
    elif config:
        app.config.from_mapping(config)

    db = Database(app.config["DATABASE_URL"])
    if check_migrated:
        db.check_migrated()
    app.extensions["dialer_db"] = db

    from .api import bp as api_bp
    from .dashboard import bp as dashboard_bp

    app.register_blueprint(api_bp)
    app.register_blueprint(dashboard_bp)
    return app


def get_db() -> Database:
    """The Database bound to the current app."""
    return current_app.extensions["dialer_db"]


#: path prefix of the worker API (bearer tokens, no cookie session)
API_PREFIX = "/api/"


class _ApiWithoutSessions(SecureCookieSessionInterface):
    """The dashboard's signed-cookie session, not opened for the worker API.

    API clients authenticate with a bearer token per request and never send
    the session cookie; skipping the cookie parse and the signer saves about
    a fifth of Flask's own CPU per API request, and an API reply never sets a
    cookie.  Writing to ``session`` in an API view raises (a null session)."""

    def open_session(self, app, request):
        if request.path.startswith(API_PREFIX):
            return self.make_null_session(app)
        return super().open_session(app, request)

"""Controller configuration: a class read from the environment, plus a test config."""
from __future__ import annotations

import os
from pathlib import Path


def default_data_dir() -> Path:
    return Path(os.environ.get("DIALER_DATA_DIR", "var")).resolve()


def default_database_url() -> str:
    """SQLite file under the data dir unless DIALER_DATABASE_URL says otherwise."""
    url = os.environ.get("DIALER_DATABASE_URL")
    if url:
        return url
    return f"sqlite:///{default_data_dir() / 'dialer.db'}"


class Config:
    """Read once at app creation; every value can be overridden by ``create_app(config)``."""

    def __init__(self) -> None:
        self.DATABASE_URL = default_database_url()
        self.DATA_DIR = str(default_data_dir())
        self.SECRET_KEY = os.environ.get("DIALER_SECRET_KEY") or os.urandom(32).hex()
        self.MAX_CONTENT_LENGTH = int(os.environ.get("DIALER_MAX_BODY", 1024 * 1024))
        self.SESSION_COOKIE_HTTPONLY = True
        self.SESSION_COOKIE_SAMESITE = "Lax"
        self.SESSION_COOKIE_SECURE = os.environ.get("DIALER_SECURE_COOKIES", "0") == "1"
        self.HEARTBEAT_TIMEOUT_S = float(os.environ.get("DIALER_HEARTBEAT_TIMEOUT", 15))
        self.LEASE_SECONDS = int(os.environ.get("DIALER_LEASE_SECONDS", 900))
        self.TESTING = False

    def as_dict(self) -> dict:
        return {k: v for k, v in vars(self).items() if k.isupper()}


class TestConfig(Config):
    def __init__(self, database_url: str) -> None:
        super().__init__()
        self.DATABASE_URL = database_url
        self.SECRET_KEY = "test-secret"
        self.TESTING = True
        self.WTF_CSRF_ENABLED = True

"""Options shared by several commands (sqlite-utils style decorators)."""
from __future__ import annotations

import click

from ..config import default_database_url
from ..db import Database


def database_option(func):
    return click.option(
        "--database",
        "database_url",
        envvar="DIALER_DATABASE_URL",
        default=default_database_url,
        show_default="sqlite file under $DIALER_DATA_DIR (./var)",
        help="SQLAlchemy URL of the database.",
    )(func)


def silent_option(func):
    return click.option("--silent", is_flag=True, help="No progress bar.")(func)


def open_database(url: str) -> Database:
    """A Database that has been checked to be migrated (else a clear error)."""
    db = Database(url)
    db.check_migrated()
    return db

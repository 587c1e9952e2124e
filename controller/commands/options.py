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
    from sqlalchemy.exc import OperationalError  # local: keep option import cheap

    from ..db import NotMigratedError

    try:
        db = Database(url)
    except Exception as err:  # bad URL, missing driver: one line, no traceback
        raise click.ClickException(f"cannot use database {url!r}: {err}") from err
    try:
        db.check_migrated()
    except NotMigratedError as err:
        db.dispose()
        raise click.ClickException(str(err)) from err
    except OperationalError as err:
        db.dispose()
        raise click.ClickException(f"cannot open the database: {err.orig}") from err
    return db

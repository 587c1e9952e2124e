"""`dialer db ...`: schema migrations."""
from __future__ import annotations

import click
from sqlalchemy.engine import make_url

from .. import db as dbmod
from .options import database_option


@click.group("db")
def db_group() -> None:
    """Create or migrate the database schema."""


@db_group.command("upgrade")
@database_option
@click.argument("revision", default="heads")
def upgrade(database_url: str, revision: str) -> None:
    """Run migrations up to REVISION (default: all heads)."""
    dbmod.upgrade(database_url, revision)
    click.echo(f"database {make_url(database_url).render_as_string(hide_password=True)} is at {revision}")


@db_group.command("current")
@database_option
def current(database_url: str) -> None:
    """Show the revision the database is at."""
    engine = dbmod.make_engine(database_url)
    revs = dbmod.current_revisions(engine)
    click.echo(", ".join(sorted(revs)) or "not migrated")


COMMANDS = [db_group]

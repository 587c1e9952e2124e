"""`dialer user ...`: dashboard logins."""
from __future__ import annotations

import click

from ..services import users
from .options import database_option, open_database


@click.group("user")
def user_group() -> None:
    """Manage dashboard users (supervisors)."""


@user_group.command("add")
@database_option
@click.argument("name")
@click.option("--password", envvar="DIALER_USER_PASSWORD",
              help="The password (or $DIALER_USER_PASSWORD). Without it you are prompted.")
@click.option("--prompt", "prompt", is_flag=True, help="Ask for the password (hidden, twice).")
@click.option("--role", type=click.Choice(users.ROLES), default="supervisor", show_default=True)
def add(database_url: str, name: str, password: str | None, prompt: bool, role: str) -> None:
    """Create dashboard user NAME."""
    if prompt or not password:
        password = click.prompt("Password", hide_input=True, confirmation_prompt=True)
    info = users.add_user(open_database(database_url), name, password, role=role)
    click.echo(f"user {info.username} added ({info.role})")


@user_group.command("password")
@database_option
@click.argument("name")
@click.option("--password", envvar="DIALER_USER_PASSWORD", help="New password; prompted when missing.")
def password_cmd(database_url: str, name: str, password: str | None) -> None:
    """Set a new password for user NAME."""
    if not password:
        password = click.prompt("New password", hide_input=True, confirmation_prompt=True)
    users.set_password(open_database(database_url), name, password)
    click.echo(f"password of {name} changed")


@user_group.command("list")
@database_option
def list_cmd(database_url: str) -> None:
    """List dashboard users."""
    rows = users.list_users(open_database(database_url))
    if not rows:
        click.echo("no users yet: create one with `dialer user add NAME`")
        return
    for u in rows:
        click.echo(f"{u.username}\t{u.role}\t{u.created_at:%Y-%m-%d %H:%M}")


COMMANDS = [user_group]

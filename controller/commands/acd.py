"""`dialer acd ...`: the remote center's ACD for IVR proxies (SPEC R3-R6)."""
from __future__ import annotations

import json

import click

from ..services import acd, ivr
from .options import database_option, open_database


@click.group("acd")
def acd_group() -> None:
    """Remote-center ACD queues, operators, peer keys and IVR menus."""


@acd_group.command("peer-add")
@click.argument("name")
@click.option("--role", type=click.Choice(["center", "switch"]), default="center", show_default=True,
              help="center: a local IVR placing proxies; switch: this center's leg acceptor.")
@database_option
def peer_add(name, role, database_url) -> None:
    """Create an API key for a center (printed once, stored hashed)."""
    key = acd.create_peer(open_database(database_url), name, role=role)
    click.echo(key)


@acd_group.command("queue")
@click.argument("skill")
@click.option("--bridge-position", type=int, default=None, help="Bridge when at this position [1].")
@click.option("--bridge-setup", "bridge_setup_s", type=float, default=None,
              help="Or when the expected wait is below this many seconds [5].")
@click.option("--offer-timeout", "offer_timeout_s", type=float, default=None,
              help="Seconds an operator waits for the bridged leg [30].")
@click.option("--token-ttl", "token_ttl_s", type=float, default=None, help="Token lifetime in seconds [60].")
@database_option
def queue(skill, database_url, **settings) -> None:
    """Create or update the ACD queue for SKILL."""
    acd.ensure_queue(open_database(database_url), skill, **{k: v for k, v in settings.items() if v is not None})
    click.echo(f"queue {skill} ready")


@acd_group.command("operator")
@click.argument("name")
@click.argument("extension")
@click.option("--skill", "skills", multiple=True, required=True, help="Queue(s) this operator serves.")
@click.option("--state", type=click.Choice(["available", "busy", "offline"]), default="available",
              show_default=True)
@database_option
def operator(name, extension, skills, state, database_url) -> None:
    """Add or update an operator reachable at EXTENSION (a dial string, e.g. user/2001)."""
    acd.add_operator(open_database(database_url), name, extension, skills, state=state)
    click.echo(f"operator {name} ({extension}) {state} in {', '.join(skills)}")


@acd_group.command("proxies")
@database_option
def proxies(database_url) -> None:
    """List the live proxies in every queue."""
    for p in acd.list_proxies(open_database(database_url)):
        wait = "-" if p.expected_wait_s is None else f"{p.expected_wait_s:.0f}s"
        click.echo(f"{p.id}  {p.skill:<12} {p.state:<9} pos {p.position:<3} wait {wait:<6} "
                   f"leg {'yes' if p.has_leg else 'no':<3} {p.caller_number or ''}")


@acd_group.command("menu-load")
@click.argument("path", type=click.Path(exists=True, dir_okay=False))
@database_option
def menu_load(path, database_url) -> None:
    """Publish an IVR menu (JSON or TOML) for local centers to download (R3)."""
    from esl_dialer.ivr.menu import MenuError, load_menu

    try:
        menu = load_menu(path)
    except MenuError as err:
        raise click.ClickException(str(err)) from None
    doc = {"name": menu.name, "start": menu.start, "version": menu.version,
           "nodes": {k: v for k, v in menu.nodes.items() if k != "__hangup__"}}
    etag = ivr.put_menu(open_database(database_url), json.loads(json.dumps(doc)))
    click.echo(f"menu {menu.name} published (ETag {etag})")


COMMANDS = [acd_group]

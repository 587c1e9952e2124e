"""`dialer campaign ...`: create and list campaigns."""
from __future__ import annotations

import click

from esl_dialer.messages import DialMode, TimezonePolicy

from ..services import campaigns
from .options import database_option, open_database


@click.group("campaign")
def campaign_group() -> None:
    """Create and list campaigns."""


@campaign_group.command("create")
@click.argument("name")
@click.option("--dial-mode", type=click.Choice([m.value for m in DialMode]), default=DialMode.PREDICTIVE.value,
              show_default=True, help="How numbers are dialed (SPEC D2).")
@click.option("--ratio", "dial_ratio", type=float, default=1.0, show_default=True,
              help="Lines per agent in power mode.")
@click.option("--abandon-target", default="3%", show_default=True,
              help="Maximum abandonment rate, as 0.03 or 3%.")
@click.option("--window", default="08:00-21:00", show_default=True,
              help="Local calling hours in the called party's time zone.")
@click.option("--timezone-policy", type=click.Choice([p.value for p in TimezonePolicy]),
              default=TimezonePolicy.NUMBER.value, show_default=True,
              help="number: the zone of the number's prefix; campaign: --timezone for all.")
@click.option("--timezone", "default_timezone", default="America/New_York", show_default=True,
              help="Campaign time zone (fallback when a number's zone is unknown).")
@click.option("--default-region", default="US", show_default=True,
              help="Region for numbers written without +country code.")
@click.option("--caller-id", "caller_id_number", default=None, help="Caller id number presented.")
@click.option("--caller-id-name", default=None, help="Caller id name presented.")
@database_option
def create(database_url: str, name: str, **options) -> None:
    """Create a campaign NAME (status draft)."""
    db = open_database(database_url)
    try:
        c = campaigns.create_campaign(db, name, **options)
    finally:
        db.dispose()
    click.echo(f"campaign {c.name!r} created (id {c.id}, {c.dial_mode.value}, window "
               f"{c.window_start}-{c.window_end}, abandon target {c.abandon_target:.1%})")


@campaign_group.command("list")
@database_option
def list_(database_url: str) -> None:
    """List campaigns with their pools and record counts."""
    db = open_database(database_url)
    try:
        rows = campaigns.list_campaigns(db)
    finally:
        db.dispose()
    if not rows:
        click.echo("no campaigns (create one with `dialer campaign create NAME`)")
        return
    click.echo(f"{'id':>4}  {'name':<24} {'status':<9} {'mode':<12} {'window':<12} {'records':>9}  pools")
    for c in rows:
        counts = ", ".join(f"{k} {v}" for k, v in sorted(c.records.items()))
        click.echo(f"{c.id:>4}  {c.name:<24} {c.status:<9} {c.dial_mode:<12} {c.window:<12} "
                   f"{c.total_records:>9}  {', '.join(c.pools) or '-'}" + (f"  ({counts})" if counts else ""))


COMMANDS = [campaign_group]

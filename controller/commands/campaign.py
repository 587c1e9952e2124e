"""`dialer campaign ...`: create, list, start/pause/resume/finish, set campaigns and their recycle rules."""
from __future__ import annotations

import click

from esl_dialer.messages import DialMode, TimezonePolicy

from ..services import campaigns, recycling
from .options import database_option, open_database


@click.group("campaign")
def campaign_group() -> None:
    """Create, list and control campaigns."""


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


def _status_command(action: str, help_text: str) -> click.Command:
    @click.argument("name")
    @database_option
    def command(database_url: str, name: str) -> None:
        db = open_database(database_url)
        try:
            change = campaigns.change_status(db, name, action)
        finally:
            db.dispose()
        click.echo(f"campaign {change.campaign!r}: {change.old.value} -> {change.new.value} "
                   f"({change.workers_notified} worker(s) notified)")

    command.__doc__ = help_text
    return campaign_group.command(action)(command)


start = _status_command("start", "Start campaign NAME (draft -> active): its workers begin dialing (P14).")
pause = _status_command("pause", "Pause campaign NAME: workers place no new calls; calls in progress finish.")
resume = _status_command("resume", "Resume a paused campaign NAME: workers dial again within seconds.")
finish = _status_command("finish", "Finish campaign NAME: workers stop dialing and hand back the records they hold.")


@campaign_group.command("set")
@click.argument("name")
@click.option("--dial-mode", type=click.Choice([m.value for m in DialMode]), default=None, help="Dial mode (D2).")
@click.option("--ratio", "dial_ratio", type=float, default=None, help="Lines per agent in power mode.")
@click.option("--abandon-target", default=None, help="Maximum abandonment rate, as 0.03 or 3% (X1).")
@click.option("--window", default=None, help="Local calling hours, HH:MM-HH:MM.")
@click.option("--caller-id", "caller_id_number", default=None, help="Caller id number ('' clears it).")
@click.option("--caller-id-name", default=None, help="Caller id name ('' clears it).")
@click.option("--abandon-message", default=None, help="Sound file played to abandoned parties (X1).")
@database_option
def set_(database_url: str, name: str, **options) -> None:
    """Change campaign NAME's dialing settings; its workers apply them within seconds."""
    db = open_database(database_url)
    try:
        settings = campaigns.update_settings(db, name, **options)
    finally:
        db.dispose()
    click.echo(f"campaign {settings['name']!r}: {settings['dial_mode']}, ratio {settings['dial_ratio']:g}, "
               f"abandon target {settings['abandon_target']:.1%}, window {settings['window_start']}-"
               f"{settings['window_end']}, caller id {settings['caller_id_number'] or '-'}"
               + (f" ({settings['caller_id_name']})" if settings['caller_id_name'] else ""))


@campaign_group.command("recycle")
@click.argument("name")
@click.option("--result", type=click.Choice(list(recycling.RECYCLABLE)), default=None,
              help="The result whose rule to set (with --retry-minutes and --max-attempts).")
@click.option("--retry-minutes", type=float, default=None, help="Minutes before the record is dialed again.")
@click.option("--max-attempts", type=int, default=None, help="Attempts in all before the record is exhausted.")
@click.option("--reset", type=click.Choice(list(recycling.RECYCLABLE)), default=None,
              help="Drop the campaign's rule for this result (the default applies again).")
@database_option
def recycle(database_url: str, name: str, result: str | None, retry_minutes: float | None,
            max_attempts: int | None, reset: str | None) -> None:
    """Show or change campaign NAME's recycle rules (P7): retry delay and attempts per result."""
    if result is not None and (retry_minutes is None or max_attempts is None):
        raise click.UsageError("--result needs --retry-minutes and --max-attempts")
    if result is None and (retry_minutes is not None or max_attempts is not None):
        raise click.UsageError("--retry-minutes and --max-attempts need --result")
    db = open_database(database_url)
    try:
        if reset is not None:
            recycling.reset_rule(db, name, reset)
        if result is not None:
            recycling.set_rule(db, name, result, retry_minutes, max_attempts)
        current = recycling.rules(db, name)
    finally:
        db.dispose()
    click.echo(f"{'result':<10} {'retry after':>12} {'max attempts':>13}")
    for r in current:
        click.echo(f"{r.result:<10} {r.retry_minutes:>8g} min {r.max_attempts:>13}" + ("  (default)" if r.is_default else ""))


COMMANDS = [campaign_group]

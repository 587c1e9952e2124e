"""`dialer dnc ...` and `dialer scrub`: the do-not-call list (SPEC D9)."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ..services import dnc
from .options import database_option, open_database, silent_option


@click.group("dnc")
def dnc_group() -> None:
    """Manage the do-not-call list."""


@dnc_group.command("add")
@click.argument("number")
@click.option("--source", default="manual", show_default=True, help="Where the entry came from.")
@click.option("--default-region", default="US", show_default=True,
              help="Region for a number without +country code.")
@database_option
def add(database_url: str, number: str, source: str, default_region: str) -> None:
    """Put NUMBER on the do-not-call list."""
    db = open_database(database_url)
    try:
        e164, added = dnc.add_number(db, number, source, default_region)
    finally:
        db.dispose()
    click.echo(f"{e164} added to the DNC list" if added else f"{e164} is already on the DNC list")


@dnc_group.command("load")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--source", default=None, help="Source label [default: the file name].")
@click.option("--default-region", default="US", show_default=True,
              help="Region for numbers without +country code.")
@silent_option
@database_option
def load(database_url: str, file: Path, source: str | None, default_region: str, silent: bool) -> None:
    """Load FILE: one number per line, or a CSV with a number/phone column."""
    db = open_database(database_url)
    try:
        if silent:
            summary = dnc.load_file(db, file, source, default_region)
        else:
            size = os.path.getsize(file) if file.is_file() else 0
            with click.progressbar(length=max(size, 1), label=f"loading {file.name}",
                                   file=sys.stderr) as bar:
                summary = dnc.load_file(db, file, source, default_region, progress=bar.update)
    finally:
        db.dispose()
    click.echo(f"DNC list: {summary.added} added, {summary.already} already listed, "
               f"{summary.invalid} invalid, {summary.total} lines in {summary.seconds:.1f} s")
    click.echo("run `dialer scrub --campaign NAME` to apply the list to records already loaded")


@click.command("scrub")
@click.option("--campaign", "-c", required=True, help="Campaign name.")
@database_option
def scrub(database_url: str, campaign: str) -> None:
    """Re-check a campaign's open records against the DNC list."""
    db = open_database(database_url)
    try:
        summary = dnc.scrub_campaign(db, campaign)
    finally:
        db.dispose()
    detail = ", ".join(f"{k} {v}" for k, v in sorted(summary.by_status.items()))
    click.echo(f"campaign {summary.campaign!r}: {summary.checked} open records checked, "
               f"{summary.moved} moved to DNC" + (f" ({detail})" if detail else ""))


COMMANDS = [dnc_group, scrub]

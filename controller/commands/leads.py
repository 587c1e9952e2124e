"""`dialer leads load`: load call records from a CSV file."""
from __future__ import annotations

import os
import sys
from pathlib import Path

import click

from ..services import leads
from .options import database_option, open_database, silent_option


@click.group("leads")
def leads_group() -> None:
    """Load call records (leads) into a campaign."""


@leads_group.command("load")
@click.argument("file", type=click.Path(dir_okay=False, path_type=Path))
@click.option("--campaign", "-c", required=True, help="Campaign name (see `dialer campaign list`).")
@click.option("--pool", "-p", required=True, help="Pool name; created if missing.")
@click.option("--default-region", default=None,
              help="Region for numbers without +country code [default: the campaign's].")
@click.option("--map", "maps", multiple=True, metavar="COLUMN=FIELD",
              help=f"Map a CSV column to a field ({', '.join(leads.FIELDS)}); repeatable.")
@click.option("--delimiter", default=None, help="Field delimiter [default: sniffed].")
@click.option("--workers", type=int, default=None,
              help="Parse processes [default: one per core for files over 2 MiB].")
@silent_option
@database_option
def load(database_url: str, file: Path, campaign: str, pool: str, default_region: str | None,
         maps: tuple[str, ...], delimiter: str | None, workers: int | None, silent: bool) -> None:
    """Load FILE (CSV) into a pool of a campaign, scrubbing as it goes.

    Invalid numbers, duplicates and DNC numbers are kept out and written with
    their line number and reason to FILE.rejects.csv.
    """
    mapping = leads.parse_mapping(maps)
    if delimiter == "\\t":
        delimiter = "\t"
    db = open_database(database_url)
    try:
        if silent:
            summary = leads.load_leads(db, file, campaign, pool, default_region=default_region,
                                       mapping=mapping, delimiter=delimiter, workers=workers)
        else:
            size = os.path.getsize(file) if file.is_file() else 0
            with click.progressbar(length=max(size, 1), label=f"loading {file.name}", file=sys.stderr) as bar:
                summary = leads.load_leads(db, file, campaign, pool, default_region=default_region,
                                           mapping=mapping, delimiter=delimiter, workers=workers,
                                           progress=bar.update)
    finally:
        db.dispose()
    for line in summary.lines():
        click.echo(line)


COMMANDS = [leads_group]

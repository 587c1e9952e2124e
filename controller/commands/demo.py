"""`dialer demo`: a ready-to-look-at database with the sample campaign loaded.

First version (issue 2): migrates ``var/demo/dialer.db``, creates campaign
"demo", loads ``samples/demo_dnc.txt`` and ``samples/demo_leads.csv`` and
prints the load summary.  :func:`prepare_demo_database` is the reusable part:
later issues start the simulated switch, the controller and the workers on the
database it returns.  Re-running is safe: the campaign is reused and the
numbers already loaded count as duplicates.
"""
from __future__ import annotations

from pathlib import Path

import click

from ..db import Database, upgrade
from ..errors import NotFound
from ..services import campaigns, dnc, leads

ROOT = Path(__file__).resolve().parent.parent.parent
SAMPLES = ROOT / "samples"
DEMO_DB = Path("var") / "demo" / "dialer.db"
DEMO_CAMPAIGN = "demo"
DEMO_POOL = "main"


def prepare_demo_database(
    path: str | Path = DEMO_DB, *, samples: Path = SAMPLES, echo=None
) -> tuple[Database, leads.LoadSummary]:
    """Migrate the SQLite file at ``path``, create the demo campaign, load the samples.

    Returns the open Database (the caller disposes it) and the lead-load summary.
    ``echo`` (a print-like callable) reports the steps.
    """
    say = echo or (lambda _msg: None)
    path = Path(path).resolve()
    url = f"sqlite:///{path}"
    upgrade(url)
    db = Database(url)
    db.check_migrated()
    say(f"database {path} migrated")
    try:
        campaigns.get_campaign(db, DEMO_CAMPAIGN)
        say(f"campaign {DEMO_CAMPAIGN!r} exists")
    except NotFound:
        campaigns.create_campaign(db, DEMO_CAMPAIGN, dial_mode="predictive", abandon_target=0.03,
                                  window="08:00-21:00", default_region="US")
        say(f"campaign {DEMO_CAMPAIGN!r} created")
    dnc_summary = dnc.load_file(db, samples / "demo_dnc.txt", source="demo")
    say(f"DNC list: {dnc_summary.added} added, {dnc_summary.already} already listed")
    summary = leads.load_leads(db, samples / "demo_leads.csv", DEMO_CAMPAIGN, DEMO_POOL,
                               rejects_path=path.parent / "demo_leads.rejects.csv")
    return db, summary


@click.command("demo")
@click.option("--database-file", type=click.Path(dir_okay=False, path_type=Path), default=DEMO_DB,
              show_default=True, help="SQLite file for the demo.")
def demo(database_file: Path) -> None:
    """Create a demo database and load the sample campaign."""
    db, summary = prepare_demo_database(database_file, echo=click.echo)
    try:
        for line in summary.lines():
            click.echo(line)
    finally:
        db.dispose()


COMMANDS = [demo]

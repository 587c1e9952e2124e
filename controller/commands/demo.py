"""`dialer demo`: the whole system on simulated switches (see controller/demo_stack.py).

The database part (issue 2): migrates ``var/demo/dialer.db``, creates campaign
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
@click.option("--duration", type=click.FloatRange(min=1), help="Stop after this many seconds (default: until Ctrl-C).")
@click.option("--no-ivr", is_flag=True, help="Skip the inbound side (IVR, remote center, simulated callers).")
@click.option("--port", type=click.IntRange(0, 65535), default=5000, show_default=True,
              help="Dashboard / controller port.")
@click.option("--sim-port", type=click.IntRange(0, 65535), default=8021, show_default=True,
              help="Outbound simulated switch port; the IVR switch takes the next one.")
@click.option("--console-port", type=click.IntRange(0, 65535), default=8090, show_default=True,
              help="Agent console port.")
@click.option("--ports", type=click.Choice(["fixed", "auto"]), default="fixed", show_default=True,
              help="auto: every listener on a free ephemeral port (tests, or when the defaults are taken).")
@click.option("--load-only", is_flag=True, help="Only create the database and load the sample campaign.")
@click.pass_context
def demo(ctx: click.Context, database_file: Path, duration: float | None, no_ivr: bool, port: int, sim_port: int,
         console_port: int, ports: str, load_only: bool) -> None:
    """Run the whole system on simulated switches: controller + dashboard, 5 agents dialing, IVR.

    Prints the dashboard URL and a login; Ctrl-C (or --duration) stops everything.
    """
    if load_only:
        db, summary = prepare_demo_database(database_file, echo=click.echo)
        try:
            for line in summary.lines():
                click.echo(line)
        finally:
            db.dispose()
        return
    from ..demo_stack import DemoOptions, exec_demo

    root = ctx.find_root().params.get("verbose", 0) or 0
    # the stack needs gevent's monkey-patching before anything is imported: a fresh interpreter
    options = DemoOptions(database_file=database_file, port=port, sim_port=sim_port, console_port=console_port,
                          auto_ports=ports == "auto", duration=duration, ivr=not no_ivr, verbose=root)
    try:
        exec_demo(options)
    except RuntimeError as exc:
        raise click.ClickException(str(exc)) from exc


COMMANDS = [demo]

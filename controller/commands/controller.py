"""`dialer controller`, `dialer worker add/list/remove`, `dialer queue ...` (thin over services)."""
from __future__ import annotations

import json

import click

from ..errors import InvalidInput
from .options import database_option, open_database


@click.command("controller")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", default=5000, show_default=True, type=int, help="TCP port (0 = any free port).")
@click.option("--access-log", is_flag=True, help="Log every request.")
@database_option
def controller_cmd(host: str, port: int, access_log: bool, database_url: str) -> None:
    """Serve the worker API and the dashboard (gevent WSGI server)."""
    from gevent import monkey

    monkey.patch_all()  # before psycopg is imported: it picks a gevent-aware wait then
    from .. import create_app
    from ..config import Config
    from ..serve import serve

    config = Config()
    config.DATABASE_URL = database_url
    app = create_app(config)
    click.echo(f"controller on http://{host}:{port}/ (dashboard /, API /api/v1); Ctrl-C stops it")
    serve(app, host, port, access_log=access_log)


# --- workers -----------------------------------------------------------------


@click.command("add")
@click.argument("name")
@click.option("--agent", required=True, help="Agent name or extension (created if new).")
@click.option("--campaign", required=True, help="Campaign name or id.")
@click.option("--skill", type=int, help="Agent skill level (P13).")
@click.option("--extension", help="Dial string of a new agent if not the same as --agent.")
@database_option
def worker_add(name: str, agent: str, campaign: str, skill: int | None, extension: str | None,
               database_url: str) -> None:
    """Register a worker for an agent and print its token (shown once)."""
    from ..services import queues, workers

    db = open_database(database_url)
    new = workers.add_worker(db, name, agent=agent, campaign_id=queues.resolve_campaign_id(db, campaign),
                             skill=skill, extension=extension)
    click.echo(f"worker {new.name} (agent {new.agent_name}, queue {new.queue_id}); token, shown once:")
    click.echo(new.token)


@click.command("list")
@database_option
def worker_list(database_url: str) -> None:
    """List workers with their agent, campaign and last heartbeat."""
    from ..services import workers

    for w in workers.list_workers(open_database(database_url)):
        click.echo(f"{w['name']}\tagent={w['agent']}\tcampaign={w['campaign']}\tlast_heartbeat={w['last_heartbeat']}")


@click.command("remove")
@click.argument("name")
@database_option
def worker_remove(name: str, database_url: str) -> None:
    """Remove a worker (its token stops working)."""
    import sqlalchemy as sa

    from ..errors import NotFound
    from ..models import Worker
    from ..services import workers

    db = open_database(database_url)
    with db.session() as s:
        wid = s.scalar(sa.select(Worker.id).where(Worker.name == name))
    if wid is None:
        raise NotFound(f"no worker named {name!r}")
    workers.revoke_worker(db, wid)
    click.echo(f"worker {name} removed")


WORKER_SUBCOMMANDS = [worker_add, worker_list, worker_remove]


def _worker_group() -> list:
    """Attach to the worker-side `dialer worker` group if present, else own one."""
    try:
        from esl_dialer.commands.worker import worker_group
    except ImportError:
        worker_group = None
    if worker_group is not None:
        for cmd in WORKER_SUBCOMMANDS:
            worker_group.add_command(cmd)
        return []

    @click.group("worker")
    def own_group() -> None:
        """Register and manage dialing workers."""

    for cmd in WORKER_SUBCOMMANDS:
        own_group.add_command(cmd)
    return [own_group]


# --- queues ------------------------------------------------------------------


@click.group("queue")
def queue_group() -> None:
    """Pools, queues and selection rules (P1-P5, P8)."""


def _show(q) -> None:
    click.echo(f"queue {q.name} (id {q.id}) worker={q.worker_name or '-'} mode={q.selection_mode.value} "
               f"queued={q.queued} leased={q.leased} rate={q.rate_per_minute}/min "
               f"lead={q.lead_minutes}min size={q.min_size}-{q.max_size}")
    for f in q.feeds:
        click.echo(f"  pool {f.pool_name} (id {f.pool_id}) position={f.position} weight={f.weight:g}"
                   f"{' shareable' if f.shareable else ''}")
    if not q.feeds:
        click.echo("  (no feeds: all campaign pools in pool order)")


@queue_group.command("list")
@click.option("--campaign", help="Only this campaign (name or id).")
@database_option
def queue_list(campaign: str | None, database_url: str) -> None:
    """List queues with their rules and depletion rates."""
    from ..services import queues

    db = open_database(database_url)
    cid = queues.resolve_campaign_id(db, campaign) if campaign else None
    for q in queues.list_queues(db, cid):
        _show(q)


@queue_group.command("create")
@click.argument("name")
@click.option("--campaign", required=True, help="Campaign name or id.")
@click.option("--worker", "worker_name", help="Worker that leases from it.")
@click.option("--mode", type=click.Choice(["priority", "percentage", "combined"]), default="priority",
              show_default=True)
@click.option("--lead-minutes", type=float, default=5.0, show_default=True)
@click.option("--max-size", type=int, default=500, show_default=True)
@database_option
def queue_create(name, campaign, worker_name, mode, lead_minutes, max_size, database_url) -> None:
    """Create a queue in a campaign."""
    import sqlalchemy as sa

    from ..models import Worker
    from ..services import queues

    db = open_database(database_url)
    worker_id = None
    if worker_name:
        with db.session() as s:
            worker_id = s.scalar(sa.select(Worker.id).where(Worker.name == worker_name))
        if worker_id is None:
            raise InvalidInput(f"no worker named {worker_name!r}", field="worker")
    q = queues.create_queue(db, queues.resolve_campaign_id(db, campaign), name, worker_id=worker_id,
                            selection_mode=mode, lead_minutes=lead_minutes, max_size=max_size)
    _show(q)


@queue_group.command("pool")
@click.argument("name")
@click.option("--campaign", required=True, help="Campaign name or id.")
@click.option("--difficulty", type=int, default=0, show_default=True)
@database_option
def queue_pool(name, campaign, difficulty, database_url) -> None:
    """Create a pool in a campaign (at the end of the pool order)."""
    from ..services import queues

    db = open_database(database_url)
    p = queues.create_pool(db, queues.resolve_campaign_id(db, campaign), name, difficulty=difficulty)
    click.echo(f"pool {p.name} (id {p.id}) position={p.position}")


@queue_group.command("feeds")
@click.argument("queue")
@click.option("--campaign", required=True, help="Campaign name or id.")
@click.option("--mode", type=click.Choice(["priority", "percentage", "combined"]), help="Change the rule too.")
@click.option("--pool", "pools", multiple=True, required=True,
              help="POOL[:WEIGHT[:POSITION]][:shared], repeatable, in priority order.")
@database_option
def queue_feeds(queue, campaign, mode, pools, database_url) -> None:
    """Set which pools feed QUEUE, e.g. --pool A:70 --pool B:30 --mode percentage (P4, P8)."""
    from ..services import queues

    db = open_database(database_url)
    qid = queues.resolve_queue_id(db, campaign, queue)
    feeds = []
    for i, spec in enumerate(pools):
        parts = spec.split(":")
        shared = parts[-1] == "shared"
        if shared:
            parts = parts[:-1]
        try:
            weight = float(parts[1]) if len(parts) > 1 else 0.0
            position = int(parts[2]) if len(parts) > 2 else i
        except ValueError:
            raise InvalidInput(f"bad --pool {spec!r}: use POOL[:WEIGHT[:POSITION]][:shared]", field="pool") from None
        feeds.append(queues.FeedSpec(queues.resolve_pool_id(db, campaign, parts[0]), position, weight, shared))
    _show(queues.set_feeds(db, qid, feeds, selection_mode=mode))


@queue_group.command("reorder-pools")
@click.option("--campaign", required=True, help="Campaign name or id.")
@click.argument("pools", nargs=-1, required=True)
@database_option
def queue_reorder(campaign, pools, database_url) -> None:
    """Put the campaign's pools in this order (P8)."""
    from ..services import queues

    db = open_database(database_url)
    cid = queues.resolve_campaign_id(db, campaign)
    for p in queues.reorder_pools(db, cid, [queues.resolve_pool_id(db, campaign, name) for name in pools]):
        click.echo(f"{p.position}\t{p.name}\tready={p.ready}")


@queue_group.command("api-key")
@click.option("--campaign", required=True, help="Campaign name or id.")
@database_option
def queue_api_key(campaign, database_url) -> None:
    """Make a new web-lead API key for a campaign (D10), shown once."""
    from ..services import distribution, queues

    db = open_database(database_url)
    click.echo(distribution.set_campaign_api_key(db, queues.resolve_campaign_id(db, campaign)))


@queue_group.command("show")
@click.argument("queue")
@click.option("--campaign", required=True, help="Campaign name or id.")
@click.option("--json", "as_json", is_flag=True)
@database_option
def queue_show(queue, campaign, as_json, database_url) -> None:
    """Show one queue."""
    import dataclasses

    from ..services import queues

    db = open_database(database_url)
    q = queues.get_queue(db, queues.resolve_queue_id(db, campaign, queue))
    if as_json:
        click.echo(json.dumps(dataclasses.asdict(q), default=str))
    else:
        _show(q)


COMMANDS = [controller_cmd, queue_group, *_worker_group()]

"""`dialer worker`: run dialing workers, one per agent, in this process (D1, D11).

Thin over :mod:`esl_dialer.worker`.  The group runs the workers when called
without a subcommand; the control plane attaches its own subcommands
(`dialer worker add ...`) to this same group object (see /tmp/notes: esl_dialer
never imports controller, the other way round is fine).

No monkey-patching is needed: the controller client uses gevent sockets
directly, the switch adapter uses gevent sockets, the contingency file is local
SQLite.
"""
from __future__ import annotations

import logging
import signal
import tomllib
from dataclasses import fields
from pathlib import Path
from typing import Any

import click
import gevent
import gevent.event

from ..messages import DialMode

logger = logging.getLogger(__name__)


def parse_hostport(value: str, default_port: int = 8021) -> tuple[str, int]:
    host, _, port = value.rpartition(":")
    if not host:
        return value, default_port
    try:
        return host, int(port)
    except ValueError:
        raise click.BadParameter(f"expected host:port, got {value!r}") from None


def build_settings(opts: dict[str, Any], config: dict[str, Any] | None) -> tuple[list, tuple[str, int], str]:
    """WorkerSettings for every agent from CLI options over an optional TOML config."""
    from ..worker import CAMPAIGN_SETTINGS, WorkerSettings

    CAMPAIGN_FIELDS = frozenset(CAMPAIGN_SETTINGS.values())

    cfg = dict(config or {})
    agents_cfg = list(cfg.pop("agent", []) or [])
    merged = {k: v for k, v in cfg.items()}
    for k, v in opts.items():
        if v is not None and v != ():
            merged[k] = v
    controller = merged.get("controller")
    if not controller:
        raise click.UsageError("--controller URL is required (or `controller = ...` in the config file)")
    agents = [a.strip() for a in str(merged.get("agents") or "").split(",") if a.strip()]
    tokens = [t.strip() for t in str(merged.get("token") or "").split(",") if t.strip()]
    if agents:
        if len(tokens) != len(agents):
            raise click.UsageError("give one --token per agent (comma-separated, same order as --agents)")
        agents_cfg += [{"extension": a, "token": t} for a, t in zip(agents, tokens)]
    if not agents_cfg:
        raise click.UsageError("no agents: use --agents 1001,1002 --token T1,T2 or [[agent]] tables in --config")
    known = {f.name for f in fields(WorkerSettings)}
    common = {k: v for k, v in merged.items() if k in known and k not in ("agent", "token", "controller")}
    if "mode" in common:
        try:
            common["mode"] = DialMode(str(common["mode"]))
        except ValueError:
            raise click.BadParameter(f"mode must be one of {[m.value for m in DialMode]}") from None
    if "data_dir" in common:
        common["data_dir"] = Path(common["data_dir"])
    out = []
    seen = set()
    for a in agents_cfg:
        ext = str(a.get("extension") or "").strip()
        if not ext or not a.get("token"):
            raise click.UsageError("every agent needs an extension and a token")
        if ext in seen:
            raise click.UsageError(f"agent {ext} is listed twice")
        seen.add(ext)
        per = {k: v for k, v in a.items() if k in known and k not in ("agent", "token")}
        given = {**common, **per}
        # P14/D2/X1: dialing settings come from the campaign unless given here (then they win)
        given["overrides"] = frozenset(k for k in CAMPAIGN_FIELDS if k in given)
        out.append(WorkerSettings(agent=ext, controller=str(controller), token=str(a["token"]), **given))
    switch = parse_hostport(str(merged.get("switch") or "127.0.0.1:8021"))
    return out, switch, str(merged.get("password") or "ClueCon")


@click.group("worker", invoke_without_command=True)
@click.option("--controller", help="Controller URL, e.g. http://127.0.0.1:5000.")
@click.option("--token", envvar="DIALER_WORKER_TOKEN", help="Worker token(s), comma-separated, one per agent.")
@click.option("--agents", help="Agent extensions, comma-separated: one worker per agent.")
@click.option("--switch", help="FreeSWITCH event socket host:port (default 127.0.0.1:8021).")
@click.option("--password", envvar="DIALER_ESL_PASSWORD", help="Event socket password (default ClueCon).")
@click.option("--config", "config_path", type=click.Path(exists=True, dir_okay=False), help="TOML file with settings and [[agent]] tables.")
@click.option("--data-dir", help="Where the contingency files live (default var/worker).")
@click.option("--mode", type=click.Choice([m.value for m in DialMode]), help="Dial mode (default progressive).")
@click.option("--ratio", type=float, help="Lines per free agent in power mode.")
@click.option("--dial-template", help="Dial string for a number, e.g. 'sofia/gateway/out/{number}'.")
@click.option("--greetings-dir", help="Directory of agents' greetings (<ext>.wav) on the switch.")
@click.option("--abandon-message", help="Sound file played on every abandon (X1).")
@click.option("--campaign", help="Campaign name, set as a channel variable on every call.")
@click.option("--wrapup", "wrapup_s", type=float, help="Wrap-up seconds after each call.")
@click.option("--console", "console_addr", help="Serve the agent console (screen pop, D5) on host:port, e.g. 127.0.0.1:8090.")
@click.pass_context
def worker_group(ctx: click.Context, config_path: str | None, console_addr: str | None, **opts: Any) -> None:
    """Run dialing workers for agents (without a subcommand)."""
    if ctx.invoked_subcommand is not None:
        return
    config = None
    if config_path:
        try:
            config = tomllib.loads(Path(config_path).read_text())
        except (OSError, tomllib.TOMLDecodeError) as exc:
            raise click.ClickException(f"cannot read {config_path}: {exc}") from exc
    settings, (host, port), password = build_settings(opts, config)
    console_addr = console_addr or (config or {}).get("console")
    console = parse_hostport(str(console_addr), 8090) if console_addr else None
    run(settings, host, port, password, console)


def run(settings: list, host: str, port: int, password: str, console: tuple[str, int] | None = None) -> None:
    from .. import switch as sw
    from ..worker_host import WorkerHost

    switch = sw.Switch(host, port, password, name=f"switch {host}:{port}")
    try:
        switch.start()
    except sw.SwitchError as exc:
        raise click.ClickException(f"cannot reach the switch at {host}:{port}: {exc}") from exc
    host_ = WorkerHost(settings, switch, console=console).start()
    done = gevent.event.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, done.set)
    click.echo(f"workers for agents {', '.join(s.agent for s in settings)} running; Ctrl-C stops them")
    while not done.wait(timeout=3600):
        pass
    click.echo("stopping: releasing unused records, flushing results")
    host_.stop()
    switch.close()


COMMANDS = [worker_group]

"""`dialer sim`: run the simulated FreeSWITCH (thin over :mod:`esl_dialer.sim`)."""
from __future__ import annotations

import logging
import signal

import click
import gevent
import gevent.event

logger = logging.getLogger(__name__)


@click.command("sim")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="Call model (TOML), e.g. freeswitch/sim.toml. Without it: built-in defaults.")
@click.option("--host", default=None, help="Address to listen on [from config, 127.0.0.1].")
@click.option("--port", type=int, default=None, help="Event-socket port [from config, 8021]; 0 = any free port.")
@click.option("--password", default=None, help="Event-socket password [from config, ClueCon].")
@click.option("--time-scale", type=float, default=None,
              help="Real seconds per simulated second (0.1 = ten times faster) [from config, 1].")
@click.option("--timing", "timing_profile", type=click.Choice(["realistic", "ideal"]), default=None,
              help="Switch-side delays: realistic (measured on FreeSWITCH 1.10) or ideal (none) "
                   "[from config, realistic].")
@click.option("--quiet", is_flag=True, help="Do not log calls.")
def sim_command(config_path, host, port, password, time_scale, timing_profile, quiet) -> None:
    """Run a simulated FreeSWITCH that speaks the real event-socket protocol."""
    from ..sim import SimConfig, SimConfigError, SimSwitch, load_sim_config

    try:
        config = load_sim_config(config_path) if config_path else SimConfig()
    except SimConfigError as err:
        raise click.ClickException(str(err)) from None
    if time_scale is not None:
        if time_scale <= 0:
            raise click.BadParameter("must be > 0", param_hint="--time-scale")
        config = config.with_overrides(time_scale=time_scale)
    if timing_profile is not None:
        from ..sim.timing import profile

        config = config.with_overrides(timing=profile(timing_profile))
    if not quiet:
        logging.getLogger("esl_dialer.sim").setLevel(logging.INFO)
        if not logging.getLogger().handlers:
            logging.basicConfig(format="%(asctime)s %(levelname)s %(name)s: %(message)s")
    sim = SimSwitch(config, host=host, port=port, password=password)
    try:
        sim.start()
    except OSError as err:
        raise click.ClickException(f"cannot listen on {sim.host}:{sim.port}: {err}") from None
    done = gevent.event.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, done.set)
    click.echo(f"simulated FreeSWITCH listening on {sim.host}:{sim.port}", err=False)
    import sys

    sys.stdout.flush()
    done.wait()
    click.echo("stopping the simulated switch")
    sim.stop(timeout=3)


COMMANDS = [sim_command]

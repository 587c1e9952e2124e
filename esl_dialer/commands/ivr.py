"""`dialer ivr` and `dialer ivr-acceptor`: the outbound-socket apps of SPEC R1-R9.

Thin over :mod:`esl_dialer.ivr.config` (local IVR) and
:mod:`esl_dialer.ivr.acceptor` (the remote center's leg acceptor).  No
monkey-patching is needed: greenswitch and the HTTP clients use gevent sockets.
"""
from __future__ import annotations

import logging
import signal

import click
import gevent
import gevent.event

logger = logging.getLogger(__name__)


def _run_until_signal(start, stop, what) -> None:
    """Start, print ``what()`` (after binding: the real port), serve until SIGINT/SIGTERM."""
    done = gevent.event.Event()
    for sig in (signal.SIGINT, signal.SIGTERM):
        gevent.signal_handler(sig, done.set)
    start()
    click.echo(what(), nl=True)
    done.wait()
    click.echo("stopping (calls get 5 s to end)")
    stop()


@click.command("ivr")
@click.option("--config", "config_path", type=click.Path(dir_okay=False), default=None,
              help="IVR config (TOML: [ivr], [centers.<name>]); see freeswitch/ivr/ivr.toml.")
@click.option("--host", default=None, help="Address to listen on [127.0.0.1].")
@click.option("--port", type=int, default=None, help="Port FreeSWITCH's socket app connects to [8084].")
@click.option("--menu", "menu_file", type=click.Path(dir_okay=False), default=None,
              help="Menu file (.json or .toml).")
@click.option("--menu-url", default=None,
              help="Download the menu from a remote center: http://host:port/api/v1/ivr/<name> (R3).")
def ivr_command(config_path, host, port, menu_file, menu_url) -> None:
    """Run the local IVR (outbound-socket app) that hands callers to remote centers."""
    from ..ivr.config import IvrConfigError, build_service, load_config

    if menu_file and menu_url:
        raise click.UsageError("give --menu or --menu-url, not both")
    try:
        doc = load_config(config_path) if config_path else {}
        service = build_service(doc, host=host, port=port, menu_file=menu_file, menu_url=menu_url)
    except IvrConfigError as err:
        raise click.ClickException(str(err)) from None
    except OSError as err:
        raise click.ClickException(f"cannot start the IVR: {err}") from None
    menu = service.menus.current()

    def start():
        try:
            service.start()
        except OSError as err:
            raise click.ClickException(f"cannot listen on {service.server.bind_address}:"
                                       f"{service.server.bind_port[0]}: {err.strerror}") from None

    _run_until_signal(start, service.stop,
                      lambda: f"IVR listening on {service.server.bind_address}:{service.server.port} "
                              f"(menu {menu.name!r} from {service.menus.last_source}); Ctrl-C stops")


@click.command("ivr-acceptor")
@click.option("--host", default="127.0.0.1", show_default=True, help="Address to listen on.")
@click.option("--port", type=int, default=8085, show_default=True, help="Port of the socket app.")
@click.option("--controller", "controller_url", required=True, envvar="DIALER_CONTROLLER_URL",
              help="This center's controller, e.g. http://127.0.0.1:5000.")
@click.option("--key", envvar="DIALER_ACD_SWITCH_KEY", required=True,
              help="A switch-role ACD key (`dialer acd peer-add NAME --role switch`).")
def acceptor_command(host, port, controller_url, key) -> None:
    """Run the remote center's leg acceptor: checks tokens, puts legs through to operators (R6)."""
    from ..ivr.acceptor import AcceptorSettings, LegAcceptor
    from ..ivr.remote_client import AcdSwitchClient
    from ..ivr.server import IvrServer

    try:
        settings = AcceptorSettings(controller=AcdSwitchClient(controller_url, key))
    except ValueError as err:
        raise click.ClickException(str(err)) from None
    server = IvrServer(lambda session: LegAcceptor(session, settings), host=host, port=port)

    def start():
        try:
            server.start()
        except OSError as err:
            raise click.ClickException(f"cannot listen on {host}:{port}: {err.strerror}") from None

    _run_until_signal(start, server.stop, lambda: f"leg acceptor listening on {host}:{server.port}; Ctrl-C stops")


COMMANDS = [ivr_command, acceptor_command]

"""`dialer agent greeting record`: the agent records their greeting by phone (D4).

FreeSWITCH calls the agent (`user/<ext>`) and, once they answer, runs the
dialplan extension that records (7199 in freeswitch/dialplan/default/
esl_dialer_agents.xml: beep, up to 20 s to
`$${sounds_dir}/esl-dialer/greetings/<ext>.wav`, played back).  The worker
plays that file to both legs on every answer.  Other `dialer agent ...`
commands may attach to ``agent_group`` (the control plane imports it, not the
other way round).
"""
from __future__ import annotations

from pathlib import Path

import click

from ..greetings import GreetingError, install_greeting
from .worker import parse_hostport


@click.group("agent")
def agent_group() -> None:
    """Agent tools on the switch (greeting recording and upload)."""


@agent_group.group("greeting")
def greeting_group() -> None:
    """The agent's pre-recorded greeting (D4)."""


def record_greeting(switch, agent: str, *, extension: str = "7199", endpoint: str | None = None,
                    answer_timeout_s: int = 30) -> str:
    """Call the agent and send the answered leg to the recording extension; returns the call uuid.

    The caller ID number is the agent's extension, which the extension uses to
    name the file.  Raises the switch adapter's errors, or ValueError when the
    agent does not answer.
    """
    res = switch.originate(endpoint or f"user/{agent}", app=None, extension=extension, dialplan="XML",
                           context="default", cid_num=agent, cid_name=f"Greeting {agent}",
                           variables={"dialer_role": "greeting", "dialer_agent": agent},
                           originate_timeout=answer_timeout_s)
    if not res.ok:
        raise ValueError(f"agent {agent} did not answer ({res.cause})")
    return res.uuid


@greeting_group.command("record")
@click.option("--agent", required=True, help="The agent's extension, e.g. 1001.")
@click.option("--switch", "switch_addr", default="127.0.0.1:8021", show_default=True, help="Event socket host:port.")
@click.option("--password", envvar="DIALER_ESL_PASSWORD", default="ClueCon", help="Event socket password.")
@click.option("--extension", default="7199", show_default=True, help="Dialplan extension that records the greeting.")
@click.option("--endpoint", help="Dial string of the agent's phone (default user/<agent>).")
def record_cmd(agent: str, switch_addr: str, password: str, extension: str, endpoint: str | None) -> None:
    """Ring the agent; after the beep they speak their greeting (up to 20 s, # ends)."""
    from .. import switch as sw

    host, port = parse_hostport(switch_addr)
    try:
        with sw.Switch(host, port, password, name=f"switch {host}:{port}") as switch:
            uuid = record_greeting(switch, agent.strip(), extension=extension, endpoint=endpoint)
    except (sw.SwitchError, ValueError) as exc:
        raise click.ClickException(str(exc)) from exc
    click.echo(f"agent {agent} answered (call {uuid}); recording after the beep")


@greeting_group.command("upload")
@click.option("--agent", required=True, help="The agent's extension, e.g. 1001.")
@click.option("--greetings-dir", default="/usr/share/freeswitch/sounds/esl-dialer/greetings", show_default=True,
              help="Where the switch reads greetings (run this on the switch host or a shared mount).")
@click.argument("wav_file", type=click.Path(exists=True, dir_okay=False, path_type=Path))
def upload_cmd(agent: str, greetings_dir: str, wav_file: Path) -> None:
    """Install WAV_FILE as the agent's greeting (16-bit PCM, 0.5-30 s)."""
    try:
        info = install_greeting(wav_file.read_bytes(), agent.strip(), greetings_dir)
    except (GreetingError, OSError) as exc:
        raise click.ClickException(f"{wav_file}: {exc}") from exc
    click.echo(f"greeting for agent {agent}: {info.path} ({info.seconds:.1f} s, {info.rate} Hz)")


COMMANDS = [agent_group]

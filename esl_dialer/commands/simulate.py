"""`dialer simulate`: rehearse a shift in virtual time (SPEC X2).

Thin over ``esl_dialer.vsim.simulate``: it builds the configuration, runs one
shift with the real pacing code and prints the figures a manager sizes
staffing with.
"""
from __future__ import annotations

import json

import click

from ..messages import DialMode
from ..pacing import PacingConfig, PacingError, make_pacer
from ..vicidial import VicidialAdaptAverage
from ..vsim import SimConfig, SimError, simulate

MODES = [m.value for m in DialMode if m is not DialMode.PREVIEW] + ["vicidial"]


@click.command("simulate")
@click.option("--agents", type=click.IntRange(1, 2000), default=20, show_default=True, help="Agents logged in.")
@click.option("--answer-rate", type=float, default=0.3, show_default=True, help="Share of calls a live person answers.")
@click.option("--talk-mean", type=float, default=120.0, show_default=True, help="Mean talk time, seconds.")
@click.option("--talk-cv", type=float, default=1.0, show_default=True, help="Coefficient of variation of talk time.")
@click.option("--wrap", "wrap_s", type=float, default=10.0, show_default=True, help="Wrap-up after each call, seconds.")
@click.option("--mode", type=click.Choice(MODES), default="predictive", show_default=True,
              help="Pacing method ('vicidial' = VICIdial ADAPT_AVERAGE baseline).")
@click.option("--ratio", type=float, default=2.0, show_default=True, help="Lines per free agent in power mode.")
@click.option("--target", type=float, default=0.03, show_default=True, help="Abandonment target (predictive).")
@click.option("--hours", type=float, default=8.0, show_default=True, help="Length of the shift.")
@click.option("--seed", type=int, default=1, show_default=True, help="Random seed (same seed, same prospects).")
@click.option("--json", "as_json", is_flag=True, help="Print the full result as JSON.")
def simulate_command(agents, answer_rate, talk_mean, talk_cv, wrap_s, mode, ratio, target, hours, seed, as_json):
    """Simulate a shift of dialing in virtual time and print occupancy and abandonment.

    Each call is answered live with probability --answer-rate after 3-15 s of
    ringing, else released at 25 s; an answered party waits at most 2 s for an
    agent; talk time is log-normal.  Runs the real pacing code.
    """
    try:
        sim_cfg = SimConfig(agents=agents, answer_rate=answer_rate, talk_mean=talk_mean, talk_cv=talk_cv,
                            wrap_s=wrap_s, hours=hours, seed=seed, enforce_d6=mode == "predictive")
        if mode == "vicidial":
            pacing_cfg = PacingConfig(abandon_target=target)

            def factory(clock):
                return VicidialAdaptAverage(pacing_cfg, clock)
        else:
            pacing_cfg = PacingConfig(mode=DialMode(mode), ratio=ratio, abandon_target=target)

            def factory(clock):
                return make_pacer(pacing_cfg, clock)
    except (SimError, PacingError) as err:
        raise click.BadParameter(str(err)) from err
    result = simulate(sim_cfg, factory)
    if as_json:
        click.echo(json.dumps(result.as_dict(), indent=1))
        return
    label = f"power {ratio:g}" if mode == "power" else mode
    click.echo(f"{agents} agents, answer rate {answer_rate:g}, talk mean {talk_mean:g} s, "
               f"{hours:g} h, {label}, seed {seed}")
    click.echo(f"occupancy:               {result.occupancy:.1%}")
    click.echo(f"abandonment rate:        {result.abandon_rate:.2%} ({result.abandoned} of {result.answered} live answers)")
    click.echo(f"worst 1-hour abandon:    {result.worst_hour_abandon_rate:.2%}")
    click.echo(f"calls per agent-hour:    {result.calls_per_agent_hour:.1f} connected, "
               f"{result.dials_per_agent_hour:.1f} dialled")
    click.echo(f"answer-to-agent connect: {result.mean_connect_s:.2f} s mean, {result.max_connect_s:.2f} s max")


COMMANDS = [simulate_command]

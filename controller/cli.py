"""The `dialer` command: one click group, thin over library functions.

Command modules live in ``controller/commands/`` and ``esl_dialer/commands/``;
each exposes ``COMMANDS`` (a list of click commands or groups) and is picked up
here, so adding a command never means editing this file.
"""
from __future__ import annotations

import importlib
import logging
import pkgutil

import click

from .errors import DialerError

COMMAND_PACKAGES = ("controller.commands", "esl_dialer.commands")


class DialerGroup(click.Group):
    """Turns domain errors into messages a person can act on (no tracebacks)."""

    def invoke(self, ctx: click.Context):
        try:
            return super().invoke(ctx)
        except DialerError as err:
            raise click.ClickException(err.message) from err


@click.group(cls=DialerGroup, context_settings={"help_option_names": ["-h", "--help"]})
@click.option("-v", "--verbose", count=True, help="More log output (-vv for debug).")
@click.version_option(package_name="esl-dialer")
def main(verbose: int) -> None:
    """esl-dialer: a distributed call-center system for FreeSWITCH."""
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s")


def _register_all() -> None:
    for package_name in COMMAND_PACKAGES:
        package = importlib.import_module(package_name)
        for info in sorted(pkgutil.iter_modules(package.__path__), key=lambda m: m.name):
            module = importlib.import_module(f"{package_name}.{info.name}")
            for command in getattr(module, "COMMANDS", []):
                main.add_command(command)


_register_all()

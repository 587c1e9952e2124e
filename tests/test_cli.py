"""The `dialer` CLI: help texts, campaign/leads/dnc/scrub commands, errors a person can act on."""
from __future__ import annotations

from pathlib import Path

import click
import pytest
from click.testing import CliRunner

from controller.cli import main

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def run(*args, ok=True):
    result = CliRunner().invoke(main, [str(a) for a in args], catch_exceptions=False)
    if ok:
        assert result.exit_code == 0, result.output
    return result


def _walk(group: click.Group, prefix=()):
    for name, command in sorted(group.commands.items()):
        yield prefix + (name,), command
        if isinstance(command, click.Group):
            yield from _walk(command, prefix + (name,))


def test_root_help_lists_commands_with_one_line_help():
    out = run("--help").output
    for name in ("campaign", "leads", "dnc", "scrub", "db", "demo"):
        assert f"  {name} " in out, out
    lines = out.split("Commands:")[1].strip().splitlines()
    for line in lines:
        name, _, text = line.strip().partition(" ")
        assert text.strip(), f"command {name} has no help text"


def test_every_command_has_help_text():
    missing = [" ".join(path) for path, command in _walk(main)
               if not (command.help or "").strip() or not command.get_short_help_str().strip()]
    assert missing == []
    for path, _ in _walk(main):
        assert run(*path, "--help").output.startswith("Usage:")


def test_campaign_create_and_list(db_url):
    out = run("campaign", "create", "spring", "--dial-mode", "power", "--ratio", "2.5", "--abandon-target", "2%",
              "--window", "09:00-20:00", "--database", db_url).output
    assert "campaign 'spring' created" in out and "power" in out and "09:00-20:00" in out and "2.0%" in out
    listed = run("campaign", "list", "--database", db_url).output
    assert "spring" in listed and "power" in listed and "09:00-20:00" in listed
    dup = run("campaign", "create", "spring", "--database", db_url, ok=False)
    assert dup.exit_code == 1 and "Error: campaign 'spring' already exists" in dup.output
    bad = run("campaign", "create", "x", "--window", "9-5", "--database", db_url, ok=False)
    assert bad.exit_code == 1 and "calling window must look like 08:00-21:00" in bad.output
    bad = run("campaign", "create", "x", "--abandon-target", "150%", "--database", db_url, ok=False)
    assert "abandon target must be between 0 and 1" in bad.output


def test_campaign_list_empty(db_url):
    assert "no campaigns" in run("campaign", "list", "--database", db_url).output


def test_leads_load_prints_summary_and_rejects(db_url, tmp_path):
    run("campaign", "create", "demo", "--database", db_url)
    run("dnc", "load", SAMPLES / "demo_dnc.txt", "--silent", "--database", db_url)
    sample = tmp_path / "demo_leads.csv"
    sample.write_bytes((SAMPLES / "demo_leads.csv").read_bytes())
    out = run("leads", "load", sample, "--campaign", "demo", "--pool", "main", "--silent",
              "--database", db_url).output
    lines = out.splitlines()
    assert lines[0].startswith("campaign 'demo', pool 'main': ") and " loaded of 315 rows in " in lines[0]
    for label in ("loaded", "duplicate", "DNC", "invalid", "rejected", "total"):
        assert any(line.split()[0] == label for line in lines[1:7]), label
    assert lines[6].split() == ["total", "315"]
    assert lines[-1] == f"rejected rows with line numbers and reasons: {sample}.rejects.csv"
    assert Path(f"{sample}.rejects.csv").read_text().startswith("line,reason,first_name")
    again = run("leads", "load", sample, "-c", "demo", "-p", "main", "--database", db_url).output
    assert "0 loaded of 315" in again  # progress bar path, re-run is safe


def test_leads_load_with_map(db_url, tmp_path):
    run("campaign", "create", "c", "--database", db_url)
    path = tmp_path / "m.csv"
    path.write_text("Tel|Who\n(415) 555-2671|Ann\n")
    out = run("leads", "load", path, "-c", "c", "-p", "p", "--map", "Tel=number", "--map", "Who=name",
              "--silent", "--database", db_url).output
    assert "1 loaded of 1 rows" in out
    bad = run("leads", "load", path, "-c", "c", "-p", "p", "--map", "Tel", "--database", db_url, ok=False)
    assert "--map takes COLUMN=FIELD" in bad.output


def test_leads_load_errors(db_url, tmp_path):
    run("campaign", "create", "c", "--database", db_url)
    missing = run("leads", "load", tmp_path / "nope.csv", "-c", "c", "-p", "p", "--silent",
                  "--database", db_url, ok=False)
    assert missing.exit_code == 1 and "does not exist" in missing.output and "Traceback" not in missing.output
    path = tmp_path / "x.csv"
    path.write_text("phone\n(415) 555-2671\n")
    unknown = run("leads", "load", path, "-c", "nope", "-p", "p", "--database", db_url, ok=False)
    assert "Error: no campaign 'nope'" in unknown.output
    empty = tmp_path / "e.csv"
    empty.write_text("")
    assert "is empty" in run("leads", "load", empty, "-c", "c", "-p", "p", "--silent",
                             "--database", db_url, ok=False).output


def test_not_migrated_database_says_what_to_run(tmp_path):
    url = f"sqlite:///{tmp_path / 'fresh.db'}"
    for args in (("campaign", "list"), ("scrub", "-c", "x"), ("dnc", "add", "4155552671")):
        result = run(*args, "--database", url, ok=False)
        assert result.exit_code == 1
        assert "run `dialer db upgrade`" in result.output


def test_dnc_add_load_and_scrub(db_url, tmp_path):
    run("campaign", "create", "c", "--database", db_url)
    path = tmp_path / "l.csv"
    path.write_text("phone\n(415) 555-2671\n(212) 555-0199\n")
    run("leads", "load", path, "-c", "c", "-p", "p", "--silent", "--database", db_url)
    assert run("dnc", "add", "(415) 555-2671", "--database", db_url).output.strip() == \
        "+14155552671 added to the DNC list"
    assert "already on the DNC list" in run("dnc", "add", "+14155552671", "--database", db_url).output
    bad = run("dnc", "add", "12", "--database", db_url, ok=False)
    assert "is not a valid phone number" in bad.output
    out = run("scrub", "--campaign", "c", "--database", db_url).output
    assert out.strip() == "campaign 'c': 2 open records checked, 1 moved to DNC (ready 1)"
    listfile = tmp_path / "dnc.txt"
    listfile.write_text("(212) 555-0199\nnope\n")
    out = run("dnc", "load", listfile, "--database", db_url).output
    assert "1 added, 0 already listed, 1 invalid, 2 lines" in out
    assert "1 moved to DNC" in run("scrub", "-c", "c", "--database", db_url).output


def test_demo_prepares_database_and_is_idempotent(tmp_path):
    from controller.commands.demo import prepare_demo_database

    path = tmp_path / "demo" / "dialer.db"
    out = run("demo", "--load-only", "--database-file", path).output  # without it the whole system runs
    assert "campaign 'demo' created" in out and "rejected rows with line numbers" in out
    db, summary = prepare_demo_database(path)
    try:
        assert summary.loaded == 0 and summary.total == 315 and summary.duplicate > 250
        from controller.services.campaigns import list_campaigns

        (c,) = list_campaigns(db)
        assert c.name == "demo" and c.total_records > 250
    finally:
        db.dispose()

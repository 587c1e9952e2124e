"""P7 recycle rules are set per campaign and result, by the service, the CLI and the dashboard."""
from __future__ import annotations

import datetime as dt

import pytest
from click.testing import CliRunner

from controller.cli import main
from controller.errors import InvalidInput, NotFound
from controller.services import distribution as D
from controller.services import queues as Q
from controller.services import recycling
from esl_dialer.messages import RecordStatus as S

from distribution_helpers import NOON_NY, fresh_caches, add_numbers, add_worker, ident, make_campaign, statuses  # noqa: F401 (fixture)

pytestmark = pytest.mark.usefixtures("fresh_caches")


def _report(db, wi, rid, result, now, tag):
    D.record_results(db, wi, D.parse_results([{"client_id": f"{tag}-{rid}", "record_id": rid, "result": result}]),
                     now=now)


def test_p7_a_rule_set_through_the_service_drives_recycling(db):
    cid = make_campaign(db, window=("08:00", "21:00"))
    a = Q.create_pool(db, cid, "A").id
    w = add_worker(db, cid, "w1", "1001")
    (rid,) = add_numbers(db, a, 1)
    wi = ident(db, w)
    defaults = {r.result: r for r in recycling.rules(db, cid)}
    assert defaults["busy"].is_default and defaults["busy"].retry_minutes == 15

    rule = recycling.set_rule(db, cid, "busy", 10, 2)
    assert (rule.retry_minutes, rule.max_attempts, rule.is_default) == (10.0, 2, False)
    assert [r["id"] for r in D.lease(db, wi, 5, now=NOON_NY).records] == [rid]
    _report(db, wi, rid, "busy", NOON_NY, "a")          # the next result follows the new rule at once
    assert [r["id"] for r in D.lease(db, wi, 5, now=NOON_NY + dt.timedelta(minutes=9)).records] == []
    later = NOON_NY + dt.timedelta(minutes=11)
    assert [r["id"] for r in D.lease(db, wi, 5, now=later).records] == [rid]
    _report(db, wi, rid, "busy", later, "b")
    assert statuses(db, [rid])[rid] == S.EXHAUSTED      # 2 attempts in all

    recycling.set_rule(db, cid, "busy", 30, 5)          # changing it updates the one rule
    assert {r.result: r for r in recycling.rules(db, cid)}["busy"].max_attempts == 5
    assert recycling.reset_rule(db, cid, "busy") is True
    assert {r.result: r for r in recycling.rules(db, cid)}["busy"].is_default
    assert recycling.reset_rule(db, cid, "busy") is False


@pytest.mark.parametrize("args, field", [
    (("answered", 10, 2), "result"),
    (("busy", -1, 2), "retry_minutes"),
    (("busy", "soon", 2), "retry_minutes"),
    (("busy", float("nan"), 2), "retry_minutes"),
    (("busy", 10, 0), "max_attempts"),
    (("busy", 10, 2.5), "max_attempts"),
    (("busy", 10, True), "max_attempts"),
])
def test_p7_bad_rules_are_refused_naming_the_field(db, args, field):
    cid = make_campaign(db)
    with pytest.raises(InvalidInput) as err:
        recycling.set_rule(db, cid, *args)
    assert err.value.field == field
    assert all(r.is_default for r in recycling.rules(db, cid))
    with pytest.raises(NotFound):
        recycling.set_rule(db, "no-such-campaign", "busy", 10, 2)


def test_p7_cli_shows_sets_and_resets_rules(db, db_url):
    make_campaign(db, name="spring")

    def run(*args):
        return CliRunner().invoke(main, ["campaign", "recycle", "spring", *args, "--database", db_url],
                                  catch_exceptions=False)

    out = run().output
    assert "busy" in out and "(default)" in out
    res = run("--result", "no_answer", "--retry-minutes", "90", "--max-attempts", "4")
    assert res.exit_code == 0, res.output
    line = next(ln for ln in res.output.splitlines() if ln.startswith("no_answer"))
    assert "90 min" in line and line.split()[-1] == "4"
    res = run("--result", "no_answer", "--retry-minutes", "90")
    assert res.exit_code == 2 and "--result needs --retry-minutes and --max-attempts" in res.output
    res = run("--result", "busy", "--retry-minutes", "5", "--max-attempts", "0")
    assert res.exit_code == 1 and "max attempts must be a whole number" in res.output
    res = run("--reset", "no_answer")
    assert "no_answer" in res.output and "(default)" in next(
        ln for ln in res.output.splitlines() if ln.startswith("no_answer"))

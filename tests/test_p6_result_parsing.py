"""P6: what a results upload may hold; every refusal names its field, and the
accepted forms of times and result values stay what the OpenAPI file says."""
from __future__ import annotations

import datetime as dt

import pytest

from controller.errors import InvalidInput
from controller.services.distribution import parse_results
from esl_dialer.messages import AttemptResult


def one(**fields):
    return {"client_id": "c1", "record_id": 7, "result": "busy", **fields}


def test_p6_a_full_result_is_parsed_into_naive_utc_times():
    (r,) = parse_results([one(call_uuid="u", agent="1001", hangup_cause="USER_BUSY", disposition="x",
                              started_at="2026-11-23T12:00:00Z", answered_at="2026-11-23T07:00:05-05:00",
                              connected_at="2026-11-23T12:00:06z", ended_at="2026-11-23T12:00:40",
                              abandoned=True, callback_at="2026-11-24T10:00")])
    assert (r.client_id, r.record_id, r.result, r.call_uuid, r.agent) == ("c1", 7, AttemptResult.BUSY, "u", "1001")
    assert r.started_at == dt.datetime(2026, 11, 23, 12, 0, 0)
    assert r.answered_at == dt.datetime(2026, 11, 23, 12, 0, 5)
    assert r.connected_at == dt.datetime(2026, 11, 23, 12, 0, 6)
    assert r.ended_at == dt.datetime(2026, 11, 23, 12, 0, 40)
    assert (r.hangup_cause, r.disposition, r.abandoned, r.callback_at) == ("USER_BUSY", "x", True, "2026-11-24T10:00")


def test_p6_absent_optional_fields_are_none():
    (r,) = parse_results([one()])
    assert (r.call_uuid, r.started_at, r.ended_at, r.disposition, r.abandoned, r.callback_at) == (
        None, None, None, None, False, None)


def test_p6_a_result_given_as_the_enum_member_is_taken_as_is():
    assert parse_results([one(result=AttemptResult.MACHINE)])[0].result is AttemptResult.MACHINE


@pytest.mark.parametrize("item, field", [
    ("x", "results[0]"),
    (one(colour="red"), "results[0]"),
    (one(client_id=""), "results[0].client_id"),
    (one(client_id="x" * 65), "results[0].client_id"),
    (one(record_id="7"), "results[0].record_id"),
    (one(record_id=True), "results[0].record_id"),
    (one(result="great"), "results[0].result"),
    (one(result=["busy"]), "results[0].result"),
    (one(abandoned="yes"), "results[0].abandoned"),
    (one(agent=1001), "results[0].agent"),
    (one(disposition="d" * 65), "results[0].disposition"),
    (one(started_at="yesterday"), "results[0].started_at"),
    (one(ended_at=1732363200), "results[0].ended_at"),
    (one(callback_at="soon"), "results[0].callback_at"),
])
def test_p6_a_bad_field_is_refused_by_name(item, field):
    with pytest.raises(InvalidInput) as err:
        parse_results([one(), item])
    assert err.value.field == field.replace("results[0]", "results[1]")

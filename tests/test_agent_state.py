"""Pure state machines: agent (D6/D8), call attempt (P6) and the per-agent dialer core (D3-D7)."""
from __future__ import annotations

import pytest

from esl_dialer.agent_state import AgentEvent, AgentMachine, IllegalAgentTransition, next_state
from esl_dialer.call_state import Call, CallEvent, CallState, IllegalCallTransition
from esl_dialer.messages import AgentState, AttemptResult
from esl_dialer.worker_core import (
    Abandon,
    AgentDialer,
    BridgeToAgent,
    ClaimAgent,
    ReportState,
    ScreenPop,
    StoreResult,
    local_time,
)

A = AgentState


def test_d8_agent_table_and_illegal_transition():
    m = AgentMachine()
    assert m.fire(AgentEvent.LOGIN, 1).after is A.IDLE
    assert m.fire(AgentEvent.DIAL, 2).after is A.DIALING
    assert m.fire(AgentEvent.DIAL, 3) is None  # same state: nothing to report
    assert m.fire(AgentEvent.CONNECT, 4).after is A.TALKING
    with pytest.raises(IllegalAgentTransition) as exc:
        m.fire(AgentEvent.DIAL, 5)
    assert exc.value.state is A.TALKING and exc.value.event is AgentEvent.DIAL
    assert m.fire(AgentEvent.HANGUP, 6).after is A.WRAPUP
    assert m.fire(AgentEvent.WRAPUP_DONE, 7).after is A.IDLE
    assert m.since == 7
    for s in AgentState:
        assert next_state(s, AgentEvent.LOGOUT) is A.OFFLINE
    with pytest.raises(IllegalAgentTransition):
        next_state(A.OFFLINE, AgentEvent.CONNECT)


def test_p6_call_results_from_what_happened():
    def run(events, cause=None, machine=False):
        c = Call("u", {"id": 1})
        c.machine = machine
        for i, e in enumerate(events):
            c.fire(e, float(i), cause=cause if e in (CallEvent.HANGUP, CallEvent.ORIGINATE_FAILED) else None)
        return c

    O, P, An, B, H = CallEvent.ORIGINATE, CallEvent.PROGRESS, CallEvent.ANSWER, CallEvent.BRIDGE, CallEvent.HANGUP
    assert run([O, P, An, B, H], "NORMAL_CLEARING").result() is AttemptResult.ANSWERED
    assert run([O, P, H], "NO_ANSWER").result() is AttemptResult.NO_ANSWER
    assert run([O, CallEvent.ORIGINATE_FAILED], "USER_BUSY").result() is AttemptResult.BUSY
    assert run([O, CallEvent.ORIGINATE_FAILED], "NORMAL_TEMPORARY_FAILURE").result() is AttemptResult.FAILED
    assert run([O, An, CallEvent.ABANDON, H], "NORMAL_CLEARING").result() is AttemptResult.ABANDONED
    assert run([O, An, H], "NORMAL_CLEARING", machine=True).result() is AttemptResult.MACHINE
    c = run([O, P, An, B, H], "NORMAL_CLEARING")
    assert (c.originated_at, c.answered_at, c.connected_at, c.ended_at) == (0.0, 2.0, 3.0, 4.0)
    with pytest.raises(IllegalCallTransition):
        Call("x", {"id": 1}).fire(CallEvent.BRIDGE, 0)
    with pytest.raises(IllegalCallTransition):
        run([O, H]).fire(CallEvent.ANSWER, 9)


def rec(i, **kw):
    return {"id": i, "number": f"+1202555{i:04d}", "name": f"N{i}", "city": "Austin", "region": "TX",
            "timezone": "America/Chicago", "previous_attempts": [{"started_at": "x", "result": "no_answer", "disposition": None}], **kw}


def kinds(actions):
    return [type(a).__name__ for a in actions]


def test_d3_d4_d5_first_answer_connects_with_screen_pop():
    d = AgentDialer("1001")
    assert kinds(d.login(0)) == ["ReportState"]
    assert d.lines_to_place(3) == 3
    for i in (1, 2, 3):
        d.placed(Call(f"u{i}", rec(i)), 1)
    assert d.state is A.DIALING and d.lines_to_place(3) == 0
    out = d.answered("u2", 5)
    assert isinstance(out[0], BridgeToAgent) and out[0].call_uuid == "u2"
    pop = next(a for a in out if isinstance(a, ScreenPop)).payload
    assert (pop["name"], pop["city"], pop["region"], pop["agent"]) == ("N2", "Austin", "TX", "1001")
    assert pop["previous_attempts"][0]["result"] == "no_answer" and pop["local_time"]
    assert ReportState(A.TALKING, 3) in out


def test_d6_no_new_dials_while_talking_ringing_calls_run():
    d = AgentDialer("1001")
    d.login(0)
    d.placed(Call("u1", rec(1)), 1)
    d.placed(Call("u2", rec(2)), 1)
    d.answered("u1", 2)
    assert d.state is A.TALKING
    assert d.lines_to_place(5) == 0 and not d.may_dial()
    assert "u2" in d.calls  # still ringing, let run
    out = d.hangup("u2", "NO_ANSWER", 3)
    assert kinds(out) == ["StoreResult"] and out[0].call.result() is AttemptResult.NO_ANSWER
    out = d.hangup("u1", "NORMAL_CLEARING", 10)
    assert out[0].call.result() is AttemptResult.ANSWERED
    assert [a.state for a in out if isinstance(a, ReportState)] == [A.WRAPUP, A.IDLE]
    assert d.lines_to_place(2) == 2 and d.dialed_while_talking == 0


def test_d6_wrapup_blocks_dialing_until_it_ends():
    d = AgentDialer("1001", wrapup_s=10)
    d.login(0)
    d.placed(Call("u1", rec(1)), 0)
    d.answered("u1", 1)
    out = d.hangup("u1", "NORMAL_CLEARING", 5)
    assert "StoreResult" not in kinds(out)  # waits for the disposition until wrap-up ends
    assert d.state is A.WRAPUP and d.lines_to_place(1) == 0
    assert d.tick(14) == []
    out = d.tick(15)
    assert kinds(out) == ["StoreResult", "ReportState"] and d.state is A.IDLE
    assert out[0].call.disposition is None


def test_p6_disposition_during_call_and_wrapup():
    d = AgentDialer("1001", wrapup_s=30)
    d.login(0)
    with pytest.raises(ValueError):
        d.set_disposition("sale", 0)  # no call
    d.placed(Call("u1", rec(1)), 0)
    d.answered("u1", 1)
    assert d.set_disposition("callback", 2) == []  # during the call: kept on the call
    d.hangup("u1", "NORMAL_CLEARING", 5)
    out = d.set_disposition("sale", 6)  # during wrap-up: stored now, agent ready at once
    assert kinds(out) == ["StoreResult", "ReportState"] and d.state is A.IDLE
    assert out[0].call.result_payload(worker_agent="1001", iso=str)["disposition"] == "sale"
    with pytest.raises(ValueError):
        d.set_disposition("x" * 65, 7)
    # a disposition given during the call and no other: stored when wrap-up ends
    d.placed(Call("u2", rec(2)), 10)
    d.answered("u2", 11)
    d.set_disposition("no_interest", 12)
    d.hangup("u2", "NORMAL_CLEARING", 13)
    out = d.tick(43)
    assert out[0].call.disposition == "no_interest"


def test_d7_second_answer_overflows_then_abandons_without_agent():
    d = AgentDialer("1001")
    d.login(0)
    d.placed(Call("u1", rec(1)), 0)
    d.placed(Call("u2", rec(2)), 0)
    d.placed(Call("u3", rec(3)), 0)
    d.answered("u1", 1)
    claim = d.answered("u2", 1.5)
    assert claim == [ClaimAgent("u2", rec(2), 3.5)]
    assert d.claim_result("u2", {"extension": "1002", "name": "bob"}, 1.6) == []
    d.bridged_elsewhere("u2", None, 1.7)
    assert d.calls["u2"].agent == "1002" and d.calls["u2"].state is CallState.CONNECTED
    # third answer: no idle agent -> abandon message, recorded abandoned
    d.answered("u3", 2)
    assert d.claim_result("u3", None, 2.2) == [Abandon("u3")]
    out = d.hangup("u3", "NORMAL_CLEARING", 6)
    assert out[0].call.result() is AttemptResult.ABANDONED
    payload = out[0].call.result_payload(worker_agent="1001", iso=str)
    assert payload["abandoned"] is True and payload["result"] == "abandoned"
    out = d.hangup("u2", "NORMAL_CLEARING", 30)
    assert out[0].call.result() is AttemptResult.ANSWERED and out[0].call.agent == "1002"
    assert d.state is A.TALKING  # our own agent still on u1


def test_d7_claimed_but_never_bridged_is_abandoned():
    d = AgentDialer("1001")
    d.login(0)
    d.placed(Call("u1", rec(1)), 0)
    d.placed(Call("u2", rec(2)), 0)
    d.answered("u1", 1)
    d.answered("u2", 1)
    d.claim_result("u2", {"extension": "1002"}, 1.1)
    assert d.overflow_timeout("u2", 3.1) == [Abandon("u2")]
    assert d.overflow_timeout("u2", 3.2) == []


def test_d7_take_overflow_marks_agent_busy_with_screen_pop():
    d = AgentDialer("1002")
    d.login(0)
    out = d.take_overflow("x1", rec(7), 5)
    assert kinds(out) == ["BridgeToAgent", "ScreenPop", "ReportState"]
    assert out[1].payload["overflow"] is True and d.state is A.TALKING
    assert d.lines_to_place(3) == 0
    assert d.take_overflow("x2", rec(8), 6) == []  # busy: the other worker will abandon
    out = d.hangup("x1", "NORMAL_CLEARING", 20)
    assert [a.state for a in out if isinstance(a, ReportState)] == [A.WRAPUP, A.IDLE]
    assert not any(isinstance(a, StoreResult) for a in out)  # the other worker records it


def test_d5_local_time_uses_record_timezone():
    # 2024-01-15 12:00 UTC = 06:00 in Chicago (CST)
    assert local_time({"timezone": "America/Chicago America/Denver"}, 1705320000) == "06:00"
    assert local_time({"timezone": "Not/AZone"}, 0) is None
    assert local_time({}, 0) is None


def test_x1_local_window_check_strictest_zone():
    from esl_dialer.worker_core import within_window

    noon_utc = 1705320000  # 2024-01-15 12:00 UTC: 07:00 New York, 06:00 Chicago, 13:00 Paris
    r = {"window_start": "08:00", "window_end": "21:00"}
    assert within_window({**r, "timezone": "Europe/Paris"}, noon_utc)
    assert not within_window({**r, "timezone": "America/New_York"}, noon_utc)
    assert not within_window({**r, "timezone": "Europe/Paris America/Chicago"}, noon_utc)
    assert within_window({**r, "timezone": "America/New_York"}, noon_utc + 3600)
    assert within_window({"timezone": "America/New_York"}, noon_utc)  # no window: controller decides
    assert not within_window({**r, "timezone": "Bad/Zone"}, noon_utc)

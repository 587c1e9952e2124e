"""P10: the worker's local contingency file (esl_dialer.contingency)."""
from __future__ import annotations

import pytest

from esl_dialer.contingency import Contingency, ContingencyError, flush


class Clock:
    def __init__(self, t=1000.0):
        self.t = t

    def __call__(self):
        return self.t


def rec(i, **kw):
    return {"id": i, "number": f"+1202555{i:04d}", "name": f"N{i}", **kw}


@pytest.fixture
def store(tmp_path):
    clock = Clock()
    s = Contingency(tmp_path / "w1.sqlite", "w1", clock=clock)
    s.clock_obj = clock
    yield s
    s.close()


def test_p10_records_dialable_in_lease_order_with_priority_first(store):
    store.add_leased([rec(1), rec(2), rec(3, priority=-100)], lease_seconds=600)
    assert [r["id"] for r in store.dialable(10)] == [3, 1, 2]
    assert [r["id"] for r in store.dialable(10, exclude={3})] == [1, 2]


def test_p10_result_pending_until_acked_and_replay_is_harmless(store):
    store.add_leased([rec(1)], 600)
    cid = store.mark_dialing(1, "uuid-1", agent="1001")
    assert store.dialable(10) == []
    assert store.record_result({"record_id": 1, "result": "busy", "call_uuid": "uuid-1"}) == cid
    # writing the same attempt twice keeps one result
    store.record_result({"client_id": cid, "record_id": 1, "result": "busy"})
    assert [r["client_id"] for r in store.pending_results()] == [cid]
    assert store.ack([cid]) == 1
    assert store.pending_results() == []
    assert store.ack([cid]) == 0


def test_p10_never_dial_after_local_lease_end(store):
    store.add_leased([rec(1), rec(2)], lease_seconds=100)  # safety margin: a fifth of a short lease
    store.clock_obj.t += 79
    assert len(store.dialable(10)) == 2
    store.clock_obj.t += 2
    assert store.dialable(10) == []
    with pytest.raises(ContingencyError):
        store.mark_dialing(1, "u")
    assert store.expire() == 2
    store.add_leased([rec(3)], lease_seconds=900)  # long lease: 30 s margin
    store.clock_obj.t += 869
    assert [r["id"] for r in store.dialable(10)] == [3]
    store.clock_obj.t += 2
    assert store.dialable(10) == []


def test_p10_mark_dialing_twice_is_refused(store):
    store.add_leased([rec(1)], 600)
    store.mark_dialing(1, "u1")
    with pytest.raises(ContingencyError):
        store.mark_dialing(1, "u2")
    with pytest.raises(ContingencyError):
        store.mark_dialing(99, "u3")


def test_p10_restart_reloads_and_records_interrupted_call_once(tmp_path):
    clock = Clock()
    s = Contingency(tmp_path / "w.sqlite", "w1", clock=clock)
    s.add_leased([rec(1), rec(2), rec(3)], 600)
    cid = s.mark_dialing(1, "u1")
    s.mark_dialing(2, "u2")
    s.record_result({"record_id": 2, "result": "no_answer"})
    s.close()  # the process dies here

    s2 = Contingency(tmp_path / "w.sqlite", "w1", clock=clock)
    assert s2.recovered == 1
    pend = {r["record_id"]: r for r in s2.pending_results()}
    assert set(pend) == {1, 2}
    assert pend[1]["client_id"] == cid and pend[1]["result"] == "failed"
    assert pend[1]["hangup_cause"] == "WORKER_RESTART"
    assert [r["id"] for r in s2.dialable(10)] == [3]
    s2.close()
    s3 = Contingency(tmp_path / "w.sqlite", "w1", clock=clock)
    assert s3.recovered == 0 and len(s3.pending_results()) == 2
    s3.close()


def test_p10_file_belongs_to_one_worker(tmp_path):
    Contingency(tmp_path / "w.sqlite", "w1").close()
    with pytest.raises(ContingencyError, match="belongs to worker"):
        Contingency(tmp_path / "w.sqlite", "w2")


def test_p10_release_lease_again_does_not_redial_unflushed(store):
    store.add_leased([rec(1)], 600)
    store.mark_dialing(1, "u1")
    store.record_result({"record_id": 1, "result": "busy"})
    # the controller (which has not seen the result) hands the record out again
    assert store.add_leased([rec(1)], 600) == 0
    assert store.dialable(5) == []
    store.ack([r["client_id"] for r in store.pending_results()])
    assert store.add_leased([rec(1)], 600) == 1  # a later, recycled attempt is fine


class FlakyController:
    def __init__(self):
        self.stored: dict[str, dict] = {}
        self.down = False
        self.lose_reply = False

    def results(self, results):
        from esl_dialer.client import ControllerUnavailable

        if self.down:
            raise ControllerUnavailable("down")
        acc, dup = [], []
        for r in results:
            (dup if r["client_id"] in self.stored else acc).append(r["client_id"])
            self.stored.setdefault(r["client_id"], r)
        if self.lose_reply:
            self.lose_reply = False
            raise ControllerUnavailable("reply lost")
        return acc, dup


def test_p10_flush_down_then_lost_reply_then_ok(store):
    from esl_dialer.client import ControllerUnavailable

    ctl = FlakyController()
    store.add_leased([rec(i) for i in range(1, 6)], 600)
    for i in range(1, 6):
        store.mark_dialing(i, f"u{i}")
        store.record_result({"record_id": i, "result": "no_answer"})
    ctl.down = True
    with pytest.raises(ControllerUnavailable):
        flush(store, ctl)
    assert store.stats().pending_results == 5
    ctl.down, ctl.lose_reply = False, True
    with pytest.raises(ControllerUnavailable):
        flush(store, ctl)  # stored, but the worker never heard
    assert store.stats().pending_results == 5
    assert flush(store, ctl) == 5  # replay: all duplicates, acknowledged
    assert len(ctl.stored) == 5 and store.stats().pending_results == 0
    assert store.prune(older_than_s=-1) >= 5


# -- the kill-the-controller test (P10) with real workers and the real controller ----------

@pytest.mark.slow
def test_p10_controller_killed_mid_campaign(db, db_url, tmp_path):
    """Kill the controller while 3 workers dial; they go on from their contingency
    files; after the restart every attempt is recorded exactly once and no
    record was dialed by two workers."""
    import gevent

    from esl_dialer.worker import AgentWorker, WorkerSettings
    from worker_harness import (ControllerProcess, FakeSwitch, Outcome, attempts_by_record, leased_without_attempt,
                                make_campaign, wait_quiet)

    agents = ["1001", "1002", "1003"]
    camp = make_campaign(db, agents=agents, records=60)
    kinds = ["answer", "busy", "no_answer", "answer", "failed"]
    switch = FakeSwitch(lambda number: Outcome(kinds[int(number[-2:]) % len(kinds)], ring_s=0.03, talk_s=0.05))
    ctl = ControllerProcess(db_url, lease_seconds=120).start()  # longer than the test: no lease expires
    workers = []
    try:
        for ext in agents:
            s = WorkerSettings(agent=ext, controller=ctl.url, token=camp.tokens[ext], data_dir=tmp_path / "w",
                               lease_batch=8, low_water=3, heartbeat_s=0.5, dial_interval_s=0.02,
                               http_timeout_s=3.0)
            workers.append(AgentWorker(s, switch).start())

        def placed():
            return len(switch.originated)

        with gevent.Timeout(30):
            while placed() < 15:
                gevent.sleep(0.05)
        ctl.kill()
        at_kill = placed()
        gevent.sleep(2.0)
        during = placed() - at_kill
        pending_while_down = sum(w.store.stats().pending_results for w in workers)
        ctl.start()
        wait_quiet(workers, placed, timeout=40)
    finally:
        for w in workers:
            w.stop(timeout=2)
        ctl.kill()

    print(f"placed at kill {at_kill}, while down {during}, pending while down {pending_while_down}")
    assert during > 0, "dialing stopped while the controller was down"
    assert pending_while_down > 0, "results were not queued locally"
    numbers = [n for n, _, _ in switch.originated]
    assert len(numbers) == len(set(numbers)), "a record was dialed twice"
    lost = leased_without_attempt(db, camp.record_ids)  # a lease reply lost in the kill: back at expiry
    assert len(numbers) + len(lost) == len(camp.record_ids) and len(lost) <= 8
    by_worker = {}
    for number, uuid, _ in switch.originated:
        by_worker.setdefault(number, set()).add(switch.channels[uuid].variables["dialer_worker"])
    assert all(len(v) == 1 for v in by_worker.values())
    attempts = attempts_by_record(db)
    uuids = {u for _, u, _ in switch.originated}
    recorded = [a.call_uuid for rows in attempts.values() for a in rows]
    assert len(recorded) == len(set(recorded)) == len(uuids), "an attempt is missing or counted twice"
    assert set(recorded) == uuids
    assert all(len(attempts[rid]) == 1 for rid in camp.record_ids if rid not in lost)


def test_p10_a_result_the_controller_refuses_does_not_block_the_others(store):
    from esl_dialer.client import ApiError

    class Strict:
        calls = 0

        def results(self, results):
            Strict.calls += 1
            if any(r["result"] == "bogus" for r in results):
                raise ApiError(400, "invalid_input", "result must be an AttemptResult", "results")
            return [r["client_id"] for r in results], []

    store.add_leased([rec(i) for i in range(1, 8)], 600)
    for i in range(1, 8):
        store.mark_dialing(i, f"u{i}")
        store.record_result({"record_id": i, "result": "bogus" if i == 5 else "busy"})
    assert flush(store, Strict()) == 7
    assert store.stats().pending_results == 0
    (bad,) = store.rejected()
    assert "invalid_input" in bad[1]
    assert flush(store, Strict()) == 0  # nothing left to send

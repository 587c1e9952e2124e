"""A real worker following campaign controls and settings from the controller (SPEC P14, D2, X1).

The controller runs in its own process (tests/worker_harness.py); the switch is
the in-process fake with scripted timings.  The manager's actions go through
``controller.services.campaigns`` on the shared database, as `dialer campaign
pause` and the dashboard do, so the worker hears them over the SSE outbox.
"""
from __future__ import annotations

import time

import gevent
import pytest
import sqlalchemy as sa

from controller.models import CallRecord
from controller.services import campaigns as C
from esl_dialer.messages import DialMode, RecordStatus
from esl_dialer.worker import AgentWorker, WorkerSettings
from worker_harness import ControllerProcess, FakeSwitch, Outcome, make_campaign, wait_until

pytestmark = pytest.mark.slow


class CidSwitch(FakeSwitch):
    def __init__(self, *a, **kw) -> None:
        super().__init__(*a, **kw)
        self.cids: list[tuple[str, str]] = []

    def originate(self, endpoint, *, cid_name=None, cid_num=None, **kw):
        if not endpoint.startswith("user/"):
            self.cids.append((cid_num, cid_name))
        return super().originate(endpoint, cid_name=cid_name, cid_num=cid_num, **kw)


@pytest.fixture
def controller(db_url):
    ctl = ControllerProcess(db_url).start()
    yield ctl
    ctl.kill()


def test_p14_d2_x1_worker_pauses_resumes_finishes_and_applies_settings(db, controller, tmp_path):
    camp = make_campaign(db, agents=["1001"], records=150)
    C.update_settings(db, camp.id, dial_mode="power", dial_ratio=2, abandon_target="2%",
                      caller_id_number="+12125550100", caller_id_name="Acme")
    switch = CidSwitch(lambda n: Outcome("no_answer", ring_s=0.3))
    s = WorkerSettings(agent="1001", controller=controller.url, token=camp.tokens["1001"], data_dir=tmp_path / "w",
                       lease_batch=10, low_water=4, heartbeat_s=0.5, dial_interval_s=0.02, http_timeout_s=1.0,
                       greetings_dir="/greet", abandon_message="/snd/worker-own.wav", mode=DialMode.PROGRESSIVE,
                       overrides=frozenset())
    w = AgentWorker(s, switch).start()
    try:
        # D2/X1: the campaign's settings replace the worker's defaults (nothing was given on its command line)
        wait_until(lambda: len(switch.originated) >= 6, 20)
        assert (w.s.mode, w.s.ratio, w.s.abandon_target) == (DialMode.POWER, 2.0, 0.02)
        assert w.pacer.config.mode is DialMode.POWER and w.pacer.config.ratio == 2.0
        assert w.s.abandon_message == "/sounds/abandon.wav"  # the campaign's abandon message
        assert set(switch.cids) == {("+12125550100", "Acme")}  # from the very first call

        # pause: no new originates within a few seconds; calls in progress end, results still uploaded
        t_pause = time.time()
        C.change_status(db, camp.id, "pause")
        gevent.sleep(4.0)
        after = [t for _n, _u, t in switch.originated if t > t_pause]
        before = [round(t - t_pause, 2) for _n, _u, t in switch.originated if t_pause - 2 < t <= t_pause]
        assert not [t for t in after if t > t_pause + 2.0], "originates more than 2 s after the pause"
        pause_lag = max(after, default=t_pause) - t_pause
        wait_until(lambda: not w.core.calls and w.store.stats().pending_results == 0, 10)
        count_paused = len(switch.originated)
        gevent.sleep(1.0)
        assert len(switch.originated) == count_paused

        # resume: dialing again within seconds
        t_resume = time.time()
        C.change_status(db, camp.id, "resume")
        wait_until(lambda: len(switch.originated) > count_paused, 5)
        resume_lag = switch.originated[count_paused][2] - t_resume
        assert resume_lag < 3.0

        # settings change while running: applied without a restart
        C.update_settings(db, camp.id, caller_id_number="+12125550199")
        wait_until(lambda: switch.cids[-1][0] == "+12125550199", 5)

        # finish: the worker hands back what it holds; calls in progress end normally
        C.change_status(db, camp.id, "finish")
        wait_until(lambda: not w.store.held_ids() and not w.core.calls, 10)
        wait_until(lambda: w.store.stats().pending_results == 0, 10)
        n_final = len(switch.originated)
        gevent.sleep(1.0)
        assert len(switch.originated) == n_final
    finally:
        w.stop(timeout=2)
    with db.session() as session:
        leased = session.scalar(sa.select(sa.func.count()).select_from(CallRecord)
                                .where(CallRecord.status == RecordStatus.LEASED))
    assert leased == 0
    print(f"\npause: {len(after)} originate(s) after it, last {pause_lag * 1000:.0f} ms; "
          f"resume -> first originate {resume_lag * 1000:.0f} ms; before pause {before}")

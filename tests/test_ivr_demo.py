"""The IVR part of the demo: callers flow through the local IVR to the remote center."""
from __future__ import annotations

import time

import gevent
import pytest

from controller.db import Database, upgrade
from controller.ivr_demo import start_ivr_demo
from controller.services import acd
from esl_dialer.sim import SimConfig, SimSwitch

from ivr_support import RemoteControllerProcess

pytestmark = pytest.mark.slow


def test_r4_r6_demo_callers_reach_remote_operators(tmp_path):
    url = f"sqlite:///{tmp_path / 'demo.db'}"
    upgrade(url)
    db = Database(url)
    sim = SimSwitch(SimConfig(time_scale=0.05, playback_default_s=1.0), host="127.0.0.1", port=0)
    sim.start()
    with RemoteControllerProcess(url) as ctl:
        demo = start_ivr_demo(sim, db, ctl.url, operators=2, callers_per_minute=240, talk_s=(5, 10))
        try:
            deadline = time.monotonic() + 30
            while time.monotonic() < deadline and not any(r.outcome == "bridged" for r in demo.reports):
                gevent.sleep(0.2)
            assert any(r.outcome == "bridged" for r in demo.reports)

            def states():
                return {p.state for p in acd.list_proxies(db, live_only=False)}

            deadline = time.monotonic() + 10  # the acceptor reports the end just after the call
            while time.monotonic() < deadline and "done" not in states():
                gevent.sleep(0.2)
            assert "done" in states()  # served proxies show on the dashboard list
        finally:
            demo.stop(timeout=2)
            sim.stop()
    db.dispose()

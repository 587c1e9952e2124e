"""End to end over TCP: simulated switch + local IVR server + remote controller
(subprocess) + the remote center's leg acceptor (SPEC R1-R9).

The simulated switch hosts both centers' dialplans: 7000 is the local IVR's
socket extension, 8000 the remote center's trunk extension (socket to the leg
acceptor), reached from the IVR by the dial string ``loopback/8000`` in place
of ``sofia/gateway/remote-center/<skill>``.  Operators are sim phones user/2xxx.
"""
from __future__ import annotations

import time

import gevent
import pytest

from controller.db import Database, upgrade
from controller.services import acd
from esl_dialer.ivr.acceptor import AcceptorSettings, LegAcceptor
from esl_dialer.ivr.app import IvrCall, IvrSettings
from esl_dialer.ivr.menu import Menu
from esl_dialer.ivr.remote_client import AcdSwitchClient, ProgressHub, RemoteCenter
from esl_dialer.ivr.server import IvrServer
from esl_dialer.sim import SimConfig, SimSwitch

from ivr_support import RemoteControllerProcess

pytestmark = pytest.mark.slow

MENU = {
    "name": "e2e", "start": "welcome", "defaults": {"tries": 1, "timeout_ms": 2000},
    "nodes": {
        "welcome": {"type": "menu", "prompt": "ivr/welcome.wav", "branches": {"1": "support"}, "on_fail": "bye"},
        "support": {"type": "remote", "center": "remote", "skill": "support", "next": "bye"},
        "bye": {"type": "hangup"},
    },
}


def wait_until(predicate, timeout=5.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        gevent.sleep(step)
    return False


class Centers:
    """Both centers wired together on one simulated switch."""

    def __init__(self, tmp_path, dial_string="loopback/8000", remote_url=None):
        url = f"sqlite:///{tmp_path / 'remote.db'}"
        upgrade(url)
        self.db = Database(url)
        acd.ensure_queue(self.db, "support", bridge_position=1, bridge_setup_s=0.0, default_service_s=600.0)
        acd.add_operator(self.db, "op1", "user/2001", ["support"], state="busy")
        self.key = acd.create_peer(self.db, "local")
        self.switch_key = acd.create_peer(self.db, "switch", role="switch")
        self.other = acd.authenticate_peer(self.db, acd.create_peer(self.db, "elsewhere"))
        self.ctl = RemoteControllerProcess(url).start()
        self.accept_reports, self.call_reports = [], []
        self.acceptor = IvrServer(lambda s: LegAcceptor(s, AcceptorSettings(
            controller=AcdSwitchClient(self.ctl.url, self.switch_key), poll_s=0.1, linger_s=1,
            on_call_end=self.accept_reports.append)), port=0)
        self.acceptor.start()
        self.center = RemoteCenter("remote", remote_url or self.ctl.url, self.key, dial_string=dial_string,
                                   timeout_s=2.0, retries=0)
        self.hub = ProgressHub(self.center, poll_s=0.2)
        self.hub.start()
        self.settings = IvrSettings(menu_provider=lambda: Menu.from_dict(MENU), centers={"remote": self.center},
                                    hubs={"remote": self.hub}, announce_every_s=1.0, linger_s=1,
                                    retry_delay_s=0.1, voicemail_dir="/tmp/ivr-vm", voicemail_max_s=1,
                                    on_call_end=self.call_reports.append)
        self.ivr = IvrServer(lambda s: IvrCall(s, self.settings), port=0)
        self.ivr.start()
        self.sim = SimSwitch(SimConfig(time_scale=0.1, playback_default_s=2.0), host="127.0.0.1", port=0)
        self.sim.start()
        self.sim.dialplan = {"7000": ("socket", f"127.0.0.1:{self.ivr.port} async full"),
                             "8000": ("socket", f"127.0.0.1:{self.acceptor.port} async full")}
        self.sim.add_user("2001", answer_after_s=0.1)

    def remote_legs(self):
        return [ch for ch in self.sim.history if ch.destination == "8000"]

    def operator_legs(self):
        return [ch for ch in self.sim.history if ch.name.startswith("user/2001") or ch.destination == "2001"]

    def close(self):
        for server in (self.ivr, self.acceptor):
            server.stop(timeout=2)
        self.hub.stop()
        self.sim.stop()
        self.ctl.stop()
        self.db.dispose()


@pytest.fixture
def centers(tmp_path):
    c = Centers(tmp_path)
    yield c
    c.close()


def my_proxy(c: Centers, caller: str):
    return next((p for p in acd.list_proxies(c.db) if p.caller_number == caller), None)


def test_r6_bridged_only_at_the_head_and_reaches_the_operator_within_1s(centers):
    c = centers
    ahead = acd.create_proxy(c.db, c.other, "support")
    caller = "15551230007"
    uuid = c.sim.inbound_call("7000", caller, dtmf="1", patience_s=3600, talk_s=5)
    assert wait_until(lambda: my_proxy(c, caller) is not None, timeout=10)
    assert my_proxy(c, caller).position == 2
    gevent.sleep(1.5)
    assert c.remote_legs() == []  # R7: no long-distance leg while the proxy is not near the head
    ch = c.sim.channels.get(uuid)
    assert ch is not None and ch.answered  # the caller is held locally, answered, with music
    acd.cancel_proxy(c.db, ahead.id, c.other)  # the entry ahead is served
    assert wait_until(lambda: c.remote_legs(), timeout=3)  # R6: now the leg is set up
    assert wait_until(lambda: my_proxy(c, caller) is not None and my_proxy(c, caller).has_leg, timeout=5)
    assert c.operator_legs() == []  # the operator is still busy: the leg waits at the head
    t_free = time.monotonic()
    acd.set_operator_state(c.db, "op1", "available")
    assert wait_until(lambda: any(ch.answered for ch in c.operator_legs()), timeout=3)
    assert wait_until(lambda: c.accept_reports, timeout=10)  # the conversation (talk_s) ended
    report = c.accept_reports[0]
    assert report.outcome == "connected" and report.operator == "op1"
    assert report.connected_at - t_free < 1.0
    assert wait_until(lambda: c.call_reports, timeout=10)
    assert c.call_reports[0].outcome == "bridged"
    snap = acd.get_proxy(c.db, report.proxy_id)
    assert snap.state == "done"


def test_r9_caller_hangup_while_waiting_cancels_the_proxy(centers):
    c = centers
    acd.create_proxy(c.db, c.other, "support")
    caller = "15551230008"
    uuid = c.sim.inbound_call("7000", caller, dtmf="1", patience_s=3600)
    assert wait_until(lambda: my_proxy(c, caller) is not None, timeout=10)
    proxy_id = my_proxy(c, caller).id
    gevent.sleep(0.5)
    t0 = time.monotonic()
    c.sim.hangup(c.sim.channels[uuid], "NORMAL_CLEARING")
    assert wait_until(lambda: acd.get_proxy(c.db, proxy_id).state == "cancelled", timeout=3)
    assert time.monotonic() - t0 < 1.0
    assert c.remote_legs() == []
    assert wait_until(lambda: len(c.ivr.calls) == 0 and c.ivr.connection_count == 0, timeout=5)


def test_r6_wrong_token_is_refused_by_the_remote_center(centers):
    c = centers
    from greenswitch.esl import InboundESL

    esl = InboundESL("127.0.0.1", c.sim.port, c.sim.password)
    esl.connect()
    try:
        reply = esl.send("api originate {sip_h_X-Dialer-Token=ThisIsAGuessedToken123,ignore_early_media=true}"
                         "loopback/8000 &park()")
        assert reply.data.startswith("-ERR")
    finally:
        esl.stop()
    assert wait_until(lambda: c.accept_reports, timeout=5)
    assert c.accept_reports[0].outcome == "refused"
    assert c.operator_legs() == []


def test_r9_remote_down_at_request_time_gives_the_fallback(tmp_path):
    """The remote controller is unreachable: retried once, then a callback is scheduled (P9)."""
    import sqlalchemy as sa
    from controller.models import CallRecord, Campaign

    c = Centers(tmp_path, remote_url="http://127.0.0.1:9")
    try:
        with c.db.session() as s:
            s.add(Campaign(name="callbacks"))
        # the LOCAL controller takes the callback request (here: the same test controller process)
        c.settings.centers = {"remote": c.center, "local": RemoteCenter("local", c.ctl.url, c.key, timeout_s=5.0)}
        c.settings.fallback, c.settings.callback_center = "callback", "local"
        caller = "+14155552671"
        uuid = c.sim.inbound_call("7000", caller, dtmf="1", patience_s=3600)
        assert wait_until(lambda: c.call_reports, timeout=20)
        assert c.call_reports[0].outcome == "callback" and c.call_reports[0].attempts == 2
        assert c.remote_legs() == []
        with c.db.session() as s:
            record = s.scalar(sa.select(CallRecord).where(CallRecord.number == caller))
            assert record.is_callback and record.next_attempt_at is not None
        assert c.sim.history_of(uuid).hangup_cause
    finally:
        c.close()

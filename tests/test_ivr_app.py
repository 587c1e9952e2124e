"""The IVR outbound-socket app over real TCP against a scripted switch connection
(tests/fake_outbound.py) and a remote controller in a subprocess (SPEC R1-R9)."""
from __future__ import annotations

import json
import re
import time

import gevent
import pytest

from controller.db import Database, upgrade
from controller.services import acd, ivr as ivr_service
from esl_dialer.ivr.app import IvrCall, IvrSettings, wait_files
from esl_dialer.ivr.menu import Menu, load_menu
from esl_dialer.ivr.remote_client import ProgressHub, RemoteCenter
from esl_dialer.ivr.server import IvrServer

from fake_outbound import FakeOutboundCall
from ivr_support import RemoteControllerProcess

pytestmark = pytest.mark.slow

MENU = {
    "name": "test", "start": "welcome",
    "defaults": {"tries": 1, "timeout_ms": 500},
    "nodes": {
        "welcome": {"type": "menu", "prompt": "ivr/welcome.wav",
                    "branches": {"1": "support", "2": "info"}, "on_fail": "bye"},
        "info": {"type": "play", "prompt": "ivr/info.wav", "next": "bye"},
        "support": {"type": "remote", "center": "remote", "skill": "SKILL", "next": "bye"},
        "bye": {"type": "hangup", "prompt": "voicemail/vm-goodbye.wav"},
    },
}


@pytest.fixture(scope="module")
def remote(tmp_path_factory):
    """A remote center: migrated SQLite db, a controller subprocess, a peer key for us."""
    path = tmp_path_factory.mktemp("remote") / "remote.db"
    url = f"sqlite:///{path}"
    upgrade(url)
    db = Database(url)
    key = acd.create_peer(db, "local")
    with RemoteControllerProcess(url) as ctl:
        yield db, ctl, key
    db.dispose()


_skill_counter = iter(range(1000))


@pytest.fixture
def center(remote):
    """A fresh skill queue with two busy operators, and the settings of a local IVR using it."""
    db, ctl, key = remote
    skill = f"s{next(_skill_counter)}"
    acd.ensure_queue(db, skill, bridge_position=1, bridge_setup_s=0.0, default_service_s=600.0)
    acd.add_operator(db, f"op-{skill}", "user/2001", [skill], state="busy")
    menu_doc = json.loads(json.dumps(MENU).replace("SKILL", skill))
    center = RemoteCenter("remote", ctl.url, key, dial_string="sofia/gateway/remote/{skill}", timeout_s=2.0,
                          retries=0)
    hub = ProgressHub(center, poll_s=0.1)
    hub.start()
    settings = IvrSettings(menu_provider=lambda: Menu.from_dict(menu_doc), centers={"remote": center},
                           hubs={"remote": hub}, announce_every_s=0.3, retry_delay_s=0.05, linger_s=1,
                           voicemail_dir="/tmp/vm")
    yield db, skill, settings, key
    hub.stop()


@pytest.fixture
def server_for():
    servers = []

    def make(settings):
        reports = []
        settings.on_call_end = reports.append
        server = IvrServer(lambda session: IvrCall(session, settings), port=0)
        server.start()
        servers.append(server)
        return server, reports

    yield make
    for server in servers:
        server.stop(timeout=2)


def wait_until(predicate, timeout=5.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        gevent.sleep(step)
    return False


def local_settings(menu_doc=MENU, **kw):
    return IvrSettings(menu_provider=lambda: Menu.from_dict(menu_doc), linger_s=1, **kw)


def test_r1_call_answers_runs_the_menu_and_ends_cleanly(server_for):
    server, reports = server_for(local_settings())
    call = FakeOutboundCall(server.port, digits={"dialer_menu_digits": "2"}).start()
    assert call.ended.wait(5)
    assert call.apps() == ["answer", "play_and_get_digits", "playback", "playback", "hangup"]
    # play_and_get_digits <min> <max> <tries> <timeout> <terminators> <file> <invalid_file> <var> <regexp> <digit_timeout>
    assert call.executed[1][1] == "1 1 1 500 # ivr/welcome.wav silence_stream://250 dialer_menu_digits ^(1|2)$ 500"
    assert wait_until(lambda: len(server.calls) == 0 and server.connection_count == 0)
    assert reports[0].outcome == "hangup" and reports[0].path == ["welcome", "info", "bye"]


def test_r1_caller_hanging_up_mid_prompt_ends_the_call_greenlet(server_for):
    import gc

    def live_greenlets():
        """Live greenlets running our code or greenswitch's (not gevent's resolver pool)."""
        gc.collect()
        ours = 0
        for o in gc.get_objects():
            if isinstance(o, gevent.Greenlet) and not o.dead:
                run = getattr(o, "_run", None)
                module = getattr(getattr(run, "__func__", run), "__module__", "") or ""
                ours += module.startswith(("esl_dialer", "greenswitch"))
        return ours

    server, reports = server_for(local_settings())
    warm_up = FakeOutboundCall(server.port, digits={"dialer_menu_digits": "2"}).start()  # resolver pool etc.
    assert warm_up.ended.wait(5) and wait_until(lambda: server.connection_count == 0)
    gevent.sleep(0.3)
    reports.clear()
    before = live_greenlets()
    calls = [FakeOutboundCall(server.port, digits={"dialer_menu_digits": "2"}, hangup_during="playback",
                              app_seconds=0.2).start() for _ in range(20)]
    assert all(c.ended.wait(5) for c in calls)
    assert wait_until(lambda: len(server.calls) == 0 and server.connection_count == 0)
    assert len(reports) == 20 and {r.outcome for r in reports} == {"caller_hangup"}
    assert all("hangup" not in c.apps() for c in calls)  # nothing sent to a gone caller
    gevent.sleep(0.3)
    assert live_greenlets() <= before + 2  # no session reader/dispatcher left behind


def test_r1_server_survives_garbage_and_silent_connections(server_for):
    server, reports = server_for(local_settings())
    import gevent.socket

    s = gevent.socket.create_connection(("127.0.0.1", server.port))
    s.sendall(b"\x00\xffnonsense\n\n")
    s.close()
    call = FakeOutboundCall(server.port, digits={"dialer_menu_digits": "2"}).start()
    assert call.ended.wait(5) and reports and reports[-1].outcome == "hangup"


def test_r4_r7_caller_waits_locally_with_music_and_announcements(center, server_for):
    db, skill, settings, key = center
    other = acd.authenticate_peer(db, acd.create_peer(db, f"other-{skill}"))
    ahead = acd.create_proxy(db, other, skill)  # someone is already waiting
    server, reports = server_for(settings)
    call = FakeOutboundCall(server.port, digits={"dialer_menu_digits": "1"}).start()
    assert wait_until(lambda: any(p.caller_number == call.caller and p.skill == skill for p in acd.list_proxies(db)))
    mine = next(p for p in acd.list_proxies(db) if p.caller_number == call.caller and p.skill == skill)
    assert mine.position == 2 and not mine.has_leg
    gevent.sleep(1.0)
    apps = call.apps()
    assert "bridge" not in apps  # R7: no long-distance leg while position 2
    assert ("playback", "local_stream://moh") in call.executed
    announcements = [arg for app, arg in call.executed if app == "playback" and "digits/2.wav" in arg]
    assert len(announcements) >= 2  # position announced repeatedly
    wait_s = next(p for p in acd.list_proxies(db) if p.caller_number == call.caller).expected_wait_s
    assert announcements[-1] == ("file_string://ivr/ivr-you_are_number.wav!digits/2.wav!"
                                 + "!".join(wait_files(wait_s)))  # then the expected wait in minutes
    call.hangup()
    assert call.ended.wait(5)
    acd.cancel_proxy(db, ahead.id, other)


def test_r6_bridged_only_at_the_head_with_a_one_time_token(center, server_for):
    db, skill, settings, key = center
    other = acd.authenticate_peer(db, acd.create_peer(db, f"other-{skill}"))
    ahead = acd.create_proxy(db, other, skill)
    accepted = []

    def remote_answers(dial: str) -> dict:
        token = re.search(r"sip_h_X-Dialer-Token=([^,}]+)", dial).group(1)
        accepted.append(acd.accept_leg(db, token, "leg-" + token[:8]))
        return {"originate_disposition": "SUCCESS", "bridge_hangup_cause": "NORMAL_CLEARING"}

    server, reports = server_for(settings)
    call = FakeOutboundCall(server.port, digits={"dialer_menu_digits": "1"}, bridge_result=remote_answers).start()
    assert wait_until(lambda: any(p.caller_number == call.caller and p.skill == skill for p in acd.list_proxies(db)))
    gevent.sleep(0.5)
    assert "bridge" not in call.apps()
    t0 = time.monotonic()
    acd.cancel_proxy(db, ahead.id, other)  # the entry ahead is served: ours is next in line
    assert wait_until(lambda: "bridge" in call.apps(), timeout=3)
    assert time.monotonic() - t0 < 2.0  # pushed (SSE), not discovered late
    dial = dict(call.executed)["bridge"]
    assert dial.startswith("{sip_h_X-Dialer-Token=") and dial.endswith("}sofia/gateway/remote/" + skill)
    assert "dialer_token=" in dial and "ignore_early_media=true" in dial
    assert ("set", "continue_on_fail=true") in call.executed
    assert any(c.startswith("uuid_break") for c in call.api_commands)  # music stopped first
    assert call.ended.wait(5)
    assert accepted and accepted[0].has_leg and accepted[0].position == 1
    assert reports[0].outcome == "bridged" and not reports[0].cancelled_proxy


def test_r9_hangup_while_waiting_cancels_the_proxy_at_once(center, server_for):
    db, skill, settings, key = center
    other = acd.authenticate_peer(db, acd.create_peer(db, f"other-{skill}"))
    ahead = acd.create_proxy(db, other, skill)
    server, reports = server_for(settings)
    call = FakeOutboundCall(server.port, digits={"dialer_menu_digits": "1"}).start()
    assert wait_until(lambda: any(p.caller_number == call.caller and p.skill == skill for p in acd.list_proxies(db)))
    mine = next(p for p in acd.list_proxies(db) if p.caller_number == call.caller and p.skill == skill)
    gevent.sleep(0.3)
    t0 = time.monotonic()
    call.hangup()
    assert wait_until(lambda: acd.get_proxy(db, mine.id).state == "cancelled", timeout=3)
    assert time.monotonic() - t0 < 1.0
    assert acd.get_proxy(db, mine.id).end_reason == "caller_hangup"
    assert wait_until(lambda: len(server.calls) == 0)
    acd.cancel_proxy(db, ahead.id, other)


@pytest.mark.parametrize("n, files", [(0, ["0"]), (7, ["7"]), (20, ["20"]), (42, ["40", "2"]),
                                      (100, ["1", "hundred"]), (315, ["3", "hundred", "15"]), (342, ["3", "hundred", "40", "2"])])
def test_r7_position_is_spoken_with_stock_digit_files(n, files):
    from esl_dialer.ivr.app import number_files
    assert number_files(n) == [f"digits/{f}.wav" for f in files]


def test_r9_switch_connection_lost_while_waiting_cancels_the_proxy(center, server_for):
    db, skill, settings, key = center
    other = acd.authenticate_peer(db, acd.create_peer(db, f"other-{skill}"))
    ahead = acd.create_proxy(db, other, skill)
    server, reports = server_for(settings)
    call = FakeOutboundCall(server.port, digits={"dialer_menu_digits": "1"}).start()
    assert wait_until(lambda: any(p.caller_number == call.caller and p.skill == skill for p in acd.list_proxies(db)))
    mine = next(p for p in acd.list_proxies(db) if p.caller_number == call.caller and p.skill == skill)
    call.drop()
    assert wait_until(lambda: acd.get_proxy(db, mine.id).state == "cancelled", timeout=3)
    assert wait_until(lambda: len(server.calls) == 0 and server.connection_count == 0)
    acd.cancel_proxy(db, ahead.id, other)


def test_r9_remote_down_retries_once_then_voicemail(server_for):
    dead = RemoteCenter("remote", "http://127.0.0.1:9", "k" * 20, timeout_s=0.5, retries=0)
    settings = local_settings(centers={"remote": dead}, retry_delay_s=0.05, voicemail_dir="/tmp/vm",
                              voicemail_max_s=60)
    server, reports = server_for(settings)
    call = FakeOutboundCall(server.port, digits={"dialer_menu_digits": "1"}).start()
    assert call.ended.wait(10)
    record = [arg for app, arg in call.executed if app == "record"]
    assert record == [f"/tmp/vm/{call.uuid}.wav 60 200 3"]
    assert reports[0].outcome == "voicemail" and reports[0].attempts == 2
    assert "bridge" not in call.apps()


def test_r9_failed_bridge_is_retried_once_then_falls_back(center, server_for):
    db, skill, settings, key = center
    settings.fallback = "hangup"
    server, reports = server_for(settings)
    call = FakeOutboundCall(server.port, digits={"dialer_menu_digits": "1"},
                            bridge_result=lambda dial: {"originate_disposition": "CALL_REJECTED"}).start()
    assert call.ended.wait(10)
    assert call.apps().count("bridge") == 2
    assert reports[0].outcome == "hangup" and reports[0].attempts == 2
    assert all(p.skill != skill for p in acd.list_proxies(db))  # both proxies ended


def test_r9_callback_fallback_stores_a_scheduled_record(remote, server_for):
    db, ctl, key = remote
    from controller.models import Campaign, CallRecord
    import sqlalchemy as sa

    with db.session() as s:
        if not s.scalar(sa.select(Campaign).where(Campaign.name == "callbacks")):
            s.add(Campaign(name="callbacks"))
    local = RemoteCenter("local", ctl.url, key, timeout_s=5.0, retries=0)
    dead = RemoteCenter("remote", "http://127.0.0.1:9", "k" * 20, timeout_s=0.5, retries=0)
    settings = local_settings(centers={"remote": dead, "local": local}, retry_delay_s=0.05,
                              fallback="callback", callback_center="local")
    server, reports = server_for(settings)
    call = FakeOutboundCall(server.port, digits={"dialer_menu_digits": "1"}, caller="+14155552671").start()
    assert call.ended.wait(10)
    assert reports[0].outcome == "callback"
    with db.session() as s:
        rec = s.scalar(sa.select(CallRecord).where(CallRecord.number == "+14155552671"))
        assert rec is not None and rec.is_callback and rec.priority < 0 and rec.next_attempt_at is not None


def test_r3_menu_downloaded_with_etag_and_offline_copy(remote, tmp_path):
    db, ctl, key = remote
    etag = ivr_service.put_menu(db, MENU)
    center = RemoteCenter("remote", ctl.url, key, cache_dir=str(tmp_path), timeout_s=1.0, retries=0)
    menu, source = center.fetch_menu("test")
    assert source == "downloaded" and menu.name == "test"
    assert (tmp_path / "remote" / "test.etag").read_text().strip('"') == etag
    assert center.fetch_menu("test")[1] == "not_modified"
    changed = json.loads(json.dumps(MENU))
    changed["nodes"]["info"]["prompt"] = "ivr/other.wav"
    ivr_service.put_menu(db, changed)
    menu, source = center.fetch_menu("test")
    assert source == "downloaded" and menu.nodes["info"]["prompt"] == "ivr/other.wav"
    offline = RemoteCenter("remote", "http://127.0.0.1:9", key, cache_dir=str(tmp_path), timeout_s=0.5, retries=0)
    menu, source = offline.fetch_menu("test")
    assert source == "offline_copy" and menu.nodes["info"]["prompt"] == "ivr/other.wav"
    from esl_dialer.ivr.remote_client import MenuUnavailable
    with pytest.raises(MenuUnavailable):
        RemoteCenter("remote", "http://127.0.0.1:9", key, cache_dir=str(tmp_path / "empty"), timeout_s=0.5,
                     retries=0).fetch_menu("test")


def test_r3_ivr_service_starts_from_a_downloaded_menu_and_its_offline_copy(remote, tmp_path):
    from esl_dialer.ivr.config import build_service

    db, ctl, key = remote
    ivr_service.put_menu(db, {**MENU, "name": "svc"})
    doc = {"centers": {"remote": {"url": ctl.url, "api_key": key, "cache_dir": str(tmp_path)}}}
    service = build_service(doc, port=0, menu_url=f"{ctl.url}/api/v1/ivr/svc")
    assert service.menus.last_source == "downloaded" and service.menus.current().name == "svc"
    # the remote center is down: the IVR still starts, on the cached copy
    down = {"centers": {"remote": {"url": "http://127.0.0.1:9", "api_key": key, "cache_dir": str(tmp_path),
                                   "timeout_s": 0.5}}}
    service = build_service(down, port=0, menu_url="http://127.0.0.1:9/api/v1/ivr/svc")
    assert service.menus.last_source == "offline_copy" and service.menus.current().name == "svc"


def test_r8_lookup_at_the_remote_application_server(remote, server_for):
    db, ctl, key = remote
    from controller.models import Campaign, CallRecord, Pool
    import sqlalchemy as sa

    with db.session() as s:
        camp = s.scalar(sa.select(Campaign).where(Campaign.name == "crm")) or Campaign(name="crm")
        s.add(camp)
        s.flush()
        pool = Pool(campaign_id=camp.id, name="p")
        s.add(pool)
        s.flush()
        s.add(CallRecord(campaign_id=camp.id, pool_id=pool.id, number="+14155550199", name="Ann Smith",
                         extra={"vip": "yes"}))
    doc = {"name": "lk", "start": "who", "nodes": {
        "who": {"type": "lookup", "url": ctl.url + "/api/v1/ivr/lookup?number={ani}", "timeout_s": 2,
                "store": {"customer_name": "name", "vip": "vip"}, "next": "route", "on_error": "bye"},
        "route": {"type": "switch", "variable": "vip", "cases": {"true": "vip"}, "default": "bye"},
        "vip": {"type": "play", "prompt": "ivr/vip.wav", "next": "bye"},
        "bye": {"type": "hangup"}}}
    center = RemoteCenter("remote", ctl.url, key)
    server, reports = server_for(local_settings(doc, centers={"remote": center}))
    call = FakeOutboundCall(server.port, caller="+14155550199").start()
    assert call.ended.wait(5)
    assert ("playback", "ivr/vip.wav") in call.executed
    assert reports[0].path == ["who", "route", "vip", "bye"]


def test_r5_progress_falls_back_to_polling(center, monkeypatch):
    db, skill, settings, key = center
    hub = settings.hubs["remote"]
    hub.stop()
    from esl_dialer.ivr.remote_client import ControllerUnavailable

    polling = ProgressHub(settings.centers["remote"], poll_s=0.05, sse_retry_s=30)

    def broken_stream():
        raise ControllerUnavailable("stream refused by a proxy in between")

    monkeypatch.setattr(polling, "_stream", broken_stream)
    polling.start()
    peer = acd.authenticate_peer(db, key)
    snap = acd.create_proxy(db, peer, skill)
    q = polling.watch(snap.id)
    acd.set_operator_state(db, f"op-{skill}", "available")
    got = q.get(timeout=3)
    while got["state"] != "offered":
        got = q.get(timeout=3)
    assert polling.mode == "polling" and got["operator"]["name"] == f"op-{skill}"
    polling.stop()


def test_r7_expected_wait_spoken_in_whole_minutes():
    assert wait_files(None) == [] and wait_files(0) == [] and wait_files(True) == []
    assert wait_files(20) == ["digits/1.wav", "time/minute.wav"]  # under a minute: "1 minute"
    assert wait_files(150) == ["digits/2.wav", "time/minutes.wav"]
    assert wait_files(1200, "ivr/expected_wait.wav") == ["ivr/expected_wait.wav", "digits/20.wav", "time/minutes.wav"]

"""The switch adapter against the simulated FreeSWITCH (esl_dialer.sim) over real TCP (X2, D2)."""
from __future__ import annotations

import gevent
import pytest

sim_mod = pytest.importorskip("esl_dialer.sim")

from esl_dialer.messages import AttemptResult  # noqa: E402
from esl_dialer.switch import AuthFailed, ChannelHangup, CommandFailed, Switch, SwitchTimeout  # noqa: E402


@pytest.fixture
def sim():
    s = sim_mod.SimSwitch(sim_mod.SimConfig(), host="127.0.0.1", port=0)
    s.start()
    yield s
    s.stop(timeout=5)


@pytest.fixture
def sw(sim):
    switch = Switch("127.0.0.1", sim.port, sim.password, connect_timeout=5, command_timeout=10,
                    reconnect_min_s=0.05, reconnect_max_s=0.2)
    switch.start()
    yield switch
    switch.close()


def test_x2_sim_auth_status_and_bad_password(sim, sw):
    assert sw.status().startswith("UP ")
    bad = Switch("127.0.0.1", sim.port, "nope", connect_timeout=5)
    with pytest.raises(AuthFailed):
        bad.start()


def test_d2_sim_originate_answer_talk_hangup(sim, sw):
    sim.script("14155550100", "answer", ring_s=0.05, talk_s=0.3)
    res = sw.originate("sofia/gateway/gw1/14155550100", variables={"dialer_record_id": 7}, originate_timeout=10)
    assert res.ok and res.result is None
    answer = sw.wait_for(res.uuid, "CHANNEL_ANSWER", timeout=5)
    assert answer.variable("dialer_record_id") == "7"
    done = sw.wait_for(res.uuid, "CHANNEL_HANGUP_COMPLETE", timeout=5)
    assert done["Hangup-Cause"] == "NORMAL_CLEARING"


@pytest.mark.parametrize("outcome,cause,result", [
    ("busy", "USER_BUSY", AttemptResult.BUSY),
    ("no_answer", "NO_ANSWER", AttemptResult.NO_ANSWER),
    ("failed", "NORMAL_TEMPORARY_FAILURE", AttemptResult.FAILED),
])
def test_d2_sim_originate_failures(sim, sw, outcome, cause, result):
    sim.script("14155550111", outcome, ring_s=0.05)
    res = sw.originate("sofia/gateway/gw1/14155550111", originate_timeout=1)
    assert not res.ok and res.cause == cause and res.result is result


def test_x2_sim_error_endpoint_and_hangup_wait(sim, sw):
    res = sw.originate("error/user_busy")
    assert (res.ok, res.cause) == (False, "USER_BUSY")
    sim.script("14155550122", "answer", ring_s=0.05, talk_s=0.2)
    res = sw.originate("sofia/gateway/gw1/14155550122")
    assert res.ok
    with pytest.raises(ChannelHangup) as err:
        sw.wait_for(res.uuid, "PLAYBACK_START", timeout=5)
    assert err.value.cause == "NORMAL_CLEARING"


def test_x2_sim_bridge_broadcast_vars_kill(sim, sw):
    a = sw.originate("loopback/9993", originate_timeout=5)
    b = sw.originate("loopback/9993", originate_timeout=5)
    assert a.ok and b.ok
    sw.bridge(a.uuid, b.uuid)
    sw.wait_for(a.uuid, "CHANNEL_BRIDGE", timeout=5)
    mark = sw.seq
    sw.broadcast(a.uuid, "tone_stream://%(200,0,440)", leg="both")
    sw.wait_for(a.uuid, "PLAYBACK_STOP", timeout=10, since=mark)
    assert sw.getvar(a.uuid, "dialer_missing_var") is None
    sw.setvar(a.uuid, "dialer_agent", "1001")
    assert sw.getvar(a.uuid, "dialer_agent") == "1001"
    assert sw.exists(a.uuid)
    uuids = {row["uuid"] for row in sw.show_channels()}
    assert a.uuid in uuids
    assert sw.kill(a.uuid) is True
    sw.wait_for(a.uuid, "CHANNEL_HANGUP_COMPLETE", timeout=5)
    assert sw.kill("00000000-0000-0000-0000-000000000000") is False
    with pytest.raises(CommandFailed):
        sw.bridge("00000000-0000-0000-0000-000000000000", b.uuid)
    sw.hupall()
    sw.wait_for(b.uuid, "CHANNEL_HANGUP_COMPLETE", timeout=5)
    assert not sw.exists(b.uuid)


def test_x2_sim_dropped_connection_mid_call(sim, sw):
    sim.script("14155550133", "answer", ring_s=0.05, talk_s=30)
    res = sw.originate("sofia/gateway/gw1/14155550133")
    assert res.ok
    sw.wait_for(res.uuid, "CHANNEL_ANSWER", timeout=5)
    sw._conn.sock.shutdown(2)  # the network drops the ESL session; the call goes on in the switch
    with gevent.Timeout(5):
        while sw.stats["connects"] < 2 or not sw.connected:
            gevent.sleep(0.02)
    assert sw.exists(res.uuid)  # re-subscribed: events of the live call reach us again
    sw.kill(res.uuid, "NORMAL_CLEARING")
    ev = sw.wait_for(res.uuid, "CHANNEL_HANGUP_COMPLETE", timeout=5)
    assert ev.uuid == res.uuid


def test_x2_sim_wait_for_times_out(sim, sw):
    sim.script("14155550144", "answer", ring_s=0.05, talk_s=5)
    res = sw.originate("sofia/gateway/gw1/14155550144")
    with pytest.raises(SwitchTimeout):
        sw.wait_for(res.uuid, "DTMF", timeout=0.2)
    sw.kill(res.uuid)


def test_x2_sim_transfer_break_record(sim, sw):
    a = sw.originate("loopback/9993", originate_timeout=5)
    assert a.ok
    mark = sw.seq
    sw.broadcast(a.uuid, "/nonexistent/long-prompt.wav", leg="aleg")  # lasts playback_default_s (3 s)
    sw.wait_for(a.uuid, "PLAYBACK_START", timeout=2, since=mark)
    t0 = gevent.get_hub().loop.now()
    sw.break_(a.uuid)
    sw.wait_for(a.uuid, "PLAYBACK_STOP", timeout=2, since=mark)
    assert gevent.get_hub().loop.now() - t0 < 1.5
    sw.record(a.uuid, "/tmp/esl-dialer-test-rec.wav")
    sw.record(a.uuid, "/tmp/esl-dialer-test-rec.wav", action="stop")
    sw.transfer(a.uuid, "9990")  # answer, sleep 1 s, hang up NORMAL_CLEARING
    ev = sw.wait_for(a.uuid, "CHANNEL_HANGUP_COMPLETE", timeout=5)
    assert ev["Hangup-Cause"] == "NORMAL_CLEARING"
    with pytest.raises(CommandFailed):
        sw.transfer(a.uuid, "9990")  # gone now


def _parked_pair(sw):
    a = sw.originate("loopback/9993", originate_timeout=10)
    b = sw.originate("loopback/9993", originate_timeout=10)
    assert a.ok and b.ok
    return a.uuid, b.uuid


def test_d4_bridge_waits_for_channel_bridge_so_the_greeting_plays(sim, sw):
    """FreeSWITCH replies to uuid_bridge before the bridge; a greeting sent then fails (PLAYBACK ERROR)."""
    a, b = _parked_pair(sw)
    since = sw.seq
    ev = sw.bridge(a, b, wait_s=2.0)
    assert ev.name == "CHANNEL_BRIDGE" and ev["Bridge-B-Unique-ID"] == b
    sw.subscribe("PLAYBACK_START", "CHANNEL_EXECUTE_COMPLETE")
    sw.broadcast(a, "tone_stream://%(200,0,440)", "both")
    start = sw.wait_for(b, "PLAYBACK_START", timeout=3, since=since)
    assert start["Playback-File-Path"] == "tone_stream://%(200,0,440)"
    done = sw.wait_for(a, "CHANNEL_EXECUTE_COMPLETE", timeout=3, since=since)
    assert done["Application-Response"] != "PLAYBACK ERROR"


def test_d4_greeting_right_after_the_uuid_bridge_reply_is_lost_on_a_real_switch():
    """Why the wait: the old way (broadcast at once after +OK) loses the greeting.  The switch here
    takes 1 s instead of 60 ms to bridge, so a slow round trip on a loaded machine cannot hide it."""
    from esl_dialer.sim.timing import TimingConfig

    slow = sim_mod.SimSwitch(sim_mod.SimConfig(timing=TimingConfig(bridge_complete_ms=1000)),
                             host="127.0.0.1", port=0).start()
    sw = Switch("127.0.0.1", slow.port, slow.password, connect_timeout=5, command_timeout=10)
    sw.start()
    try:
        a, b = _parked_pair(sw)
        sw.subscribe("CHANNEL_EXECUTE_COMPLETE")
        since = sw.seq
        sw.bridge(a, b)
        sw.broadcast(a, "tone_stream://%(200,0,440)", "both")
        while True:
            done = sw.wait_for(b, "CHANNEL_EXECUTE_COMPLETE", timeout=3, since=since)
            if done["Application"] == "playback":
                break
            since = done.seq  # park's completion
        assert done["Application-Response"] == "PLAYBACK ERROR"
        assert sw.wait_for(a, "CHANNEL_BRIDGE", timeout=3).name == "CHANNEL_BRIDGE"  # the bridge still completes
    finally:
        sw.close()
        slow.stop(timeout=5)


def test_d4_bridge_wait_is_bounded():
    from esl_dialer.sim.timing import TimingConfig

    slow = sim_mod.SimSwitch(sim_mod.SimConfig(timing=TimingConfig(bridge_complete_ms=3000)),
                             host="127.0.0.1", port=0).start()
    switch = Switch("127.0.0.1", slow.port, slow.password, connect_timeout=5, command_timeout=10)
    switch.start()
    try:
        a, b = _parked_pair(switch)
        with pytest.raises(SwitchTimeout):
            switch.bridge(a, b, wait_s=0.2)
    finally:
        switch.close()
        slow.stop(timeout=5)

"""The simulated switch keeps FreeSWITCH 1.10's timing and event order (esl-captures e_timing, f_outbound_break).

Each figure is the capture's (README, "Timing on a real switch"): lower
bounds the old near-zero simulator broke, upper bounds generous for a busy
machine.  Times are taken when the client receives each frame, as in the
captures.  Everything runs at time_scale 1: the delays are the point.
"""
from __future__ import annotations

import time
import wave

import gevent
import pytest
from gevent.queue import Queue
from gevent.server import StreamServer

from conformance_capture import capture_path, open_capture

from esl_dialer.esl import encode_sendmsg, parse_event
from esl_dialer.sim import SimConfig, SimSwitch
from esl_dialer.sim.config import SimConfigError, load_sim_config
from esl_dialer.sim.testing import RawEslClient, wait_until
from esl_dialer.sim.timing import IDEAL, REALISTIC, TimingConfig

SLACK = 0.015  # the capture's 20 ms steps, measured on the client: allow a little under
BUSY = 1.0  # upper-bound slack for a loaded machine


class Recorder:
    """An inbound ESL connection that keeps every frame with the time it arrived."""

    def __init__(self, port: int, sock=None, auth: bool = True) -> None:
        self.c = RawEslClient("127.0.0.1", port, sock=sock)
        if auth:
            self.c.auth()
        self.frames: list[tuple[float, object]] = []
        self.greenlet = gevent.spawn(self._read)

    def _read(self) -> None:
        while True:
            try:
                frame = self.c.read_frame(timeout=60)
            except (TimeoutError, OSError):
                return
            if frame is None:
                return
            self.frames.append((time.monotonic(), frame))

    def send(self, line: str) -> float:
        t = time.monotonic()
        self.c.command(line)
        return t

    def api(self, line: str, timeout: float = 5.0) -> tuple[float, str]:
        """``api`` command: (time it was sent, reply body).  Delays are measured from the send: the
        switch cannot act before it has the command, so lower bounds hold however loaded the machine."""
        seen = len(self.frames)
        t = self.send(f"api {line}")
        assert wait_until(lambda: any(f.content_type == "api/response" for _, f in self.frames[seen:]), timeout)
        return t, next(f.text for _, f in self.frames[seen:] if f.content_type == "api/response")

    def events(self, uuid: str | None = None, since: float = 0.0) -> list[tuple[float, dict]]:
        out = []
        for t, f in list(self.frames):
            if t >= since and f.is_event:
                ev = dict(parse_event(f).headers)
                if uuid is None or ev.get("Unique-ID") == uuid:
                    out.append((t, ev))
        return out

    def wait(self, uuid: str, name: str, since: float = 0.0, timeout: float = 5.0, **match) -> tuple[float, dict]:
        def find():
            for t, ev in self.events(uuid, since):
                if ev["Event-Name"] == name and all(ev.get(k) == v for k, v in match.items()):
                    return t, ev
            return None
        assert wait_until(lambda: find() is not None, timeout), (name, match)
        return find()

    def close(self) -> None:
        self.c.close()
        self.greenlet.kill()


def seq(events: list[tuple[float, dict]]) -> list[str]:
    out = []
    for _, ev in events:
        name = ev["Event-Name"]
        if name == "CHANNEL_STATE":
            name += f" {ev['Channel-State']}"
        elif ev.get("Application"):
            name += f" {ev['Application']}"
        out.append(name)
    return out


@pytest.fixture
def wav(tmp_path):
    """A 1.0 s, 8 kHz WAV like the capture's esl-test/tone-1s.wav."""
    path = tmp_path / "tone-1s.wav"
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000)
    return str(path)


@pytest.fixture
def sim():
    s = SimSwitch(SimConfig(), port=0).start()
    try:
        yield s
    finally:
        s.stop(timeout=2)


@pytest.fixture
def esl(sim):
    r = Recorder(sim.port)
    try:
        r.send("event plain ALL")
        yield r
    finally:
        r.close()


def parked_pair(sim, esl) -> tuple[str, str]:
    a, b = (esl.api("originate loopback/9993 &park()")[1].split()[1] for _ in range(2))
    for uuid in (a, b):
        esl.wait(uuid, "CHANNEL_PARK")
    return a, b


def bridged_pair(sim, esl) -> tuple[str, str, float]:
    a, b = parked_pair(sim, esl)
    esl.api(f"uuid_bridge {a} {b}")
    t, _ = esl.wait(a, "CHANNEL_BRIDGE")
    return a, b, t


# -- configuration -----------------------------------------------------------------


def test_realistic_is_the_default_and_ideal_is_a_profile(tmp_path):
    assert SimConfig().timing == REALISTIC and REALISTIC.bridge_complete_ms == 60
    assert REALISTIC.broadcast_parked_ms == 200 and REALISTIC.broadcast_bridged_a_ms == 380
    assert all(getattr(IDEAL, f) == 0 for f in ("bridge_complete_ms", "broadcast_parked_ms", "break_ms"))
    shipped = load_sim_config(__import__("pathlib").Path(__file__).resolve().parents[1] / "freeswitch" / "sim.toml")
    assert shipped.timing.profile == "realistic"
    path = tmp_path / "t.toml"
    path.write_text('[timing]\nprofile = "ideal"\nbroadcast_parked_ms = 40\n')
    cfg = load_sim_config(path)
    assert cfg.timing == TimingConfig(**{**IDEAL.__dict__, "broadcast_parked_ms": 40})
    path.write_text('[timing]\nprofile = "slow"\n')
    with pytest.raises(SimConfigError, match="timing.profile"):
        load_sim_config(path)
    path.write_text("[timing]\nbreak_ms = -1\n")
    with pytest.raises(SimConfigError, match="timing.break_ms"):
        load_sim_config(path)


def test_delays_follow_time_scale():
    """Switch delays are simulated time: at time_scale 0.25 the 60 ms bridge takes about 15 ms."""
    s = SimSwitch(SimConfig(time_scale=0.25), port=0).start()
    r = Recorder(s.port)
    try:
        r.send("event plain ALL")
        a, b = parked_pair(s, r)
        t0, _ = r.api(f"uuid_bridge {a} {b}")
        t, ev = r.wait(a, "CHANNEL_BRIDGE")
        assert 0.010 <= t - t0 < 0.045 + BUSY
        # the event clock is simulated: Event-Date-Timestamp still shows the capture's 60 ms
        _, unpark = r.wait(a, "CHANNEL_UNPARK")
        sim_ms = (int(ev["Event-Date-Timestamp"]) - int(unpark["Event-Date-Timestamp"])) / 1000
        assert 30 <= sim_ms < 400
    finally:
        r.close()
        s.stop(timeout=2)


# -- uuid_bridge -------------------------------------------------------------------


def test_uuid_bridge_replies_first_then_unparks_20ms_and_bridges_60ms_later(sim, esl):
    a, b = parked_pair(sim, esl)
    t0, body = esl.api(f"uuid_bridge {a} {b}")
    assert body == f"+OK {b}\n"
    t_reply = next(t for t, f in esl.frames if t >= t0 and f.content_type == "api/response")
    t_unpark, unpark = esl.wait(a, "CHANNEL_UNPARK", t0)
    t_bridge, bridge = esl.wait(a, "CHANNEL_BRIDGE", t0)
    assert 0.020 - SLACK <= t_unpark - t0 < 0.020 + BUSY  # capture: 20-22 ms
    assert 0.060 - SLACK <= t_bridge - t0 < 0.060 + BUSY  # capture: 61-63 ms, never before the reply
    assert t_reply < t_unpark
    assert unpark["Other-Leg-Unique-ID"] == b and unpark["Other-Type"] == "originatee"
    esl.wait(b, "CHANNEL_STATE", t0, **{"Channel-State": "CS_EXCHANGE_MEDIA"})
    assert seq(esl.events(a, t0)) == [
        "CHANNEL_UNPARK", "CHANNEL_EXECUTE_COMPLETE park", "CHANNEL_STATE CS_HIBERNATE", "CHANNEL_STATE CS_RESET",
        "CHANNEL_STATE CS_SOFT_EXECUTE", "CHANNEL_EXECUTE uuid_bridge", "CHANNEL_BRIDGE"]
    b_events = esl.events(b, t0)
    assert seq(b_events) == [
        "CHANNEL_UNPARK", "CHANNEL_EXECUTE_COMPLETE park", "CHANNEL_STATE CS_HIBERNATE", "CHANNEL_STATE CS_RESET",
        "CHANNEL_STATE CS_SOFT_EXECUTE", "CHANNEL_EXECUTE uuid_bridge", "CHANNEL_STATE CS_CONSUME_MEDIA",
        "CHANNEL_STATE CS_EXCHANGE_MEDIA"]  # no CHANNEL_BRIDGE on B
    assert b_events[0][1]["Other-Leg-Unique-ID"] == a and b_events[0][1]["Other-Type"] == "originator"
    # Channel-Call-UUID: each leg its own before the bridge; from the bridge on, B carries A
    assert b_events[0][1]["Channel-Call-UUID"] == b and b_events[-1][1]["Channel-Call-UUID"] == a
    assert bridge["Bridge-A-Unique-ID"] == a and bridge["Bridge-B-Unique-ID"] == b
    assert bridge["Channel-Call-UUID"] == a and bridge["Channel-State"] == "CS_SOFT_EXECUTE"
    # variables as FreeSWITCH sends them: bridge_uuid/signal_bond from UNPARK, uuid_bridge on A's UNPARK
    # only, bridge_to/last_bridge_to only once the bridge runs, is_loopback never before the hang-up
    assert unpark["variable_bridge_uuid"] == b and unpark["variable_signal_bond"] == b
    assert unpark["variable_uuid_bridge"] == b and "variable_uuid_bridge" not in bridge
    assert "variable_bridge_to" not in unpark and "variable_bridge_to" not in bridge
    assert b_events[0][1]["variable_bridge_uuid"] == a and "variable_uuid_bridge" not in b_events[0][1]
    assert not any("variable_is_loopback" in ev for _, ev in esl.events(a) + esl.events(b))
    assert int(bridge["Caller-Channel-Bridged-Time"]) > int(unpark["Event-Date-Timestamp"])


def test_broadcast_before_the_bridge_is_up_fails_with_playback_error(sim, esl, wav):
    a, b = parked_pair(sim, esl)
    # the broadcast right behind the bridge (one write: the client's round trip does not matter)
    t0 = esl.send(f"api uuid_bridge {a} {b}\n\napi uuid_broadcast {a} {wav} both")
    esl.wait(b, "CHANNEL_STATE", t0, **{"Channel-State": "CS_EXCHANGE_MEDIA"})
    gevent.sleep(0.3)
    for leg in (a, b):
        events = esl.events(leg, t0)
        names = seq(events)
        # e_timing (11-a, 12-a): the queued broadcast reports itself as PRIVATE_COMMAND once it ran
        assert names[:5] == ["CHANNEL_EXECUTE playback", "CHANNEL_EXECUTE_COMPLETE playback", "PRIVATE_COMMAND",
                             "CHANNEL_UNPARK", "CHANNEL_EXECUTE_COMPLETE park"], names
        assert events[1][1]["Application-Response"] == "PLAYBACK ERROR"
        assert events[4][1]["Application-Response"] == "PLAYBACK ERROR"  # park reports it too
        assert "PLAYBACK_START" not in names and "PLAYBACK_STOP" not in names
        assert 0.020 - SLACK <= events[0][0] - t0  # capture: 20-23 ms
    assert "CHANNEL_BRIDGE" in seq(esl.events(a, t0))  # the bridge completes normally


def test_broadcast_after_channel_bridge_plays_on_b_after_361ms_and_a_after_381ms(sim, esl, wav):
    a, b, _ = bridged_pair(sim, esl)
    t0, body = esl.api(f"uuid_broadcast {a} {wav} both")
    assert body == "+OK Message sent\n"
    tb, _ = esl.wait(b, "PLAYBACK_START", t0)
    ta, _ = esl.wait(a, "PLAYBACK_START", t0)
    assert 0.360 - SLACK <= tb - t0 < 0.360 + BUSY
    assert 0.380 - SLACK <= ta - t0 < 0.380 + BUSY and ta > tb
    t_stop, stop = esl.wait(a, "PLAYBACK_STOP", t0, timeout=5)
    assert stop["Playback-Status"] == "done"
    assert 1.0 - SLACK <= t_stop - ta < 1.0 + BUSY  # the 1.0 s WAV: capture 1002-1004 ms
    print(f"measured: bridge broadcast B {1000 * (tb - t0):.0f} ms, A {1000 * (ta - t0):.0f} ms, "
          f"file {1000 * (t_stop - ta):.0f} ms")


def test_broadcast_on_a_parked_leg_starts_after_200ms_and_uuid_break_stops_it_20ms_later(sim, esl):
    uuid = esl.api("originate loopback/9993 &park()")[1].split()[1]
    esl.wait(uuid, "CHANNEL_PARK")
    t0, _ = esl.api(f"uuid_broadcast {uuid} local_stream://moh aleg")
    t_start, _ = esl.wait(uuid, "PLAYBACK_START", t0)
    assert 0.200 - SLACK <= t_start - t0 < 0.200 + BUSY  # capture: 201-202 ms
    gevent.sleep(0.5)  # local_stream:// plays until broken (capture: 821 ms, then uuid_break)
    assert not [e for e in esl.events(uuid, t0) if e[1]["Event-Name"] == "PLAYBACK_STOP"]
    t1, _ = esl.api(f"uuid_break {uuid}")
    t_stop, stop = esl.wait(uuid, "PLAYBACK_STOP", t1)
    assert stop["Playback-Status"] == "break"
    assert 0.020 - SLACK <= t_stop - t1 < 0.020 + BUSY  # capture: 21 ms
    _, done = esl.wait(uuid, "CHANNEL_EXECUTE_COMPLETE", t1, Application="playback")
    assert done["Application-Response"] == "FILE PLAYED"


# -- hang-up of a bridged pair -----------------------------------------------------------


def test_killing_a_hangs_up_b_20ms_later_in_freeswitchs_order(sim, esl):
    a, b, _ = bridged_pair(sim, esl)
    t0, _ = esl.api(f"uuid_kill {a}")
    t_done, _ = esl.wait(a, "CHANNEL_HANGUP_COMPLETE", t0)
    gevent.sleep(0.05)
    pair = [(ev["Unique-ID"], ev["Event-Name"]) for _, ev in esl.events(since=t0 - 0.005)
            if ev.get("Unique-ID") in (a, b) and ev["Event-Name"] in
            ("CHANNEL_HANGUP", "CHANNEL_UNBRIDGE", "CHANNEL_HANGUP_COMPLETE")]
    assert pair == [(a, "CHANNEL_HANGUP"), (b, "CHANNEL_HANGUP"), (b, "CHANNEL_HANGUP_COMPLETE"),
                    (a, "CHANNEL_UNBRIDGE"), (a, "CHANNEL_HANGUP_COMPLETE")]
    t_b, b_hangup = esl.wait(b, "CHANNEL_HANGUP", t0)
    assert 0.020 - SLACK <= t_b - t0 < 0.020 + BUSY  # capture: 20-23 ms
    assert b_hangup["Hangup-Cause"] == "NORMAL_CLEARING"
    _, b_done = esl.wait(b, "CHANNEL_HANGUP_COMPLETE", t0)
    _, a_done = esl.wait(a, "CHANNEL_HANGUP_COMPLETE", t0)
    assert b_done["variable_last_app"] == "park"  # never uuid_bridge
    assert b_done["variable_bridge_uuid"] == a and b_done["variable_last_bridge_to"] == a
    assert a_done["variable_bridge_hangup_cause"] == "NORMAL_CLEARING"
    assert a_done["variable_hangup_cause"] == "NORMAL_CLEARING" and a_done["variable_last_app"] == "park"
    assert a_done["variable_last_bridge_role"] == "originator" and "variable_last_arg" not in a_done
    assert b_done["variable_last_bridge_hangup_cause"] == "NORMAL_CLEARING"
    assert "variable_bridge_to" not in b_hangup and b_done["variable_is_loopback"] == "1"


def test_killing_b_unbridges_and_hangs_up_a_before_b_completes(sim, esl):
    a, b, _ = bridged_pair(sim, esl)
    t0, _ = esl.api(f"uuid_kill {b}")
    esl.wait(b, "CHANNEL_HANGUP_COMPLETE", t0)
    pair = [(ev["Unique-ID"], ev["Event-Name"]) for _, ev in esl.events(since=t0 - 0.005)
            if ev.get("Unique-ID") in (a, b) and ev["Event-Name"] in
            ("CHANNEL_HANGUP", "CHANNEL_UNBRIDGE", "CHANNEL_HANGUP_COMPLETE")]
    assert pair == [(b, "CHANNEL_HANGUP"), (a, "CHANNEL_UNBRIDGE"), (a, "CHANNEL_HANGUP"),
                    (a, "CHANNEL_HANGUP_COMPLETE"), (b, "CHANNEL_HANGUP_COMPLETE")]
    t_a, a_hangup = esl.wait(a, "CHANNEL_HANGUP", t0)
    assert 0.020 - SLACK <= t_a - t0 < 0.020 + BUSY
    assert a_hangup["Hangup-Cause"] == "NORMAL_CLEARING" and a_hangup["Channel-State"] == "CS_EXECUTE"
    _, a_done = esl.wait(a, "CHANNEL_HANGUP_COMPLETE", t0)
    _, b_done = esl.wait(b, "CHANNEL_HANGUP_COMPLETE", t0)
    assert a_done["variable_bridge_hangup_cause"] == "NORMAL_CLEARING"
    assert a_done["variable_last_bridge_to"] == b and a_done["variable_last_app"] == "park"
    assert "variable_bridge_hangup_cause" not in b_done
    assert b_done["variable_last_bridge_role"] == "originatee"
    assert a_done["variable_last_bridge_hangup_cause"] == "NORMAL_CLEARING"


def test_last_app_is_the_broadcast_playback_not_uuid_bridge(sim, esl):
    a, b, _ = bridged_pair(sim, esl)
    t0, _ = esl.api(f"uuid_broadcast {a} tone_stream://%(100,0,440) both")
    esl.wait(a, "PLAYBACK_STOP", t0)
    esl.wait(b, "PLAYBACK_STOP", t0)
    esl.api(f"uuid_kill {a}")
    _, b_done = esl.wait(b, "CHANNEL_HANGUP_COMPLETE", t0)
    assert b_done["variable_last_app"] == "playback" and b_done["variable_last_arg"] == "tone_stream://%(100,0,440)"


# -- outbound socket: nested executes and event-lock -------------------------------------


@pytest.fixture
def outbound(sim):
    accepted: Queue = Queue()
    server = StreamServer(("127.0.0.1", 0), lambda sock, addr: (accepted.put(sock), gevent.sleep(30)))
    server.start()
    sim.dialplan = {**sim.dialplan, "7000": ("socket", f"127.0.0.1:{server.server_port} async full")}
    conns: list[Recorder] = []

    def call() -> tuple[str, Recorder]:
        uuid = sim.inbound_call("7000", "15551230001", dtmf="")
        out = Recorder(0, sock=accepted.get(timeout=5), auth=False)
        conns.append(out)
        out.send("connect")
        assert wait_until(lambda: out.frames, 5)
        out.send("myevents")
        out.send("event plain PLAYBACK_START PLAYBACK_STOP")
        return uuid, out

    try:
        yield call
    finally:
        for c in conns:
            c.close()
        server.stop(timeout=1)


def execute(out: Recorder, app: str, arg: str, lock: bool = False) -> float:
    headers = {"call-command": "execute", "execute-app-name": app, "execute-app-arg": arg}
    if lock:
        headers["event-lock"] = "true"
    t = time.monotonic()
    out.c.send(encode_sendmsg(None, headers))
    return t


THREE = ("local_stream://moh", "{wav}", "tone_stream://%(1000,0,350)")


def start_three(out: Recorder, uuid: str, wav: str, lock: bool) -> float:
    t_answer = execute(out, "answer", "", lock)
    t_exec, _ = out.wait(uuid, "CHANNEL_EXECUTE", t_answer, Application="answer")
    assert 0.020 - SLACK <= t_exec - t_answer < 0.020 + BUSY  # capture: 20-41 ms
    out.wait(uuid, "CHANNEL_EXECUTE_COMPLETE", t_answer, Application="answer")
    t0 = time.monotonic()
    for path in THREE:
        execute(out, "playback", path.format(wav=wav), lock)
    return t0


@pytest.mark.parametrize("all_", [True, False])
def test_outbound_executes_without_event_lock_nest_and_break_stops_all_innermost_first(
        sim, esl, outbound, wav, all_):
    uuid, out = outbound()
    t0 = start_three(out, uuid, wav, lock=False)
    starts = [out.wait(uuid, "PLAYBACK_START", t0, **{"Playback-File-Path": p.format(wav=wav)})[0] for p in THREE]
    assert 0.020 - SLACK <= starts[0] - t0 < 0.020 + BUSY  # capture: 20-21 ms
    assert max(starts) - min(starts) < 0.5  # all three at once, nested in each other (capture: within 1 ms)
    gevent.sleep(0.2)
    t1, _ = esl.api(f"uuid_break {uuid} all" if all_ else f"uuid_break {uuid}")
    stops = [out.wait(uuid, "PLAYBACK_STOP", t1, **{"Playback-File-Path": p.format(wav=wav)}) for p in THREE]
    assert all(ev["Playback-Status"] == "break" for _, ev in stops)
    moh, wav_stop, tone = (t for t, _ in stops)
    assert tone < wav_stop < moh  # innermost first
    assert 0.020 - SLACK <= tone - t1 and 0.020 - SLACK <= wav_stop - tone and 0.020 - SLACK <= moh - wav_stop
    assert moh - t1 < 0.060 + BUSY  # capture: +20, +40, +60 ms
    completes = [ev for _, ev in out.events(uuid, t1) if ev["Event-Name"] == "CHANNEL_EXECUTE_COMPLETE"]
    assert [ev["Application-Response"] for ev in completes] == ["FILE PLAYED"] * 3
    # the call stays in the socket application: a later execute works normally
    t2 = execute(out, "playback", "tone_stream://%(100,0,350)")
    _, done = out.wait(uuid, "CHANNEL_EXECUTE_COMPLETE", t2, Application="playback")
    assert done["Application-Response"] == "FILE PLAYED"


def test_outbound_event_lock_queues_and_uuid_break_all_discards_the_queue(sim, esl, outbound, wav):
    uuid, out = outbound()
    t0 = start_three(out, uuid, wav, lock=True)
    out.wait(uuid, "PLAYBACK_START", t0)
    gevent.sleep(0.2)
    assert len([e for e in out.events(uuid, t0) if e[1]["Event-Name"] == "PLAYBACK_START"]) == 1  # queued
    t1, _ = esl.api(f"uuid_break {uuid} all")
    t_stop, stop = out.wait(uuid, "PLAYBACK_STOP", t1)
    assert stop["Playback-File-Path"] == "local_stream://moh" and stop["Playback-Status"] == "break"
    assert 0.020 - SLACK <= t_stop - t1 < 0.020 + BUSY
    gevent.sleep(0.4)  # the queued two never produce any event
    later = [ev for _, ev in out.events(uuid, t1) if ev["Event-Name"] in ("CHANNEL_EXECUTE", "PLAYBACK_START")]
    assert later == []
    assert [ev["Application-Data"] for _, ev in out.events(uuid, t1)
            if ev["Event-Name"] == "CHANNEL_EXECUTE_COMPLETE"] == ["local_stream://moh"]


def test_outbound_event_lock_plain_break_stops_only_the_running_one(sim, esl, outbound, wav):
    uuid, out = outbound()
    t0 = start_three(out, uuid, wav, lock=True)
    out.wait(uuid, "PLAYBACK_START", t0)
    t1, _ = esl.api(f"uuid_break {uuid}")
    t_stop, _ = out.wait(uuid, "PLAYBACK_STOP", t1, **{"Playback-File-Path": "local_stream://moh"})
    t_next, _ = out.wait(uuid, "PLAYBACK_START", t1, **{"Playback-File-Path": wav})
    assert 0.020 - SLACK <= t_next - t_stop < 0.020 + BUSY  # capture: 20 ms after the PLAYBACK_STOP
    t_wav_stop, done = out.wait(uuid, "PLAYBACK_STOP", t1, timeout=5, **{"Playback-File-Path": wav})
    assert done["Playback-Status"] == "done" and 1.0 - SLACK <= t_wav_stop - t_next
    t_tone, _ = out.wait(uuid, "PLAYBACK_START", t1, timeout=5, **{"Playback-File-Path": THREE[2]})
    assert t_tone - t_wav_stop < 0.015 + BUSY  # after a file that ended by itself: at once


# -- product fallout: the IVR stops music that the switch has not started yet ------------


def test_ivr_music_stopped_right_after_it_was_sent_stops_at_once(sim):
    """The switch starts an execute a media step after sendmsg and `uuid_break all` discards one not yet
    started without any event: IvrSession.stop waits for the start, so it never sits out its 3 s timeout."""
    from esl_dialer.ivr.server import IvrServer

    outcome: dict = {}

    class MusicThenStop:
        def __init__(self, session) -> None:
            self.session = session

        def run(self) -> None:
            s = self.session
            s.send("myevents")
            s.execute("answer", timeout=5)
            moh = s.start("playback", "local_stream://moh")
            t0 = time.monotonic()
            outcome["stopped"] = s.stop(moh, s.session_data["Unique-ID"], timeout=3.0)
            outcome["took"] = time.monotonic() - t0
            outcome["response"] = moh.get(timeout=1).headers.get("Application-Response")
            s.execute("hangup", "NORMAL_CLEARING", timeout=5)

    server = IvrServer(MusicThenStop, host="127.0.0.1", port=0)
    server.start()
    try:
        sim.dialplan = {**sim.dialplan, "7000": ("socket", f"127.0.0.1:{server.port} async full")}
        uuid = sim.inbound_call("7000", "15551230001", dtmf="")
        assert wait_until(lambda: "took" in outcome, 5)
        assert outcome["stopped"] and outcome["response"] == "FILE PLAYED"
        assert outcome["took"] < 1.0  # not the 3 s timeout
        ch = sim.history_of(uuid)
        assert [(p.file, p.status) for p in ch.playbacks] == [("local_stream://moh", "break")]
    finally:
        server.stop(timeout=2)


def test_dialer_sim_has_a_timing_option():
    from click.testing import CliRunner

    from controller.cli import main

    result = CliRunner().invoke(main, ["sim", "--help"])
    assert result.exit_code == 0 and "--timing" in result.output and "realistic" in result.output
    result = CliRunner().invoke(main, ["sim", "--timing", "instant"])
    assert result.exit_code == 2 and "instant" in result.output


def test_a_break_that_comes_after_the_file_ended_does_not_hit_the_next_one(sim, esl):
    uuid = esl.api("originate loopback/9993 &park()")[1].split()[1]
    esl.wait(uuid, "CHANNEL_PARK")
    t0, _ = esl.api(f"uuid_broadcast {uuid} tone_stream://%(10,0,440)")
    esl.wait(uuid, "PLAYBACK_START", t0)
    esl.api(f"uuid_break {uuid}")  # the 10 ms tone ends before the break's 20 ms step
    esl.wait(uuid, "PLAYBACK_STOP", t0)
    t1, _ = esl.api(f"uuid_broadcast {uuid} tone_stream://%(300,0,440)")
    _, stop = esl.wait(uuid, "PLAYBACK_STOP", t1)
    assert stop["Playback-Status"] == "done"


# -- replay of e_timing (runs where the capture is present) ------------------------------

E_TIMING = capture_path("e_timing", ".jsonl")  # vendored xz-compressed (tests/esl-captures)
NOT_SIMULATED = {"CHANNEL_CALLSTATE", "CALL_UPDATE", "PRIVATE_COMMAND"}  # see docs: not reproduced yet


def _legs_after_bridge(events: list[dict], a_legs: list[str]) -> dict[str, list[tuple[str, str]]]:
    """Per role ('<pair>-A', '<pair>-B'), the leg's events from uuid_bridge on (CHANNEL_UNPARK) to its end."""
    roles = {uid: f"{i // 2}-{'AB'[i % 2]}" for i, uid in enumerate(a_legs)}
    out: dict[str, list[tuple[str, str]]] = {}
    started: set[str] = set()
    for ev in events:
        role = roles.get(ev.get("Unique-ID"))
        name = ev.get("Event-Name")
        if role is None or name in NOT_SIMULATED:
            continue
        if name == "CHANNEL_UNPARK" or (name == "CHANNEL_EXECUTE" and ev.get("Application") == "playback"
                                          and role.endswith(("A", "B")) and role not in started
                                          and ev.get("Other-Leg-Unique-ID")):
            started.add(role)
        if role in started:
            detail = ev.get("Channel-State") if name == "CHANNEL_STATE" else ev.get("Application", "")
            if (name, detail) == ("CHANNEL_STATE", "CS_CONSUME_MEDIA"):
                continue  # B reports it in 6 of the 10 captured pairs (a race in the switch); the sim always does
            out.setdefault(role, []).append((name, detail or ""))
    return out


@pytest.mark.slow
@pytest.mark.skipif(E_TIMING is None, reason="e_timing capture not in tests/esl-captures nor ESL_CAPTURES_DIRS")
def test_replay_e_timing_pairs_per_leg_event_order_matches_freeswitch(tmp_path, monkeypatch):
    """The ten uuid_bridge pairs of e_timing (kills of A and of B, broadcasts before and after
    CHANNEL_BRIDGE) replayed: each leg's events from the bridge on, in the capture's order."""
    import json
    import re

    import test_sim_replay
    from test_sim_replay import replay

    scale = 0.5  # the 20 ms window in which a broadcast is lost stays wider than the client's round trip
    monkeypatch.setattr(test_sim_replay, "SCALE", scale)  # the script's waits, scaled like the switch

    script = json.loads(capture_path("e_timing", ".script.json").read_text())
    script = script[: next(i for i, s in enumerate(script) if "{uuid21}" in s.get("send", ""))]
    with open_capture(E_TIMING) as fh:
        captured = [json.loads(line) for line in fh]
    cap_events = [d["event"] for d in captured if isinstance(d.get("event"), dict)]
    cap_a = [m for d in captured if d.get("sent") for m in re.findall(r"origination_uuid=([0-9a-f-]{36})", d["sent"])]
    (tmp_path / "esl-test").mkdir()
    with wave.open(str(tmp_path / "esl-test" / "tone-1s.wav"), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(8000)
        w.writeframes(b"\0\0" * 8000)
    sim = SimSwitch(SimConfig(time_scale=scale, sounds_dir=str(tmp_path)), port=0).start()
    try:
        events, a_legs, _ = replay(sim, script)
    finally:
        sim.stop(timeout=2)
    theirs, ours = _legs_after_bridge(cap_events, cap_a[:20]), _legs_after_bridge(events, a_legs)
    assert sorted(ours) == sorted(theirs) and len(theirs) == 20
    for role in sorted(theirs):
        assert ours[role] == theirs[role], "\n".join(map(str, [role, *ours[role], "--", *theirs[role]]))

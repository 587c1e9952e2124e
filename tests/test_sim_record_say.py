"""X2: the simulated switch's mod_dptools ``record`` and ``say`` (and that
``uuid_record`` / ``eavesdrop`` exist), driven through the dialplan with the
events read over a real event socket.

Semantics follow mod_dptools.c (record_function, say_function, on_dtmf) and
switch_ivr_play_say.c (switch_ivr_record_file): RECORD_START / RECORD_STOP
with Record-File-Path inside CHANNEL_EXECUTE / _COMPLETE, record_ms /
record_seconds / record_samples, playback_terminators (default ``*``),
silence_hits (default 3 s) and the time limit.
"""
from __future__ import annotations

import wave

import gevent
import pytest

from esl_dialer.esl import parse_event
from esl_dialer.sim import SimConfig, SimSwitch
from esl_dialer.sim.chan_record_say import SayError, en_number_files, say_files, say_path
from esl_dialer.sim.testing import RawEslClient, wait_until

SCALE = 0.02  # 1 simulated second = 20 ms
EVENTS = ("CHANNEL_HANGUP CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE RECORD_START RECORD_STOP PLAYBACK_START PLAYBACK_STOP "
          "DTMF CHANNEL_HANGUP_COMPLETE")


class Watch:
    """An ESL client subscribed to the events these tests look at."""

    def __init__(self, sim: SimSwitch) -> None:
        self.client = RawEslClient("127.0.0.1", sim.port)
        assert self.client.auth().reply_text == "+OK accepted"
        assert self.client.reply(f"event plain {EVENTS}").reply_text.startswith("+OK")
        self.events = []
        self.reader = gevent.spawn(self._read)

    def _read(self) -> None:
        while True:
            try:
                frame = self.client.read_frame(timeout=60)
            except (TimeoutError, OSError):
                return
            if frame is None:
                return
            if frame.is_event:
                self.events.append(parse_event(frame))

    def of(self, uuid: str, *names: str) -> list:
        return [e for e in self.events if e.unique_id == uuid and (not names or e.name in names)]

    def ended(self, uuid: str, timeout: float = 10.0) -> bool:
        return wait_until(lambda: bool(self.of(uuid, "CHANNEL_HANGUP_COMPLETE")), timeout)

    def close(self) -> None:
        self.reader.kill(block=True, timeout=2)
        self.client.close()


@pytest.fixture
def sim():
    s = SimSwitch(SimConfig(time_scale=SCALE, say_item_s=0.5, record_speech_s=5.0), port=0).start()
    yield s
    s.stop(timeout=2)


@pytest.fixture
def watch(sim):
    w = Watch(sim)
    yield w
    w.close()


def call(sim, steps, dtmf="", patience_s=3600.0, variables=None):
    sim.dialplan = {**sim.dialplan, "5000": [("answer", ""), *steps, ("hangup", "")]}
    return sim.inbound_call("5000", "15551230001", dtmf=dtmf, patience_s=patience_s, talk_s=3600.0,
                            variables=variables)


def wav_seconds(path) -> float:
    with wave.open(str(path), "rb") as w:
        assert (w.getnchannels(), w.getsampwidth(), w.getframerate()) == (1, 2, 8000)
        return w.getnframes() / 8000.0


def execution(watch, uuid, app):
    """(CHANNEL_EXECUTE, CHANNEL_EXECUTE_COMPLETE) of ``app`` on the leg."""
    started = [e for e in watch.of(uuid, "CHANNEL_EXECUTE") if e["Application"] == app]
    done = [e for e in watch.of(uuid, "CHANNEL_EXECUTE_COMPLETE") if e["Application"] == app]
    assert len(started) == len(done) == 1, (started, done)
    return started[0], done[0]


# -- record ----------------------------------------------------------------------------
def test_x2_record_time_limit_writes_a_wav_and_the_freeswitch_events(sim, watch, tmp_path):
    path = tmp_path / "vm" / "new" / "msg.wav"  # parent directories do not exist yet
    uuid = call(sim, [("record", f"{path} 4")])
    assert watch.ended(uuid)
    assert wav_seconds(path) == pytest.approx(4.0)
    start, done = execution(watch, uuid, "record")
    assert start["Application-Data"] == f"{path} 4"
    assert done["Application-Response"] == "_none_"
    legs = [(e.name, e.get("Application") or e.get("Record-File-Path")) for e in watch.of(uuid)
            if e.name != "CHANNEL_HANGUP_COMPLETE"]
    i = legs.index(("CHANNEL_EXECUTE", "record"))
    assert legs[i:i + 4] == [("CHANNEL_EXECUTE", "record"), ("RECORD_START", str(path)),
                             ("RECORD_STOP", str(path)), ("CHANNEL_EXECUTE_COMPLETE", "record")]
    stop = watch.of(uuid, "RECORD_STOP")[0]
    assert (stop["variable_record_ms"], stop["variable_record_seconds"], stop["variable_record_samples"]) == \
        ("4000", "4", "32000")
    assert stop["variable_silence_hits_exhausted"] == "false"
    ch = sim.history_of(uuid)
    assert ch.recordings == [str(path)]
    assert any(kind == "record" and "limit" in detail for _, kind, detail in ch.log)
    assert ch.hangup_cause == "NORMAL_CLEARING"  # the dialplan went on to its hangup step


def test_x2_record_plus_limit_and_silence_threshold_end_after_the_speech(sim, watch, tmp_path):
    path = tmp_path / "s.wav"
    # thresh 200, silence_hits 2: the party speaks 1 s, then 2 s of silence end the recording
    uuid = call(sim, [("record", f"{path} +30 200 2")], variables={"sim_record_speech_s": "1"})
    assert watch.ended(uuid)
    stop = watch.of(uuid, "RECORD_STOP")[0]
    assert stop["variable_silence_hits_exhausted"] == "true"
    assert stop["variable_record_ms"] == "3000"
    assert wav_seconds(path) == pytest.approx(3.0)


def test_x2_record_silence_hits_default_to_3_seconds(sim, watch, tmp_path):
    uuid = call(sim, [("record", f"{tmp_path / 'd.wav'} 60 200")], variables={"sim_record_speech_s": "0.5"})
    assert watch.ended(uuid)
    assert watch.of(uuid, "RECORD_STOP")[0]["variable_record_ms"] == "3500"


def test_x2_record_ends_on_a_terminator_digit_and_drops_the_others(sim, watch, tmp_path):
    path = tmp_path / "t.wav"
    uuid = call(sim, [("set", "playback_terminators=#"), ("record", f"{path} 60")], dtmf="5#",
                variables={"sim_record_speech_s": "2"})
    assert watch.ended(uuid)
    digits = [e["DTMF-Digit"] for e in watch.of(uuid, "DTMF")]
    assert digits == ["5", "#"]  # pressed after speaking; 5 is read and dropped, # ends it
    stop = watch.of(uuid, "RECORD_STOP")[0]
    assert stop["variable_playback_terminator_used"] == "#"
    assert 2000 <= int(stop["variable_record_ms"]) < 30000  # after the speech, well before the limit
    assert wav_seconds(path) == pytest.approx(int(stop["variable_record_samples"]) / 8000.0)


def test_x2_record_default_terminator_is_star_and_none_disables_it(sim, watch, tmp_path):
    first = call(sim, [("record", f"{tmp_path / 'a.wav'} 60")], dtmf="*", variables={"sim_record_speech_s": "1"})
    assert watch.ended(first)
    stop = watch.of(first, "RECORD_STOP")[0]
    assert stop["variable_playback_terminator_used"] == "*"
    assert int(stop["variable_record_ms"]) < 30000
    second = call(sim, [("set", "playback_terminators=none"), ("record", f"{tmp_path / 'b.wav'} 4")], dtmf="*",
                  variables={"sim_record_speech_s": "1"})
    assert watch.ended(second)
    stop = watch.of(second, "RECORD_STOP")[0]
    assert stop["variable_record_ms"] == "4000"
    assert "variable_playback_terminator_used" not in stop.headers


def test_x2_record_ends_when_the_caller_hangs_up(sim, watch, tmp_path):
    path = tmp_path / "h.wav"
    uuid = call(sim, [("record", f"{path}")], patience_s=2.0)  # no limit, no silence detection
    assert watch.ended(uuid)
    assert sim.history_of(uuid).hangup_cause == "NORMAL_CLEARING"
    stop = watch.of(uuid, "RECORD_STOP")[0]
    assert 1500 <= int(stop["variable_record_ms"]) < 30000
    assert wav_seconds(path) == pytest.approx(int(stop["variable_record_samples"]) / 8000.0)
    assert execution(watch, uuid, "record")[1]["Application-Response"] == "_none_"


def test_x2_record_stopped_by_uuid_break_and_by_uuid_send_dtmf(sim, watch, tmp_path):
    uuid = call(sim, [("record", f"{tmp_path / 'x.wav'}"), ("record", f"{tmp_path / 'y.wav'}")])
    assert wait_until(lambda: len(watch.of(uuid, "RECORD_START")) == 1)
    assert sim.api.run("uuid_break", uuid).startswith("+OK")
    assert wait_until(lambda: len(watch.of(uuid, "RECORD_START")) == 2)  # the dialplan went on
    assert sim.api.run("uuid_send_dtmf", f"{uuid} *").startswith("+OK")
    assert watch.ended(uuid)
    stops = watch.of(uuid, "RECORD_STOP")
    assert [s["Record-File-Path"] for s in stops] == [str(tmp_path / "x.wav"), str(tmp_path / "y.wav")]
    assert stops[1]["variable_playback_terminator_used"] == "*"


def test_x2_record_relative_path_uses_sound_prefix_and_no_extension_is_raw_pcmu(sim, watch, tmp_path):
    uuid = call(sim, [("set", f"sound_prefix={tmp_path}"), ("record", "rec/raw 2")])
    assert watch.ended(uuid)
    path = tmp_path / "rec" / "raw.PCMU"
    assert watch.of(uuid, "RECORD_START")[0]["Record-File-Path"] == str(path)
    assert path.read_bytes() == b"\xff" * 16000  # 2 s of u-law silence


def test_x2_record_to_an_unwritable_path_hangs_up_destination_out_of_order(sim, watch, tmp_path):
    (tmp_path / "file").write_text("not a directory")
    uuid = call(sim, [("record", f"{tmp_path / 'file' / 'x.wav'} 5")])
    assert watch.ended(uuid)
    assert sim.history_of(uuid).hangup_cause == "DESTINATION_OUT_OF_ORDER"
    assert watch.of(uuid, "RECORD_START") == []


def test_x2_record_without_a_path_only_logs(sim, watch):
    uuid = call(sim, [("record", ""), ("playback", "silence_stream://500")])
    assert watch.ended(uuid)
    assert watch.of(uuid, "RECORD_START") == []
    assert watch.of(uuid, "PLAYBACK_START")  # the call went on
    assert sim.history_of(uuid).hangup_cause == "NORMAL_CLEARING"


# -- say -------------------------------------------------------------------------------
@pytest.mark.parametrize("text,files", [
    ("0", ["digits/0"]),
    ("7", ["digits/7"]),
    ("13", ["digits/13"]),
    ("40", ["digits/40"]),
    ("115", ["digits/1", "digits/hundred", "digits/15"]),
    ("1,000", ["digits/1", "digits/thousand"]),
    ("1200013", ["digits/1", "digits/million", "digits/2", "digits/hundred", "digits/thousand", "digits/13"]),
])
def test_x2_say_en_number_pronounced_uses_mod_say_en_files(text, files):
    assert en_number_files(text, "PRONOUNCED") == files


def test_x2_say_files_iterated_spelled_and_errors():
    assert say_files("en", "number", "iterated", "305") == ["digits/3", "digits/0", "digits/5"]
    assert say_files("en:en", "NAME_SPELLED", "PRONOUNCED", "Ab1") == ["ascii/97", "ascii/98", "digits/1"]
    assert say_path(["digits/3", "digits/hundred"]) == "file_string://digits/3.wav!digits/hundred.wav"
    for args in (("en", "NUMBER", "PRONOUNCED", "abc"), ("en", "NUMBER", "PRONOUNCED", "1234567890"),
                 ("xx", "NUMBER", "PRONOUNCED", "3"), ("en", "COLOUR", "PRONOUNCED", "3"),
                 ("en", "NUMBER", "LOUDLY", "3")):
        with pytest.raises(SayError):
            say_files(*args)


def test_x2_say_plays_one_file_string_for_a_per_item_length(sim, watch):
    uuid = call(sim, [("say", "en NUMBER pronounced 123"), ("say", "en:en number PRONOUNCED FEMININE 3")])
    assert watch.ended(uuid)
    starts = watch.of(uuid, "PLAYBACK_START")
    assert [e["Playback-File-Path"] for e in starts] == [
        "file_string://digits/1.wav!digits/hundred.wav!digits/20.wav!digits/3.wav", "file_string://digits/3.wav"]
    stops = watch.of(uuid, "PLAYBACK_STOP")
    assert [e["Playback-Status"] for e in stops] == ["done", "done"]
    assert stops[0]["variable_playback_ms"] == "2000"  # 4 files x say_item_s 0.5
    start, done = [e for e in watch.of(uuid, "CHANNEL_EXECUTE") if e["Application"] == "say"][0], \
        [e for e in watch.of(uuid, "CHANNEL_EXECUTE_COMPLETE") if e["Application"] == "say"][0]
    assert start["Application-Data"] == "en NUMBER pronounced 123"
    assert done["Application-Response"] == "_none_"
    pbs = sim.history_of(uuid).playbacks
    assert [pb.seconds for pb in pbs] == [2.0, 0.5]


def test_x2_say_with_bad_arguments_plays_nothing_and_the_call_goes_on(sim, watch):
    uuid = call(sim, [("say", "en NUMBER 3"), ("say", "xx NUMBER pronounced 3"), ("say", "en NUMBER pronounced x"),
                      ("playback", "silence_stream://200")])
    assert watch.ended(uuid)
    assert len([e for e in watch.of(uuid, "CHANNEL_EXECUTE_COMPLETE") if e["Application"] == "say"]) == 3
    assert [e["Playback-File-Path"] for e in watch.of(uuid, "PLAYBACK_START")] == ["silence_stream://200"]
    assert sim.history_of(uuid).hangup_cause == "NORMAL_CLEARING"


def test_x2_uuid_record_api_and_eavesdrop_app_exist(sim, watch, tmp_path):
    assert "eavesdrop" in sim.apps.table and "record" in sim.apps.table and "say" in sim.apps.table
    uuid = call(sim, [("park", "")])
    assert wait_until(lambda: uuid in sim.channels and sim.channels[uuid].answered)
    assert sim.api.run("uuid_record", f"{uuid} start {tmp_path / 'r.wav'}") == "+OK Success\n"
    assert sim.api.run("uuid_record", f"{uuid} stop {tmp_path / 'r.wav'}") == "+OK Success\n"
    assert wait_until(lambda: [e.name for e in watch.of(uuid, "RECORD_START", "RECORD_STOP")]
                      == ["RECORD_START", "RECORD_STOP"])
    sim.api.run("uuid_kill", uuid)
    assert watch.ended(uuid)


def test_x2_sim_config_record_and_say_keys():
    cfg = SimConfig.from_dict({"sim": {"record_speech_s": 2, "say_item_s": 0.25}})
    assert (cfg.record_speech_s, cfg.say_item_s) == (2.0, 0.25)
    from esl_dialer.sim.config import SimConfigError

    with pytest.raises(SimConfigError):
        SimConfig.from_dict({"sim": {"say_item_s": -1}})

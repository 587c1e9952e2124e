"""R9 end to end on the simulated switch: the remote center cannot be reached,
the IVR retries once and falls back to voicemail -- the prompt, then
mod_dptools ``record <path> <max_s> 200 3`` -- over a real outbound socket.

The simulated caller speaks ``record_speech_s`` (simulated) seconds, then is
silent: silence_hits (3 s) end the recording, or a ``*`` it presses (the
default playback_terminators), or its hang-up.
"""
from __future__ import annotations

import socket
import time
import wave

import gevent
import pytest

from esl_dialer.ivr.app import IvrCall, IvrSettings
from esl_dialer.ivr.menu import Menu
from esl_dialer.ivr.remote_client import RemoteCenter
from esl_dialer.ivr.server import IvrServer
from esl_dialer.sim import SimConfig, SimSwitch

pytestmark = pytest.mark.slow

MENU = {
    "name": "vm", "start": "welcome", "defaults": {"tries": 1, "timeout_ms": 2000},
    "nodes": {
        "welcome": {"type": "menu", "prompt": "ivr/welcome.wav", "branches": {"1": "support"}, "on_fail": "bye"},
        "support": {"type": "remote", "center": "remote", "skill": "support", "next": "bye"},
        "bye": {"type": "hangup"},
    },
}
PROMPT = "voicemail/vm-record_message.wav"


def closed_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def wait_until(predicate, timeout=10.0, step=0.02):
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if predicate():
            return True
        gevent.sleep(step)
    return False


class VoicemailSetup:
    def __init__(self, tmp_path) -> None:
        self.vm_dir = tmp_path / "vm"  # does not exist: the switch creates it
        self.reports = []
        center = RemoteCenter("remote", f"http://127.0.0.1:{closed_port()}", "key", timeout_s=1.0, retries=0)
        self.settings = IvrSettings(menu_provider=lambda: Menu.from_dict(MENU), centers={"remote": center},
                                    linger_s=1, retry_delay_s=0.05, fallback="voicemail",
                                    voicemail_dir=str(self.vm_dir), voicemail_prompt=PROMPT, voicemail_max_s=120,
                                    on_call_end=self.reports.append)
        self.ivr = IvrServer(lambda s: IvrCall(s, self.settings), port=0)
        self.ivr.start()
        self.sim = SimSwitch(SimConfig(time_scale=0.05, playback_default_s=1.0, record_speech_s=4.0),
                             host="127.0.0.1", port=0).start()
        self.sim.dialplan = {"7000": ("socket", f"127.0.0.1:{self.ivr.port} async full")}

    def close(self) -> None:
        self.ivr.stop(timeout=2)
        self.sim.stop(timeout=2)

    def recording(self, uuid: str) -> tuple[float, str]:
        """(seconds recorded, why it ended) from the sim's call log."""
        ch = self.sim.history_of(uuid)
        entries = [detail for _, kind, detail in ch.log if kind == "record"]
        assert len(entries) == 1, ch.log
        path, ms, reason = entries[0].rsplit(" ", 2)
        assert path == str(self.vm_dir / f"{uuid}.wav")
        return int(ms[:-2]) / 1000.0, reason


@pytest.fixture
def vm(tmp_path):
    setup = VoicemailSetup(tmp_path)
    yield setup
    setup.close()


def wav_seconds(path) -> float:
    with wave.open(str(path), "rb") as w:
        return w.getnframes() / float(w.getframerate())


def test_r9_remote_unreachable_voicemail_records_until_the_caller_is_silent(vm):
    uuid = vm.sim.inbound_call("7000", "+14155550123", dtmf="1", patience_s=3600)
    assert wait_until(lambda: vm.reports, timeout=20)
    report = vm.reports[0]
    assert report.outcome == "voicemail" and report.attempts == 2
    assert report.path[:2] == ["welcome", "support"]
    seconds, reason = vm.recording(uuid)
    assert reason == "silence" and seconds == pytest.approx(7.0)  # 4 s of speech + 3 s of silence
    assert wav_seconds(vm.vm_dir / f"{uuid}.wav") == pytest.approx(7.0)
    ch = vm.sim.history_of(uuid)
    assert [pb.file for pb in ch.playbacks] == ["ivr/welcome.wav", PROMPT]
    assert ch.variables["silence_hits_exhausted"] == "true" and ch.variables["record_ms"] == "7000"
    executed = [detail.split(" ", 1) for _, kind, detail in ch.log if kind == "execute"]
    assert ["record", f"{vm.vm_dir / uuid}.wav 120 200 3"] in executed
    assert wait_until(lambda: not ch.alive)
    assert ch.hangup_cause == "NORMAL_CLEARING"  # the menu's next node hung up


def test_r9_voicemail_caller_ends_the_message_with_star(vm):
    uuid = vm.sim.inbound_call("7000", "+14155550124", dtmf="1*", patience_s=3600,
                               variables={"sim_record_speech_s": "2"})
    assert wait_until(lambda: vm.reports, timeout=20)
    assert vm.reports[0].outcome == "voicemail"
    seconds, reason = vm.recording(uuid)
    assert reason == "terminator" and 2.0 <= seconds < 5.0  # before the 3 s of silence would end it
    ch = vm.sim.history_of(uuid)
    assert ch.variables["playback_terminator_used"] == "*"
    assert ch.dtmf_sent == ["1", "*"]
    assert wav_seconds(vm.vm_dir / f"{uuid}.wav") == pytest.approx(int(ch.variables["record_samples"]) / 8000)


def test_r9_voicemail_caller_hangs_up_while_recording(vm):
    uuid = vm.sim.inbound_call("7000", "+14155550125", dtmf="1", patience_s=5.0,
                               variables={"sim_record_speech_s": "60"})
    assert wait_until(lambda: vm.reports, timeout=20)
    # Hanging up is how a caller ends a message: the file is kept and the outcome is voicemail,
    # although CHANNEL_HANGUP arrives before the record's EXECUTE_COMPLETE (as from FreeSWITCH).
    assert vm.reports[0].outcome == "voicemail"
    seconds, reason = vm.recording(uuid)
    assert reason == "hangup" and 0.5 < seconds < 5.0
    assert wav_seconds(vm.vm_dir / f"{uuid}.wav") == pytest.approx(seconds, abs=0.01)

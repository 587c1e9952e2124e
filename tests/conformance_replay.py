"""Replaying a capture's command script against a fresh simulator, recording frames as the capture did."""
from __future__ import annotations

import json
import re
import struct
import tempfile
import time
import uuid as uuid_mod
import wave
from dataclasses import dataclass, field
from pathlib import Path

import gevent
import gevent.event
import gevent.queue
import gevent.server

from esl_dialer.esl import encode_command, parse_event_plain
from esl_dialer.sim import SimConfig, SimSwitch
from esl_dialer.sim.config import DEFAULT_DIALPLAN
from esl_dialer.sim.testing import RawEslClient

from conformance_capture import REPLY_TYPES, parse_event_xml


def write_test_wav(path: Path, seconds: float = 1.0, rate: int = 8000) -> None:
    """The capture's ``esl-test/tone-1s.wav``: 1.0 s at 8 kHz (silence is enough to have a length)."""
    path.parent.mkdir(parents=True, exist_ok=True)
    with wave.open(str(path), "wb") as w:
        w.setnchannels(1)
        w.setsampwidth(2)
        w.setframerate(rate)
        w.writeframes(struct.pack("<h", 0) * int(seconds * rate))


@dataclass
class _Conn:
    name: str
    client: RawEslClient
    call: int | None = None
    pending: list[str] = field(default_factory=list)
    replies: int = 0
    uuid: str | None = None
    reader: gevent.Greenlet | None = None
    done: "gevent.event.Event | None" = None
    closing: bool = False


class Replayer:
    """Runs one script against a simulator and records every received frame."""

    def __init__(self, sim: SimSwitch, outbound: "gevent.server.StreamServer | None" = None,
                 accepted: "gevent.queue.Queue | None" = None, reply_timeout: float = 15.0) -> None:
        self.sim = sim
        self.accepted = accepted
        self.reply_timeout = reply_timeout
        self.frames: list[dict] = []
        self.t0 = time.monotonic()
        self.fresh: dict[str, str] = {}
        self.conns: list[_Conn] = []
        self.calls = 0

    # recording
    def _reader(self, conn: _Conn) -> None:
        while True:
            try:
                frame = conn.client.read_frame(timeout=3600)
            except (TimeoutError, OSError):
                return
            t = round(time.monotonic() - self.t0, 4)
            if frame is None:
                if conn.closing:
                    return
                self.frames.append({"t": t, "conn": conn.name, "call": conn.call, "closed": ""})
                return
            d: dict = {"t": t, "conn": conn.name, "call": conn.call,
                       "headers": dict(frame.raw_headers), "body": frame.text}
            ct = frame.content_type
            if ct in REPLY_TYPES and conn.pending:
                d["sent"], waited = conn.pending.pop(0)
                if waited is not None:
                    d["waited"] = waited  # the script waited before sending it (the capture shows it by time)
                conn.replies += 1
                if d["sent"] == "connect":
                    conn.uuid = frame.headers.get("Unique-ID")
            if ct == "text/event-plain":
                ev = parse_event_plain(frame.body)
                d["event"] = dict(ev.headers)
            elif ct == "text/event-json":
                d["event"] = json.loads(frame.body)
            elif ct == "text/event-xml":
                d["event"] = parse_event_xml(frame.text)
            self.frames.append(d)
            if d.get("sent") == "exit":
                return  # the capture tool stopped recording after the reply to exit

    def _open(self, name: str, client: RawEslClient, call: int | None = None) -> _Conn:
        conn = _Conn(name, client, call)
        conn.reader = gevent.spawn(self._reader, conn)
        self.conns.append(conn)
        return conn

    def _send(self, conn: _Conn, line: str, wait: bool = True, waited: bool | None = None) -> None:
        before = conn.replies
        conn.pending.append((line, waited))
        conn.client.send(encode_command(line) if "\n" not in line else line + "\n\n")
        deadline = time.monotonic() + self.reply_timeout
        while wait and conn.replies == before and time.monotonic() < deadline and not conn.reader.dead:
            gevent.sleep(0.001)

    def _subst(self, text: str, call_conn: _Conn | None) -> str:
        text = re.sub(r"\{(uuid\d+)\}", lambda m: self.fresh.setdefault(m.group(1), str(uuid_mod.uuid4())), text)
        if call_conn is not None and call_conn.uuid:
            text = text.replace("{call}", call_conn.uuid)
        return text

    def run(self, script: list[dict], inbound_auth: bool = True) -> list[dict]:
        client = RawEslClient("127.0.0.1", self.sim.port, timeout=10)
        if inbound_auth:
            inbound = self._open("in", client)
            inbound.pending.append(("auth ***", None))
            client.send(b"auth ClueCon\n\n")
            deadline = time.monotonic() + 5
            while inbound.replies == 0 and time.monotonic() < deadline:
                gevent.sleep(0.001)
        out: _Conn | None = None
        mark = 0
        waited = False
        for step in script:
            if "send" in step or "in" in step:
                target = inbound if "in" in step or out is None else out
                mark = len(self.frames)
                self._send(target, self._subst(step.get("send", step.get("in")), out), waited=waited)
            elif "execute" in step:
                lines = ["sendmsg", "call-command: execute", f"execute-app-name: {step['execute']}"]
                if step.get("arg"):
                    lines.append(f"execute-app-arg: {step['arg']}")
                if step.get("lock"):
                    lines.append("event-lock: true")
                mark = len(self.frames)
                self._send(out, "\n".join(lines), waited=waited)
            elif "accept" in step:
                sock, done = self.accepted.get(timeout=step.get("timeout_s", 10))
                self.calls += 1
                out = self._open("out", RawEslClient("127.0.0.1", 0, sock=sock, timeout=10), call=self.calls)
                out.done = done
            elif "close" in step:
                out.closing = True
                out.client.close()
                out.done.set()
                out.reader.join(timeout=2)
                out = None
            elif "wait_event" in step:
                deadline = time.monotonic() + step.get("timeout_s", 5)
                while time.monotonic() < deadline and not any(
                        (f.get("event") or {}).get("Event-Name") == step["wait_event"] for f in self.frames[mark:]):
                    gevent.sleep(0.001)
            elif "wait_s" in step:
                gevent.sleep(step["wait_s"])
            waited = "wait_event" in step or "wait_s" in step
        gevent.sleep(0.3)
        for conn in self.conns:
            conn.closing = True
            conn.client.close()
            if conn.done is not None:
                conn.done.set()
            if conn.reader is not None:
                conn.reader.kill(block=True, timeout=2)
        return sorted(self.frames, key=lambda d: d["t"])


def _stale_callcenter_members(sim: SimSwitch) -> None:
    """c_callcenter: the real switch's database still held two members abandoned by an earlier run
    (5 s before, within discard-abandoned-after); the first ``queue list members`` shows them."""
    from esl_dialer.sim.model_callcenter import M_ABANDONED, Member

    cc = sim.callcenter
    now = cc.now()
    for i, uuid in enumerate(("d8d1890d-c13e-40aa-9785-0ad32eaf1b6d", "b703aa29-12be-4633-98e8-d58e2dee0346")):
        joined = now - 41 + i
        cc.members[uuid] = Member(queue="support@default", uuid=uuid, session_uuid="", cid_number="9993",
                                  cid_name="Outbound Call", system_epoch=joined, joined_epoch=joined,
                                  abandoned_epoch=now - 5, state=M_ABANDONED)


# What the real switch held before a capture's script ran, recreated before the replay.
PRELUDES = {"c_callcenter": _stale_callcenter_members}


def run_on_simulator(script: list[dict], *, prelude=None, **config: object) -> list[dict]:
    """Start a simulator (and an outbound-socket app if the script accepts calls), replay, stop all."""
    accepted = gevent.queue.Queue()
    server = gevent.server.StreamServer(("127.0.0.1", 0), lambda sock, addr: _hold(accepted, sock))
    server.start()
    plan = dict(DEFAULT_DIALPLAN)
    plan["7000"] = (("socket", f"127.0.0.1:{server.server_port} async full"),)
    with tempfile.TemporaryDirectory() as sounds:
        write_test_wav(Path(sounds) / "esl-test" / "tone-1s.wav")
        cfg = SimConfig(**{"time_scale": 1.0, "hostname": "vm", "sounds_dir": sounds, "dialplan": plan, **config})
        sim = SimSwitch(cfg, port=0).start()
        try:
            if prelude is not None:
                prelude(sim)
            return Replayer(sim, accepted=accepted).run(script)
        finally:
            sim.stop(timeout=2)
            server.stop(timeout=1)


def _hold(queue, sock) -> None:
    """Hand the accepted socket to the script and keep it open until the script is done with it."""
    done = gevent.event.Event()
    queue.put((sock, done))
    done.wait(120)

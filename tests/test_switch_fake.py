"""A capture-replay ESL server for the switch adapter tests (plus its own sanity tests).

It answers over real TCP (gevent StreamServer on an ephemeral port) with
frames taken from tests/esl-captures/a_inbound.jsonl, i.e. the bytes a
real FreeSWITCH 1.10.12 sent, with only UUIDs substituted. It is not a
simulator: each scenario is scripted by the test.
"""
from __future__ import annotations

import json
import re
from pathlib import Path

import gevent
import gevent.server
import gevent.socket
import pytest

CAPTURES = Path(__file__).resolve().parent / "esl-captures"
A_INBOUND = CAPTURES / "a_inbound.jsonl"

_UUID_RE = re.compile(r"origination_uuid=([0-9A-Za-z\-]+)")


def load_frames(path: Path = A_INBOUND) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


def event_templates(path: Path = A_INBOUND) -> dict[str, dict]:
    """First captured event-plain frame of each Event-Name."""
    out: dict[str, dict] = {}
    for frame in load_frames(path):
        if frame["headers"].get("Content-Type") == "text/event-plain":
            out.setdefault(frame["event"]["Event-Name"], frame)
    return out


def event_frame(name: str, uuid: str | None = None, extra: dict[str, str] | None = None,
                body: str | None = None) -> bytes:
    """A real captured event of kind ``name`` with its Unique-ID replaced by ``uuid``."""
    from urllib.parse import quote

    frame = _TEMPLATES[name]
    text = frame["body"]
    old = frame["event"].get("Unique-ID")
    if old and uuid:
        text = text.replace(old, uuid)
    head, sep, rest = text.partition("\n\n")
    for key, value in (extra or {}).items():
        line = f"{key}: {quote(value, safe='')}"
        if re.search(rf"^{re.escape(key)}: ", head, flags=re.M):
            head = re.sub(rf"^{re.escape(key)}: .*$", lambda _m: line, head, flags=re.M)
        else:
            head += "\n" + line
    if body is not None:
        head = re.sub(r"\nContent-Length: \d+$", "", head)
        text = f"{head}\nContent-Length: {len(body.encode())}\n\n{body}"
    else:
        text = head + sep + rest
    data = text.encode()
    return b"Content-Length: %d\nContent-Type: text/event-plain\n\n" % len(data) + data


_TEMPLATES = event_templates()


def api_response(text: str) -> bytes:
    data = text.encode()
    return b"Content-Type: api/response\nContent-Length: %d\n\n" % len(data) + data


def command_reply(text: str, extra: str = "") -> bytes:
    return f"Content-Type: command/reply\nReply-Text: {text}\n{extra}\n".encode()


class FakeSwitch:
    """Scripted ESL server. ``api_replies[cmd_prefix] = text``; ``outcomes[number] = 'answer'|'-ERR CAUSE'``."""

    def __init__(self, password: str = "ClueCon") -> None:
        self.password = password
        self.server = gevent.server.StreamServer(("127.0.0.1", 0), self._handle)
        self.clients: list[gevent.socket.socket] = []
        self.received: list[str] = []
        self.api_replies: dict[str, str] = {"status": self._status_text()}
        self.outcomes: dict[str, str] = {}
        self.stall = False
        self.connections = 0
        self.subscriptions: list[str] = []

    @staticmethod
    def _status_text() -> str:
        for frame in load_frames():
            if frame.get("sent") == "api status":
                return frame["body"]
        return "UP\n"

    @property
    def port(self) -> int:
        return self.server.server_port

    def start(self) -> "FakeSwitch":
        self.server.start()
        return self

    def stop(self) -> None:
        self.drop_all()
        self.server.stop(timeout=1)

    def drop_all(self) -> None:
        for sock in list(self.clients):
            try:
                sock.shutdown(2)
            except OSError:
                pass
            sock.close()
        self.clients.clear()

    def emit(self, data: bytes) -> None:
        for sock in list(self.clients):
            try:
                sock.sendall(data)
            except OSError:
                pass

    def _handle(self, sock: gevent.socket.socket, _addr) -> None:
        self.connections += 1
        self.clients.append(sock)
        sock.sendall(b"Content-Type: auth/request\n\n")
        buf = b""
        authed = False
        try:
            while True:
                data = sock.recv(65536)
                if not data:
                    return
                buf += data
                while b"\n\n" in buf:
                    raw, buf = buf.split(b"\n\n", 1)
                    cmd = raw.decode()
                    self.received.append(cmd)
                    if self.stall:
                        continue
                    if not authed:
                        if cmd == f"auth {self.password}":
                            authed = True
                            sock.sendall(command_reply("+OK accepted"))
                        else:
                            sock.sendall(command_reply("-ERR invalid"))
                            sock.close()
                            return
                        continue
                    self._command(sock, cmd)
        except OSError:
            return
        finally:
            if sock in self.clients:
                self.clients.remove(sock)

    def _command(self, sock, cmd: str) -> None:
        first, _, rest = cmd.partition("\n")
        if first.startswith("event "):
            self.subscriptions.append(first)
            sock.sendall(command_reply("+OK event listener enabled plain"))
        elif first.startswith("filter "):
            sock.sendall(command_reply("+OK filter added."))
        elif first == "exit":
            sock.sendall(command_reply("+OK bye"))
            sock.sendall(b"Content-Type: text/disconnect-notice\nContent-Length: 67\n\n"
                         b"Disconnected, goodbye.\nSee you at ClueCon! http://www.cluecon.com/\n")
            sock.close()
        elif first.startswith("api "):
            sock.sendall(api_response(self._api(first[4:])))
        elif first.startswith("bgapi "):
            job = rest.split("Job-UUID: ", 1)[1].strip() if "Job-UUID: " in rest else "00000000-aaaa"
            sock.sendall(command_reply(f"+OK Job-UUID: {job}", f"Job-UUID: {job}\n"))
            gevent.spawn(self._bgapi, sock, first[6:], job)
        else:
            sock.sendall(command_reply("-ERR command not found"))

    def _api(self, command: str) -> str:
        for prefix, text in self.api_replies.items():
            if command.startswith(prefix):
                return text
        return f"-ERR {command.split(' ', 1)[0]} Command not found!\n"

    def _bgapi(self, sock, command: str, job: str) -> None:
        if command.startswith("originate "):
            m = _UUID_RE.search(command)
            uuid = m.group(1) if m else "no-uuid"
            number = command.split("}")[-1].split(" ")[0].rsplit("/", 1)[-1]
            outcome = self.outcomes.get(number, "answer")
            if outcome == "answer":
                for name in ("CHANNEL_CREATE", "CHANNEL_ANSWER"):
                    sock.sendall(event_frame(name, uuid))
                result = f"+OK {uuid}\n"
            else:
                result = outcome + "\n"
        else:
            result = self._api(command)
        sock.sendall(event_frame("BACKGROUND_JOB", None, {"Job-UUID": job}, body=result))


@pytest.fixture
def fake():
    server = FakeSwitch().start()
    yield server
    server.stop()


def test_fake_event_frame_keeps_capture_shape():
    from esl_dialer.esl.events import Event, StreamParser

    data = event_frame("CHANNEL_ANSWER", "11111111-2222-3333-4444-555555555555")
    [(headers, body)] = StreamParser().feed(data)
    ev = Event.from_plain(body)
    assert ev.name == "CHANNEL_ANSWER" and ev.uuid == "11111111-2222-3333-4444-555555555555"
    assert ev["Answer-State"] == "answered"


def test_fake_background_job_body():
    from esl_dialer.esl.events import Event, StreamParser

    data = event_frame("BACKGROUND_JOB", None, {"Job-UUID": "j-1"}, body="-ERR USER_BUSY\n")
    [(_h, body)] = StreamParser().feed(data)
    ev = Event.from_plain(body)
    assert (ev.name, ev.job_uuid, ev.body) == ("BACKGROUND_JOB", "j-1", "-ERR USER_BUSY\n")

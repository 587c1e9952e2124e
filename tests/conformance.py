"""Conformance harness: replay a capture's command script against the simulator, compare by shape.

Each ``<name>.script.json`` beside a capture of the real FreeSWITCH 1.10.12 is
run against a fresh :class:`SimSwitch`; every frame the client receives is
recorded like the capture recorded it (``t``, ``conn``, ``call``, ``raw``,
``headers``, ``body``, ``sent``, ``event``).  Both recordings are then reduced
to their *shape* and compared:

- replies: per connection and command, the Content-Type, the first token of
  Reply-Text / the api body (digits and UUIDs normalised), whether the body
  starts or ends with a newline, and the reply's header names;
- per channel (legs matched by role, not by UUID): the order of its events,
  keyed by Event-Name plus what tells events apart (Application,
  Application-Response, Channel-State, Playback-Status, Event-Subclass);
- the header names (not ``variable_*``) of every event, in order;
- events without a channel (BACKGROUND_JOB, API, RELOADXML) in order, and the
  other frames (disconnect notices, ``log/data``);
- timing: the delays of the README's timing table (reply to event, event to
  event), each within the range the capture shows widened by a slack for a
  loaded machine.

Interleaving *between* channels is thread timing in FreeSWITCH and is not
compared.  ``compare`` returns readable difference lines; an empty list is
conformance.
"""
from __future__ import annotations

import bisect
import difflib
import functools
import json
import os
import re
import struct
import tempfile
import time
import uuid as uuid_mod
import wave
import xml.etree.ElementTree as ET
from collections import Counter
from dataclasses import dataclass, field
from pathlib import Path
from urllib.parse import unquote

import gevent
import gevent.event
import gevent.queue
import gevent.server

from esl_dialer.esl import encode_command, parse_event_plain
from esl_dialer.sim import SimConfig, SimSwitch
from esl_dialer.sim.config import DEFAULT_DIALPLAN
from esl_dialer.sim.testing import RawEslClient

HERE = Path(__file__).resolve().parent
# Vendored captures first, then the project's shared/ beside the checkout (e_timing, f_outbound_break).
CAPTURE_DIRS = [Path(p) for p in os.environ.get("ESL_CAPTURES_DIRS", "").split(os.pathsep) if p] + [
    HERE / "esl-captures", HERE.parent.parent / "shared" / "esl-captures", Path("/work/shared/esl-captures")]

REPLY_TYPES = ("command/reply", "api/response")
EVENT_TYPES = ("text/event-plain", "text/event-json", "text/event-xml")
IGNORED_APPS = {("set", "open=true")}  # a helper step of the captured dialplan only
TIMER_EVENTS = {"HEARTBEAT", "RE_SCHEDULE"}  # periodic, not caused by the script
WINDOW_S = 1.5  # how long after a command its effects are looked for
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# --------------------------------------------------------------------------- captures
def capture_path(name: str, suffix: str) -> Path | None:
    for d in CAPTURE_DIRS:
        p = d / f"{name}{suffix}"
        if p.exists():
            return p
    return None


def script_names() -> list[str]:
    names = set()
    for d in CAPTURE_DIRS:
        if d.is_dir():
            names.update(p.name[: -len(".script.json")] for p in d.glob("*.script.json"))
    return sorted(n for n in names if capture_path(n, ".jsonl"))


@functools.lru_cache(maxsize=None)
def load_capture(name: str) -> tuple[list[dict], list[dict]]:
    """(script, frames) of a capture; parsed once per test session (e_timing is 11 MB)."""
    script = json.loads(capture_path(name, ".script.json").read_text())
    frames = []
    with capture_path(name, ".jsonl").open() as fh:
        for line in fh:
            d = json.loads(line)
            if "headers" in d and d["headers"].get("Content-Type") == "text/event-xml":
                d["event"] = parse_event_xml(d["body"])
            frames.append(d)
    return script, frames


def parse_event_xml(body: str) -> dict:
    root = ET.fromstring(body)
    heads = root.find("headers")
    out = {el.tag: unquote(el.text or "") for el in (heads if heads is not None else [])}
    b = root.find("body")
    if b is not None:
        out["_body"] = b.text or ""
    return out


# --------------------------------------------------------------------------- running a script
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


def run_on_simulator(script: list[dict], **config: object) -> list[dict]:
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
            return Replayer(sim, accepted=accepted).run(script)
        finally:
            sim.stop(timeout=2)
            server.stop(timeout=1)


def _hold(queue, sock) -> None:
    """Hand the accepted socket to the script and keep it open until the script is done with it."""
    done = gevent.event.Event()
    queue.put((sock, done))
    done.wait(120)


# --------------------------------------------------------------------------- shapes
def norm_command(sent: str) -> str:
    if sent.startswith("sendmsg"):
        fields = dict(line.split(": ", 1) for line in sent.split("\n")[1:] if ": " in line)
        lock = " (event-lock)" if fields.get("event-lock") == "true" else ""
        return f"sendmsg {fields.get('call-command', '')} {fields.get('execute-app-name', '')}{lock}".strip()
    return UUID_RE.sub("<uuid>", sent)


def first_token(text: str) -> str:
    tok = re.split(r"[\s,]+", text.strip(), maxsplit=1)[0] if text.strip() else ""
    tok = UUID_RE.sub("<uuid>", tok)
    return re.sub(r"\d+", "N", tok)[:48]


def reply_shape(d: dict) -> tuple:
    h = d["headers"]
    ct = h.get("Content-Type")
    text = h.get("Reply-Text", "") if ct == "command/reply" else d.get("body", "")
    text = unquote(text)
    names = tuple(k for k in h if not k.startswith("variable_"))
    return (ct, first_token(text), text.startswith("\n"), text.endswith("\n") if ct == "api/response" else None,
            names)


def event_key(ev: dict) -> str:
    name = ev.get("Event-Name", "?")
    parts = [name]
    if name in ("CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE"):
        parts.append(ev.get("Application", ""))
        if name == "CHANNEL_EXECUTE_COMPLETE":
            parts.append(ev.get("Application-Response", ""))
    elif name == "CHANNEL_STATE":
        parts.append(ev.get("Channel-State", ""))
    elif name == "PLAYBACK_STOP":
        parts.append(ev.get("Playback-Status", ""))
    elif name == "CUSTOM":
        parts += [ev.get("Event-Subclass", ""), ev.get("CC-Action", "")]
    elif name == "API":
        parts.append(ev.get("API-Command", ""))
    return " ".join(p for p in parts if p)


def header_names(ev: dict) -> list[str]:
    return [k for k in ev if not k.startswith("variable_") and k != "_body"]


def roles(frames: list[dict]) -> dict[str, str]:
    """Role of each channel: ``N-a`` for the N-th origination_uuid, ``N-b`` for its loopback partner,
    ``<Channel-Name>#k`` for channels the script did not name (e.g. callcenter agent legs)."""
    out: dict[str, str] = {}
    for d in frames:
        for m in re.findall(r"origination_uuid=([0-9a-f-]{36})", d.get("sent", "")):
            out.setdefault(m, f"{sum(1 for r in out.values() if r.endswith('-a')) + 1}-a")
    evs = [d["event"] for d in frames if isinstance(d.get("event"), dict)]
    evs += [d["headers"] for d in frames if d.get("sent") == "connect"]
    for ev in evs:
        uid, other = ev.get("Unique-ID"), unquote(ev.get("variable_other_loopback_leg_uuid", ""))
        if uid and other and out.get(other, "").endswith("-a") and uid not in out:
            out[uid] = out[other][:-2] + "-b"
        if uid and other and out.get(uid, "").endswith("-a") and other not in out:
            out[other] = out[uid][:-2] + "-b"
    for ev in evs:  # CHANNEL_UUID: the events before it carried the channel's first uuid
        old = ev.get("Old-Unique-ID")
        if old and ev.get("Unique-ID") in out and old not in out:
            out[old] = out[ev["Unique-ID"]]
    seen: Counter = Counter()
    for ev in evs:
        uid = ev.get("Unique-ID")
        if uid and uid not in out:
            base = re.sub(r"\d{6,}", "N", unquote(ev.get("Channel-Name", "?")))
            seen[base] += 1
            out[uid] = f"{base}#{seen[base]}"
    return out


@dataclass
class Shape:
    replies: dict[str, list[tuple[str, tuple]]]
    channels: dict[str, list[dict]]
    others: dict[str, list[dict]]
    frames: dict[str, list[tuple]]
    timing: dict[str, list[float]]


def shape(frames: list[dict]) -> Shape:
    role = roles(frames)
    replies: dict[str, list] = {}
    channels: dict[str, list] = {}
    others: dict[str, list] = {}
    other_frames: dict[str, list] = {}
    for d in frames:
        conn = f"{d.get('conn') or 'in'}{d.get('call') or ''}"
        h = d.get("headers")
        if h is None:
            other_frames.setdefault(conn, []).append(("closed",))
            continue
        ct = h.get("Content-Type")
        if "sent" in d and ct in REPLY_TYPES:
            if d["sent"].startswith("auth"):
                continue  # not recorded in every capture
            replies.setdefault(conn, []).append((norm_command(d["sent"]), reply_shape(d)))
        elif isinstance(d.get("event"), dict):
            ev = d["event"]
            if (ev.get("Application"), ev.get("Application-Data")) in IGNORED_APPS:
                continue
            uid = ev.get("Unique-ID")
            if uid:
                channels.setdefault(role.get(uid, uid), []).append(ev)
            elif ev.get("Event-Name") not in TIMER_EVENTS:
                others.setdefault(conn, []).append(ev)
        elif ct not in ("auth/request",):
            item = (ct, h.get("Content-Disposition"), tuple(k for k in h if k != "Content-Length"))
            lst = other_frames.setdefault(conn, [])
            if not lst or lst[-1] != item:
                lst.append(item)
    return Shape(replies, channels, others, other_frames, measure_timing(frames))


# --------------------------------------------------------------------------- timing
def _first(items, start: int, pred, stop: int | None = None):
    for i in range(start, len(items) if stop is None else min(stop, len(items))):
        if pred(items[i]):
            return items[i]
    return None


def measure_timing(frames: list[dict]) -> dict[str, list[float]]:
    """Delays (s) of the README's timing table, grouped by what they measure."""
    out: dict[str, list[float]] = {}
    evs = [(i, d) for i, d in enumerate(frames) if isinstance(d.get("event"), dict) and d["event"].get("Unique-ID")]

    def add(key: str, value: float) -> None:
        out.setdefault(key, []).append(round(value, 4))

    def ev_after(idx: int, uid: str, pred, stop: int | None = None):
        for i, d in evs:
            if i > idx and (stop is None or i < stop) and d["event"].get("Unique-ID") == uid and pred(d["event"]):
                return d
        return None

    def named(name: str, app: str | None = None):
        return lambda e: e.get("Event-Name") == name and (app is None or e.get("Application") == app)

    # an effect is looked for within WINDOW_S of the reply (the slowest in the README takes 0.4 s)
    times = [d.get("t", 0.0) for d in frames]
    partner: dict[str, str] = {}
    a_leg: dict[str, str] = {}
    prev_reply = {}
    call_uuid: dict[tuple, str] = {}
    burst: dict[tuple, list] = {}
    for i, d in enumerate(frames):
        sent = d.get("sent")
        if not sent or d.get("headers", {}).get("Content-Type") not in REPLY_TYPES:
            continue
        conn = (d.get("conn"), d.get("call"))
        since = prev_reply.get(conn, -1)
        prev_reply[conn] = i
        until = bisect.bisect_right(times, d["t"] + WINDOW_S, lo=i)
        t0 = d["t"]
        argv = sent.split()
        body = (d.get("headers", {}).get("Reply-Text") or d.get("body") or "").strip()
        if sent == "connect":
            call_uuid[conn] = d["headers"].get("Unique-ID")
            burst[conn] = []
            continue
        if argv[:2] == ["api", "uuid_bridge"] and len(argv) >= 4 and body.startswith("+OK"):
            a, b = argv[2], argv[3]
            partner[a], partner[b], a_leg[a], a_leg[b] = b, a, a, a
            for leg, uid in (("A", a), ("B", b)):
                e = ev_after(since, uid, named("CHANNEL_UNPARK"), until)
                if e:
                    add(f"uuid_bridge reply -> CHANNEL_UNPARK ({leg})", e["t"] - t0)
            for key, pred in (("CHANNEL_EXECUTE uuid_bridge", named("CHANNEL_EXECUTE", "uuid_bridge")),
                              ("CHANNEL_BRIDGE", named("CHANNEL_BRIDGE"))):
                e = ev_after(since, a, pred, until)
                if e:
                    add(f"uuid_bridge reply -> {key} (A)", e["t"] - t0)
        elif argv[:2] == ["api", "uuid_kill"] and len(argv) >= 3 and body.startswith("+OK"):
            x = argv[2]
            e = ev_after(since, x, named("CHANNEL_HANGUP"), until)
            if e:
                add("uuid_kill reply -> CHANNEL_HANGUP (killed leg)", e["t"] - t0)
            if x in partner:
                p = partner[x]
                for name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"):
                    e = ev_after(since, p, named(name), until)
                    if e:
                        add(f"uuid_kill reply -> {name} (other leg)", e["t"] - t0)
                e = ev_after(since, a_leg[x], named("CHANNEL_UNBRIDGE"), until)
                add("uuid_kill reply -> CHANNEL_UNBRIDGE (A)", e["t"] - t0 if e else float("nan"))
        elif argv[:2] == ["api", "uuid_broadcast"] and len(argv) >= 4:
            x, which = argv[2], (argv[4] if len(argv) > 4 else "aleg")
            prev = frames[since] if since >= 0 else {}
            waited = d.get("waited", d["t"] - prev.get("t", 0.0) >= 0.045)  # captures show it by the time gap
            if x in partner and prev.get("sent", "").startswith("api uuid_bridge") and not waited:
                context = "sent right after the uuid_bridge reply"  # the script did not wait for CHANNEL_BRIDGE
            elif x in partner:
                context = "bridged"
            else:
                context = "parked leg"
            legs = {"both": [x, partner.get(x)], "aleg": [x], "bleg": [partner.get(x)]}.get(which, [x])
            for uid in filter(None, legs):
                leg = "A" if a_leg.get(uid, uid) == uid else "B"
                for name, app in (("CHANNEL_EXECUTE", "playback"), ("PLAYBACK_START", None)):
                    e = ev_after(i, uid, named(name, app), until)
                    if e:
                        add(f"uuid_broadcast ({context}) reply -> {name} ({leg})", e["t"] - t0)
        elif argv[:2] == ["api", "uuid_break"] and len(argv) >= 3:
            x, flavour = argv[2], " all" if argv[3:4] == ["all"] else ""
            n = 0
            for j, dj in evs:  # from the command's sending on: the simulator must not stop before replying either
                ev = dj["event"]
                if j > since and ev.get("Unique-ID") == x and ev.get("Event-Name") == "PLAYBACK_STOP" \
                        and ev.get("Playback-Status") == "break":
                    n += 1
                    add(f"uuid_break{flavour} reply -> PLAYBACK_STOP break #{n}", dj["t"] - t0)
                    if n == 3:
                        break
                if until is not None and j >= until:
                    break
        elif argv[:2] == ["api", "uuid_park"] and len(argv) >= 3:
            for name in ("CHANNEL_UNPARK", "CHANNEL_PARK"):
                e = ev_after(i, argv[2], named(name), until)
                if e:
                    add(f"uuid_park reply -> {name}", e["t"] - t0)
        elif argv[:2] == ["bgapi", "status"]:
            job = d["headers"].get("Job-UUID")
            e = _first(frames, i, lambda f: (f.get("event") or {}).get("Job-UUID") == job)
            if e:
                add("bgapi status reply -> BACKGROUND_JOB", e["t"] - t0)
        elif sent.startswith("sendmsg") and conn in call_uuid:
            uid, cmd = call_uuid[conn], norm_command(sent)
            app = cmd.split()[2] if len(cmd.split()) > 2 else ""
            run = burst[conn]
            if run and d["t"] - run[-1][1] > 0.1:
                run.clear()
            run.append((i, d["t"]))
            stop = next((j for j in range(i + 1, len(frames)) if frames[j].get("sent")
                         and frames[j].get("conn") == d.get("conn") and frames[j].get("call") == d.get("call")
                         and frames[j]["t"] - d["t"] > 0.1), None)
            k = len(run)
            claimed = 0
            for j, dj in evs:
                if j > run[0][0] and (stop is None or j < stop) and dj["event"].get("Unique-ID") == uid \
                        and named("CHANNEL_EXECUTE", app)(dj["event"]):
                    claimed += 1
                    if claimed == k:
                        add(f"{cmd} #{k} reply -> CHANNEL_EXECUTE", dj["t"] - t0)
                        break
            if app == "hangup":
                e = _first(frames, i, lambda f: f.get("conn") == d.get("conn") and f.get("call") == d.get("call")
                           and f.get("headers", {}).get("Content-Type") == "text/disconnect-notice")
                if e:
                    add(f"{cmd} reply -> text/disconnect-notice", e["t"] - t0)
    # PLAYBACK_START -> its PLAYBACK_STOP (same file) on the same channel
    for j, dj in evs:
        ev = dj["event"]
        if ev.get("Event-Name") != "PLAYBACK_START":
            continue
        path = ev.get("Playback-File-Path", "")
        stop = ev_after(j, ev["Unique-ID"], lambda e: e.get("Event-Name") == "PLAYBACK_STOP"
                        and e.get("Playback-File-Path") == path)
        if stop:
            what = os.path.basename(path) if path.endswith(".wav") else path.split("://")[0]
            add(f"PLAYBACK_START -> PLAYBACK_STOP ({what}, {stop['event'].get('Playback-Status')})",
                stop["t"] - dj["t"])
    return out


def timing_bounds(values: list[float]) -> tuple[float, float]:
    """The capture's range widened for a loaded machine: 10 % / 5 ms below, 25 % / 100 ms above."""
    lo, hi = min(values), max(values)
    return lo - max(0.005, 0.1 * abs(lo)), hi + max(0.1, 0.25 * hi)


# --------------------------------------------------------------------------- comparing
def _names_diff(real: list[str], ours: list[str]) -> str:
    missing = [n for n in real if n not in ours]
    extra = [n for n in ours if n not in real]
    if missing or extra:
        return f"missing {missing} extra {extra}"
    k = next(i for i, (a, b) in enumerate(zip(real, ours)) if a != b)
    return f"order differs at {k}: real {real[k:k + 3]} sim {ours[k:k + 3]}"


def _short(items: list[str], limit: int = 8) -> str:
    return repr(items) if len(items) <= limit else f"{items[:limit]!r} ... (+{len(items) - limit})"


def _seq_diff(real: list[str], ours: list[str], limit: int = 12) -> list[str]:
    lines = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=real, b=ours, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        lines.append(f"    @{i1}: real {_short(real[i1:i2])} / sim {_short(ours[j1:j2])}")
    return lines[:limit] + ([f"    ... {len(lines) - limit} more"] if len(lines) > limit else [])


def compare(real_frames: list[dict], sim_frames: list[dict]) -> list[str]:
    real, ours = shape(real_frames), shape(sim_frames)
    diffs: list[str] = []
    # replies
    for conn in sorted(set(real.replies) | set(ours.replies)):
        r, o = real.replies.get(conn, []), ours.replies.get(conn, [])
        if len(r) != len(o):
            diffs.append(f"replies[{conn}]: {len(r)} real, {len(o)} sim")
        for (cmd, rs), (_, os_) in zip(r, o):
            if rs != os_:
                what = [f"{n} real {a!r} sim {b!r}" for n, a, b in
                        zip(("content-type", "first token", "leading newline", "trailing newline"), rs, os_) if a != b]
                if rs[4] != os_[4]:
                    what.append("header names " + _names_diff(list(rs[4]), list(os_[4])))
                diffs.append(f"reply to {cmd[:70]!r}: " + "; ".join(what))
    # per-channel event order and header names
    seen_names: set = set()
    real_orders = [[event_key(e) for e in evs] for evs in real.channels.values()]
    for role in sorted(set(real.channels) | set(ours.channels)):
        r, o = real.channels.get(role, []), ours.channels.get(role, [])
        rk, ok = [event_key(e) for e in r], [event_key(e) for e in o]
        # the real switch races (e.g. CALL_UPDATE vs CHANNEL_CALLSTATE): another leg's real order of the
        # same events is as good
        if rk != ok and not (Counter(rk) == Counter(ok) and ok in real_orders):
            diffs.append(f"channel {role}: event order differs ({len(rk)} real, {len(ok)} sim)")
            diffs += _seq_diff(rk, ok)
        # header names: as on this leg, or as on a leg that got the same events (the switch races there too)
        allowed: dict[str, set] = {}
        for evs in real.channels.values():
            if Counter(event_key(e) for e in evs) == Counter(rk):
                for e in evs:
                    allowed.setdefault(event_key(e), set()).add(tuple(header_names(e)))
        diffs += _header_diffs(r, o, rk, ok, seen_names, allowed)
    for conn in sorted(set(real.others) | set(ours.others)):
        r, o = real.others.get(conn, []), ours.others.get(conn, [])
        rk, ok = [event_key(e) for e in r], [event_key(e) for e in o]
        if rk != ok:
            diffs.append(f"events without channel [{conn}] differ")
            diffs += _seq_diff(rk, ok)
        diffs += _header_diffs(r, o, rk, ok, seen_names)
    for conn in sorted(set(real.frames) | set(ours.frames)):
        r, o = real.frames.get(conn, []), ours.frames.get(conn, [])
        if r != o:
            diffs.append(f"other frames [{conn}]: real {[x[:2] for x in r]} sim {[x[:2] for x in o]}"
                         if [x[:2] for x in r] != [x[:2] for x in o] else
                         f"other frames [{conn}]: header names real {r} sim {o}")
    # timing
    for key in sorted(set(real.timing) | set(ours.timing)):
        rv, ov = real.timing.get(key), ours.timing.get(key)
        rv = [v for v in rv or [] if v == v]
        if not ov:
            diffs.append(f"timing {key}: real {_ms(rv)}, never in sim")
            continue
        if not rv:
            diffs.append(f"timing {key}: never in real, sim {_ms(ov)}")
            continue
        lo, hi = timing_bounds(rv)
        bad = [v for v in ov if not lo <= v <= hi]
        if bad:
            diffs.append(f"timing {key}: real {_ms(rv)} (allowed {lo * 1000:.0f}..{hi * 1000:.0f} ms), "
                         f"sim {_ms(ov)}")
    return diffs


def _ms(values: list[float]) -> str:
    vals = sorted(round(v * 1000) if v == v else -1 for v in values)
    if not vals:
        return "-"
    return f"{vals[0]}..{vals[-1]} ms (n={len(vals)})" if vals[0] != vals[-1] else f"{vals[0]} ms (n={len(vals)})"


def _header_diffs(r: list[dict], o: list[dict], rk: list[str], ok: list[str], seen: set,
                  allowed: dict[str, set] | None = None) -> list[str]:
    out = []
    for tag, i1, i2, j1, _ in difflib.SequenceMatcher(a=rk, b=ok, autojunk=False).get_opcodes():
        if tag != "equal":
            continue
        for a, b in zip(r[i1:i2], o[j1:j1 + (i2 - i1)]):
            na, nb = header_names(a), header_names(b)
            if na != nb and tuple(nb) not in (allowed or {}).get(event_key(a), ()):
                msg = f"headers of {event_key(a)}: {_names_diff(na, nb)}"
                if msg not in seen:
                    seen.add(msg)
                    out.append(msg)
    return out


def report(name: str, diffs: list[str]) -> str:
    return f"{name}: {len(diffs)} difference(s) from the real switch\n" + "\n".join(diffs)


if __name__ == "__main__":  # PYTHONPATH=. python tests/conformance.py [capture ...]: print the differences
    import sys

    for capture in sys.argv[1:] or script_names():
        steps, frames = load_capture(capture)
        print(report(capture, compare(frames, run_on_simulator(steps))), flush=True)

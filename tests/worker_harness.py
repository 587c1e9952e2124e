"""Test harness for the dialing worker: a real controller on a gevent WSGI server
that can be stopped and restarted on the same port, a campaign built on the
test database, and a small in-process fake switch with the Switch method
surface (for fast, exact worker tests; the end-to-end test uses the real
simulated switch over TCP).
"""
from __future__ import annotations

import collections
import datetime as dt
import itertools
import time
from dataclasses import dataclass, field
from typing import Callable, Optional

import gevent
import gevent.event
from gevent.pywsgi import WSGIServer

from esl_dialer import switch as sw
from esl_dialer.esl.events import Event
from esl_dialer.messages import AttemptResult


# -- controller -------------------------------------------------------------------------


class ControllerServer:
    """The real Flask controller on gevent's WSGI server; ``stop()``/``start()`` keep the port."""

    def __init__(self, db_url: str, **config) -> None:
        from controller import create_app
        from controller.config import TestConfig

        cfg = TestConfig(db_url)
        for k, v in config.items():
            setattr(cfg, k, v)
        self.app = create_app(cfg)
        self.port = 0
        self.server: Optional[WSGIServer] = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self) -> "ControllerServer":
        self.server = WSGIServer(("127.0.0.1", self.port), self.app, log=None, error_log=None)
        self.server.start()
        self.port = self.server.server_port
        return self

    def stop(self) -> None:
        if self.server is not None:
            self.server.stop(timeout=0.5)
            self.server = None


_PROC_CODE = r"""
import sys
from gevent import monkey
monkey.patch_all()
from gevent.pywsgi import WSGIServer
from controller import create_app
from controller.config import TestConfig
cfg = TestConfig(sys.argv[1])
cfg.SSE_POLL_SECONDS = 0.2
cfg.SSE_PING_SECONDS = 2
if len(sys.argv) > 3:
    cfg.LEASE_SECONDS = int(sys.argv[3])
app = create_app(cfg)
WSGIServer(("127.0.0.1", int(sys.argv[2])), app, log=None).serve_forever()
"""


def free_port() -> int:
    import socket

    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


class ControllerProcess:
    """The real controller in its own (monkey-patched) process; killed and restarted on one port.

    A separate process because the controller's SSE hub waits on a
    threading.Condition: fine under monkey-patching, a stall of the whole hub
    in an unpatched test process.
    """

    def __init__(self, db_url: str, lease_seconds: Optional[int] = None) -> None:
        self.db_url = db_url
        self.lease_seconds = lease_seconds
        self.port = free_port()
        self.proc = None

    @property
    def url(self) -> str:
        return f"http://127.0.0.1:{self.port}"

    def start(self, timeout: float = 20.0) -> "ControllerProcess":
        import subprocess
        import sys

        import tempfile

        self.log = tempfile.TemporaryFile()
        args = [sys.executable, "-c", _PROC_CODE, self.db_url, str(self.port)]
        if self.lease_seconds:
            args.append(str(self.lease_seconds))
        self.proc = subprocess.Popen(args,
                                     stdout=subprocess.DEVNULL, stderr=self.log)
        deadline = time.monotonic() + timeout
        import gevent.socket as gsock

        while time.monotonic() < deadline:
            if self.proc.poll() is not None:
                self.log.seek(0)
                raise RuntimeError("controller died: " + self.log.read().decode()[-2000:])
            try:
                gsock.create_connection(("127.0.0.1", self.port), timeout=0.2).close()
                return self
            except OSError:
                gevent.sleep(0.05)
        raise RuntimeError("controller did not start")

    def kill(self) -> None:
        if self.proc is not None and self.proc.poll() is None:
            self.proc.kill()
            self.proc.wait(timeout=10)
        self.proc = None


def midday_zone(now: Optional[float] = None) -> str:
    """An Etc/GMT zone where it is now between 10:00 and 15:00, so X1 windows never bite a test."""
    from zoneinfo import ZoneInfo

    now = now or time.time()
    for off in range(-12, 13):
        name = "Etc/UTC" if off == 0 else f"Etc/GMT{'+' if off > 0 else '-'}{abs(off)}"
        hour = dt.datetime.fromtimestamp(now, ZoneInfo(name)).hour
        if 10 <= hour < 15:
            return name
    raise AssertionError("no midday zone")


@dataclass
class Campaign:
    id: int
    tokens: dict[str, str]  # agent extension -> worker token
    record_ids: list[int]
    numbers: dict[int, str]


def make_campaign(db, *, agents: list[str], records: int, name: str = "c1", number_base: int = 2025550000,
                  skill: int = 0) -> Campaign:
    """An active campaign with one pool of ``records`` records and one worker per agent."""
    from controller.models import CallRecord, Campaign as CampaignRow, Pool
    from controller.services import workers
    from esl_dialer.messages import CampaignStatus, RecordStatus, TimezonePolicy

    zone = midday_zone()
    with db.session() as s:
        c = CampaignRow(name=name, status=CampaignStatus.ACTIVE, timezone_policy=TimezonePolicy.CAMPAIGN,
                        default_timezone=zone, window_start="08:00", window_end="21:00",
                        abandon_message="/sounds/abandon.wav")
        s.add(c)
        s.flush()
        p = Pool(campaign_id=c.id, name="p1")
        s.add(p)
        s.flush()
        rows = []
        for i in range(records):
            r = CallRecord(campaign_id=c.id, pool_id=p.id, number=f"+1{number_base + i}", name=f"Party {i}",
                           city="Springfield", region="IL", country="US", status=RecordStatus.READY)
            s.add(r)
            rows.append(r)
        s.flush()
        cid = c.id
        ids = [r.id for r in rows]
        numbers = {r.id: r.number for r in rows}
    tokens = {}
    for ext in agents:
        nw = workers.add_worker(db, f"w{ext}", agent=ext, campaign_id=cid, skill=skill)
        tokens[ext] = nw.token
    return Campaign(cid, tokens, ids, numbers)


def wait_quiet(workers, count, timeout: float, quiet_s: float = 6.0) -> None:
    """Wait until the workers hold nothing, have no call and no pending result, and
    ``count()`` (calls placed) has not moved for ``quiet_s`` (longer than the workers' 5-s
    back-off after an outage): the campaign is done."""
    import gevent

    last, since = -1, time.monotonic()
    with gevent.Timeout(timeout, AssertionError("campaign did not finish")):
        while True:
            gevent.sleep(0.2)
            n = count()
            idle = all(not w.core.calls and w.core.talking_to is None and w.store.stats().pending_results == 0
                       and w.store.held_count() == 0 for w in workers)
            if n != last or not idle:
                last, since = n, time.monotonic()
            elif time.monotonic() - since >= quiet_s:
                return


def leased_without_attempt(db, record_ids) -> list[int]:
    """Records still LEASED with no attempt: a lease whose reply was lost when the controller
    died (not retried, by design); they return to the pool when the lease expires."""
    from controller.models import CallAttempt, CallRecord
    from esl_dialer.messages import RecordStatus
    import sqlalchemy as sa

    with db.session() as s:
        tried = set(s.scalars(sa.select(CallAttempt.record_id)))
        leased = set(s.scalars(sa.select(CallRecord.id).where(CallRecord.status == RecordStatus.LEASED)))
    return sorted(r for r in record_ids if r not in tried and r in leased)


def attempts_by_record(db) -> dict[int, list]:
    from controller.models import CallAttempt
    import sqlalchemy as sa

    out: dict[int, list] = collections.defaultdict(list)
    with db.session() as s:
        for a in s.scalars(sa.select(CallAttempt)):
            out[a.record_id].append(a)
    return out


# -- fake switch --------------------------------------------------------------------------


@dataclass(frozen=True)
class Outcome:
    kind: str = "answer"  # answer | busy | no_answer | failed
    ring_s: float = 0.05
    talk_s: float = 0.3


@dataclass
class FakeChannel:
    uuid: str
    number: str
    variables: dict
    answered: bool = False
    bridged_to: Optional[str] = None
    alive: bool = True
    playbacks: list = field(default_factory=list)


class FakeSwitch:
    """The Switch methods the worker uses, with scripted outcomes and instant events."""

    def __init__(self, outcome: Callable[[str], Outcome] = lambda n: Outcome(),
                 agent_gate: Optional[gevent.event.Event] = None) -> None:
        self.outcome = outcome
        self.agent_gate = agent_gate  # agents answer their waiting leg only once this is set
        self.log: list[tuple[float, str, str]] = []  # (time, event or command, uuid)
        self.connected = True
        self._seq = itertools.count(1)
        self.seq = 0
        self.handlers: dict[str, list] = collections.defaultdict(list)
        self.channels: dict[str, FakeChannel] = {}
        self.originated: list[tuple[str, str, float]] = []  # (number, uuid, time)
        self.bridges: list[tuple[str, str]] = []
        self.broadcasts: list[tuple[str, str, str]] = []
        self.waiters: list = []

    # events
    def _emit(self, uuid: str, name: str, **headers) -> None:
        self.seq = next(self._seq)
        self.log.append((time.time(), name, uuid))
        ev = Event.from_headers({"Event-Name": name, "Unique-ID": uuid, **headers}, seq=self.seq)
        for h in list(self.handlers.get(uuid, [])):
            h(ev)
        for w in list(self.waiters):
            wu, names, since, res = w
            if wu == uuid and name in names and self.seq > since and not res.ready():
                res.set(ev)

    def wait_connected(self, timeout: float) -> bool:
        return self.connected

    def on_channel(self, uuid, handler):
        self.handlers[uuid].append(handler)
        return handler

    def off_channel(self, uuid, handler=None):
        self.handlers.pop(uuid, None)

    def _spawn_later(self, delay, fn, *args):
        gevent.spawn_later(delay, fn, *args)

    def originate(self, endpoint, *, app="park", uuid, variables=None, originate_timeout=None, cid_name=None,
                  cid_num=None, **kw):
        number = endpoint.rsplit("/", 1)[-1]
        ch = FakeChannel(uuid, number, dict(variables or {}))
        self.channels[uuid] = ch
        if endpoint.startswith("user/"):
            if self.agent_gate is not None:
                self.agent_gate.wait(timeout=originate_timeout or 30)
            gevent.sleep(0.01)
            ch.answered = True
            self._emit(uuid, "CHANNEL_ANSWER")
            return sw.OriginateResult(uuid, True, None, None, "job", "+OK " + uuid)
        self.originated.append((number, uuid, time.time()))
        self.log.append((time.time(), "originate", uuid))
        out = self.outcome(number)
        self._emit(uuid, "CHANNEL_PROGRESS")
        gevent.sleep(out.ring_s)
        if out.kind == "answer":
            ch.answered = True
            self._emit(uuid, "CHANNEL_ANSWER")
            self._spawn_later(out.talk_s, self._hangup, uuid, "NORMAL_CLEARING")
            return sw.OriginateResult(uuid, True, None, None, "job", "+OK " + uuid)
        cause = {"busy": "USER_BUSY", "no_answer": "NO_ANSWER"}.get(out.kind, "NORMAL_TEMPORARY_FAILURE")
        self._hangup(uuid, cause)
        res = {"busy": AttemptResult.BUSY, "no_answer": AttemptResult.NO_ANSWER}.get(out.kind, AttemptResult.FAILED)
        return sw.OriginateResult(uuid, False, cause, res, "job", "-ERR " + cause)

    def _hangup(self, uuid, cause):
        ch = self.channels.get(uuid)
        if ch is None or not ch.alive:
            return
        ch.alive = False
        if ch.bridged_to and ch.bridged_to in self.channels:
            self.channels[ch.bridged_to].bridged_to = None  # park_after_bridge: the agent stays
        self._emit(uuid, "CHANNEL_HANGUP_COMPLETE", **{"Hangup-Cause": cause})

    def bridge(self, a, b, wait_s=None):
        ca, cb = self.channels.get(a), self.channels.get(b)
        if ca is None or not ca.alive or cb is None or not cb.alive:
            raise sw.CommandFailed(f"uuid_bridge {a} {b}", "-ERR no such channel")
        ca.bridged_to, cb.bridged_to = b, a
        self.bridges.append((a, b))
        self._emit(a, "CHANNEL_BRIDGE", **{"Other-Leg-Unique-ID": b})
        return None

    def broadcast(self, uuid, path, leg="both"):
        ch = self.channels.get(uuid)
        if ch is None or not ch.alive:
            raise sw.CommandFailed(f"uuid_broadcast {uuid}", "-ERR no such channel")
        self.broadcasts.append((uuid, path, leg))
        legs = [uuid] + ([ch.bridged_to] if leg == "both" and ch.bridged_to else [])
        for u in legs:
            self.channels[u].playbacks.append(path)
        self._spawn_later(0.05, self._emit, uuid, "PLAYBACK_STOP")

    def wait_for(self, uuid, names, timeout, since=0):
        names = frozenset([names] if isinstance(names, str) else names)
        res = gevent.event.AsyncResult()
        entry = (uuid, names, since, res)
        self.waiters.append(entry)
        try:
            return res.get(timeout=timeout)
        except gevent.Timeout:
            raise sw.SwitchTimeout("timeout") from None
        finally:
            self.waiters.remove(entry)

    def kill(self, uuid, cause="NORMAL_CLEARING"):
        ch = self.channels.get(uuid)
        if ch is None or not ch.alive:
            return False
        self._hangup(uuid, cause)
        return True

    def exists(self, uuid):
        ch = self.channels.get(uuid)
        return bool(ch and ch.alive)

    # what a restarted worker asks to find legs its predecessor left (issue 15 point 5)
    def show_channels(self):
        return [{"uuid": u} for u, ch in self.channels.items() if ch.alive]

    def getvar(self, uuid, name):
        ch = self.channels.get(uuid)
        if ch is None or not ch.alive:
            raise sw.CommandFailed(f"uuid_getvar {uuid} {name}", "-ERR No such channel!")
        value = ch.variables.get(name)
        return None if value is None else str(value)

    def dump(self, uuid):
        ch = self.channels.get(uuid)
        if ch is None or not ch.alive:
            return None
        out = {f"variable_{k}": str(v) for k, v in ch.variables.items()}
        out["Answer-State"] = "answered" if ch.answered else "ringing"
        out["variable_current_application"] = "park"
        if ch.bridged_to:
            out["variable_bridge_to"] = ch.bridged_to
        return out



def wait_until(pred, timeout=15.0, step=0.05):
    """Block (cooperatively) until ``pred()`` holds, else fail the test."""
    with gevent.Timeout(timeout, AssertionError("condition not reached")):
        while not pred():
            gevent.sleep(step)

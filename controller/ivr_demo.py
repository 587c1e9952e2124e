"""The IVR part of `make demo` (SPEC R1-R9): a remote center fed by a local IVR.

The lead's demo orchestrator calls :func:`start_ivr_demo` with its running
simulated switch, the controller's database and URL.  That controller acts as
the *remote* center (its ACD queue "support" and operators 2001..); the local
IVR and the remote center's leg acceptor run in this process on ephemeral
ports.  Simulated callers dial 7000, press 1 and are held locally until their
proxy nears the head; the dashboard shows the proxies with
:func:`controller.services.acd.list_proxies` (``live_only=False`` for bridged
and finished ones).

There is no SIP between two simulated switches, so both dialplans live on the
one simulated switch: 7000 is the local IVR's socket extension, 8000 the
remote trunk extension (socket to the acceptor), reached by ``loopback/8000``
where production dials ``sofia/gateway/remote-center/<skill>``.
"""
from __future__ import annotations

import dataclasses
import logging
import random
from typing import Any

import gevent
import gevent.pool

from esl_dialer.ivr.acceptor import AcceptorSettings, LegAcceptor
from esl_dialer.ivr.app import IvrCall, IvrSettings
from esl_dialer.ivr.menu import Menu
from esl_dialer.ivr.remote_client import AcdSwitchClient, ProgressHub, RemoteCenter
from esl_dialer.ivr.server import IvrServer

from .db import Database
from .services import acd

logger = logging.getLogger(__name__)

DEMO_MENU = {
    "name": "demo", "start": "welcome", "version": "1",
    "defaults": {"tries": 2, "timeout_ms": 3000, "invalid_prompt": "ivr/ivr-that_was_an_invalid_entry.wav"},
    "nodes": {
        "welcome": {"type": "menu", "prompt": "ivr/ivr-welcome_to_freeswitch.wav",
                    "branches": {"1": "support", "2": "info"}, "on_fail": "bye"},
        "info": {"type": "play", "prompt": "ivr/ivr-thank_you_for_calling.wav", "next": "bye"},
        "support": {"type": "remote", "center": "remote", "skill": "support", "next": "bye"},
        "bye": {"type": "hangup", "prompt": "voicemail/vm-goodbye.wav"},
    },
}


def prepare_remote_center(db: Database, operators: int = 3, first_ext: int = 2001,
                          skill: str = "support") -> dict[str, str]:
    """Queue, operators and API keys of the demo's remote center (idempotent)."""
    acd.ensure_queue(db, skill, bridge_position=1, bridge_setup_s=5.0, default_service_s=60.0)
    for i in range(operators):
        acd.add_operator(db, f"operator{i + 1}", f"user/{first_ext + i}", [skill], state="available")
    keys = {}
    for name, role in (("demo-local-ivr", "center"), ("demo-acceptor", "switch")):
        try:
            keys[role] = acd.create_peer(db, name, role=role)
        except acd.Conflict:
            # keys are stored hashed: a re-run gets fresh peers
            keys[role] = acd.create_peer(db, f"{name}-{random.randrange(10**6)}", role=role)
    return keys


@dataclasses.dataclass
class IvrDemo:
    ivr: IvrServer
    acceptor: IvrServer
    hub: ProgressHub
    group: gevent.pool.Group
    reports: list = dataclasses.field(default_factory=list)

    def stop(self, timeout: float = 5.0) -> None:
        self.group.kill(timeout=timeout)
        self.ivr.stop(timeout=timeout)
        self.acceptor.stop(timeout=timeout)
        self.hub.stop()


def start_ivr_demo(sim: Any, db: Database, controller_url: str, *, operators: int = 3,
                   callers_per_minute: float = 6.0, talk_s: tuple[float, float] = (20.0, 90.0),
                   seed: int = 1) -> IvrDemo:
    """Start the local IVR, the remote leg acceptor and simulated callers/operators on ``sim``."""
    rng = random.Random(seed)
    keys = prepare_remote_center(db, operators=operators)
    group = gevent.pool.Group()
    acceptor = IvrServer(lambda s: LegAcceptor(s, AcceptorSettings(
        controller=AcdSwitchClient(controller_url, keys["switch"]))), port=0)
    acceptor.start()
    center = RemoteCenter("remote", controller_url, keys["center"], dial_string="loopback/8000")
    hub = ProgressHub(center, poll_s=1.0)
    hub.start()
    reports: list = []
    settings = IvrSettings(menu_provider=lambda: Menu.from_dict(DEMO_MENU), centers={"remote": center},
                           hubs={"remote": hub}, announce_every_s=20.0, fallback="hangup",
                           on_call_end=reports.append)
    ivr = IvrServer(lambda s: IvrCall(s, settings), port=0)
    ivr.start()
    plan = dict(sim.dialplan)
    plan.update({"7000": ("socket", f"127.0.0.1:{ivr.port} async full"),
                 "8000": ("socket", f"127.0.0.1:{acceptor.port} async full")})
    sim.dialplan = plan
    exts = {str(2001 + i) for i in range(operators)}
    for ext in exts:
        sim.add_user(ext, answer_after_s=1.0)

    def callers() -> None:
        n = 0
        while True:
            gevent.sleep(rng.expovariate(callers_per_minute / 60.0))
            n += 1
            sim.inbound_call("7000", f"1555300{n:04d}", dtmf=rng.choice("1112"), patience_s=600, talk_s=10**6)

    def operators_hang_up() -> None:
        seen: set[str] = set()
        while True:
            for ch in list(sim.channels.values()):
                if ch.destination in exts and ch.bridged_to and ch.uuid not in seen:
                    seen.add(ch.uuid)
                    group.spawn(_hang_up_later, sim, ch.uuid, rng.uniform(*talk_s))
            gevent.sleep(0.2)

    group.spawn(callers)
    group.spawn(operators_hang_up)
    logger.info("IVR demo: local IVR on %s, remote acceptor on %s, %d operators",
                ivr.port, acceptor.port, operators)
    return IvrDemo(ivr=ivr, acceptor=acceptor, hub=hub, group=group, reports=reports)


def _hang_up_later(sim: Any, uuid: str, after_s: float) -> None:
    gevent.sleep(after_s * getattr(sim.config, "time_scale", 1.0))
    ch = sim.channels.get(uuid)
    if ch is not None:
        sim.hangup(ch, "NORMAL_CLEARING")

"""SimSwitch: the simulated FreeSWITCH core (channels, events, originate, bridge).

Everything runs in gevent greenlets of the calling process.  The event-socket
front end lives in :mod:`.server`, api commands in :mod:`.commands`, dialplan
applications in :mod:`.apps`.
"""
from __future__ import annotations

import collections
import logging
import random
import time
from dataclasses import dataclass
from typing import Any, Iterable, Mapping

import gevent
from gevent.event import Event as GEvent
from gevent.pool import Group

from .channel import (
    CallState,
    Channel,
    ChannelState,
    HeaderFactory,
    SimClock,
    channel_headers,
    new_uuid,
)
from .config import DEFAULT_FAIL_CAUSE, OUTCOMES, SimConfig, UserPhone
from .dialstring import DialString, DialStringError, Endpoint, parse_app, parse_dialstring, split_args, unquote_arg
from .events import SimEvent
from .session import Message, Session

logger = logging.getLogger(__name__)

ORIGINATE_USAGE = ("-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] "
                   "[<context>] [<cid_name>] [<cid_num>] [<timeout_sec>]\n")


@dataclass
class PartyPlan:
    """What the simulated far end of one leg does."""

    outcome: str = "answer"
    ring_s: float = 2.0
    talk_s: float | None = 30.0  # None: never hangs up by itself (agent phones)
    patience_s: float | None = None  # answered but not bridged: hang up after this
    cause: str | None = None
    early_media: bool = False
    dtmf: str = ""


class OriginateError(Exception):
    def __init__(self, cause: str) -> None:
        super().__init__(cause)
        self.cause = cause


class SimSwitch:
    """A simulated FreeSWITCH speaking mod_event_socket (see module docs)."""

    def __init__(self, config: SimConfig | None = None, host: str | None = None, port: int | None = None,
                 password: str | None = None) -> None:
        from .apps import AppRunner  # local: apps imports switch types
        from .commands import ApiCommands

        self.config = config or SimConfig()
        self.host = host if host is not None else self.config.host
        self._port = port if port is not None else self.config.port
        self.password = password if password is not None else self.config.password
        self.clock = SimClock(self.config.time_scale)
        self.core_uuid = new_uuid()
        self.headers = HeaderFactory(self.core_uuid, self.config.hostname, self.config.ipv4, self.clock)
        self.rng = random.Random(self.config.seed)
        self.channels: dict[str, Channel] = {}
        self.sessions: dict[str, Session] = {}
        self.history: list[Channel] = []
        self.listeners: set = set()
        self.users: dict[str, UserPhone] = dict(self.config.users)
        self._dialplan: dict[str, list[tuple[str, str]]] = {
            k: list(v) for k, v in self.config.dialplan.items()
        }
        self.scripts: dict[str, collections.deque[PartyPlan]] = {}
        self.eavesdroppers: dict[str, set[str]] = {}  # target uuid -> uuids listening in
        self.apps = AppRunner(self)
        self.api = ApiCommands(self)
        self.group = Group()
        self.started_at = time.time()
        self.session_count = 0
        self.peak = 0
        self._server = None
        self._session_ids = 0
        self.stopped = GEvent()

    # -- public API -----------------------------------------------------------
    @property
    def port(self) -> int:
        if self._server is not None:
            return self._server.server_port
        return self._port

    @property
    def dialplan(self) -> dict[str, list[tuple[str, str]]]:
        return self._dialplan

    @dialplan.setter
    def dialplan(self, value: Mapping[str, Any]) -> None:
        plan: dict[str, list[tuple[str, str]]] = {}
        for dest, entry in value.items():
            if isinstance(entry, tuple) and len(entry) == 2 and all(isinstance(x, str) for x in entry):
                plan[str(dest)] = [entry]
            else:
                plan[str(dest)] = [tuple(step) for step in entry]  # type: ignore[misc]
        self._dialplan = plan

    def start(self) -> "SimSwitch":
        from .server import EslServer

        self._server = EslServer(self)
        self._server.start()
        self.spawn(self._heartbeat_loop)
        if self.config.inbound.rate_per_minute > 0:
            self.spawn(self._inbound_arrivals)
        logger.info("sim switch listening on %s:%s", self.host, self.port)
        return self

    def serve_forever(self) -> None:
        self.stopped.wait()

    def stop(self, timeout: float = 5.0) -> None:
        for session in list(self.sessions.values()):
            session.request_hangup()
        if self._server is not None:
            self._server.stop(timeout=timeout)
        self.group.kill(block=True, timeout=timeout)
        self.stopped.set()

    def spawn(self, func, *args, **kwargs) -> gevent.Greenlet:
        g = self.group.spawn(func, *args, **kwargs)
        g.link_exception(self._greenlet_failed)
        return g

    @staticmethod
    def _greenlet_failed(g: gevent.Greenlet) -> None:
        logger.error("sim greenlet %s failed: %r", g, g.exception)

    def script(self, number: str, outcome: str = "answer", ring_s: float = 2.0, talk_s: float | None = 30.0,
               cause: str | None = None, dtmf: str = "", early_media: bool = False) -> None:
        """Control hook: the next call to ``number`` behaves exactly like this."""
        if outcome not in OUTCOMES:
            raise ValueError(f"outcome must be one of {', '.join(OUTCOMES)}")
        plan = PartyPlan(outcome=outcome, ring_s=float(ring_s), talk_s=talk_s, cause=cause, dtmf=dtmf,
                         early_media=early_media,
                         patience_s=talk_s if outcome == "hangup_while_waiting" else None)
        self.scripts.setdefault(_norm(number), collections.deque()).append(plan)

    def add_user(self, ext: str, answer_after_s: float = 0.2, registered: bool = True, busy: bool = False,
                 dtmf: str = "") -> None:
        self.users[str(ext)] = UserPhone(str(ext), answer_after_s, registered, busy, dtmf)

    def inbound_call(self, destination: str, caller_id: str = "15551230001", dtmf: str = "1#",
                     patience_s: float | None = None, talk_s: float | None = None,
                     variables: Mapping[str, str] | None = None) -> str:
        """A caller arriving from the network at ``destination`` in the dialplan."""
        ch = self.new_channel(f"sofia/external/{caller_id}@sim", "inbound", destination,
                              caller_id_number=caller_id, caller_id_name=caller_id)
        ch.hit_dialplan = True
        ch.variables.update(variables or {})
        inb = self.config.inbound
        plan = PartyPlan(
            outcome="answer", ring_s=0.0,
            talk_s=talk_s if talk_s is not None else inb.talk.sample(self.rng),
            patience_s=patience_s if patience_s is not None else inb.patience.sample(self.rng),
            dtmf=dtmf,
        )
        ch.pending_dtmf = dtmf
        session = self.sessions[ch.uuid]
        self.fire_channel("CHANNEL_CREATE", ch)
        session.party = plan
        self.spawn(self._caller_patience, ch, plan)
        session.holding = False
        session.apps.extend(self.route(ch, destination))
        logger.info("sim inbound call %s from %s to %s", ch.uuid, caller_id, destination)
        return ch.uuid

    def history_of(self, uuid: str) -> Channel | None:
        for ch in reversed(self.history):
            if ch.uuid == uuid:
                return ch
        return None

    # -- events -----------------------------------------------------------------
    def fire(self, name: str, headers: Iterable[tuple[str, str]] = (), body: str | None = None,
             subclass: str | None = None, unique_id: str | None = None) -> SimEvent:
        event = SimEvent(name, self.headers.base(name, subclass) + list(headers), body, subclass, unique_id)
        for listener in list(self.listeners):
            listener.offer(event)
        return event

    def fire_channel(self, name: str, ch: Channel, extra: Iterable[tuple[str, str]] = (), *,
                     variables: bool = True, first: Iterable[tuple[str, str]] = (),
                     state_name: str | None = None, state_number: int | None = None) -> SimEvent | None:
        if not any(listener.may_want(name) for listener in self.listeners):
            self.headers.sequence += 1  # FreeSWITCH numbers every event, delivered or not
            return None  # nobody subscribed: skip building ~150 headers
        other = self.find(ch.other_leg) if ch.other_leg else None
        first, extra = list(first), list(extra)
        base = self.headers.base(name)
        headers = base + first + channel_headers(ch, other=other, variables=variables, state_name=state_name,
                                                 state_number=state_number) + extra
        event = SimEvent(name, headers, None, None, ch.uuid)
        for listener in list(self.listeners):
            listener.offer(event)
        return event

    def _heartbeat_loop(self) -> None:
        while True:
            gevent.sleep(self.config.heartbeat_s)
            up = time.time() - self.started_at
            self.fire("HEARTBEAT", [
                ("Event-Info", "System Ready"),
                ("Up-Time", _uptime_text(up)),
                ("FreeSWITCH-Version", "1.10.12-release~64bit"),
                ("Uptime-msec", str(int(up * 1000))),
                ("Session-Count", str(len(self.channels))),
                ("Max-Sessions", str(self.config.max_sessions)),
                ("Session-Per-Sec", str(self.config.sessions_per_second)),
                ("Session-Since-Startup", str(self.session_count)),
                ("Session-Peak-Max", str(self.peak)),
                ("Idle-CPU", "99.000000"),
            ])

    # -- channels ---------------------------------------------------------------
    def find(self, uuid: str | None) -> Channel | None:
        return self.channels.get(uuid) if uuid else None

    def new_channel(self, name: str, direction: str, destination: str, *, uuid: str | None = None,
                    caller_id_number: str = "0000000000", caller_id_name: str = "FreeSWITCH",
                    source: str = "mod_sofia") -> Channel:
        self._session_ids += 1
        self.session_count += 1
        uid = uuid or new_uuid()
        ch = Channel(uuid=uid, name=name, direction=direction, destination=destination,
                     caller_id_number=caller_id_number, caller_id_name=caller_id_name, source=source,
                     created=self.clock.now(), session_id=self._session_ids)
        ch.variables.update({
            "direction": direction, "uuid": uid, "session_id": str(self._session_ids), "channel_name": name,
            "call_uuid": uid,
        })
        if direction == "outbound":
            ch.variables["is_outbound"] = "true"
        self.channels[uid] = ch
        self.history.append(ch)
        self.peak = max(self.peak, len(self.channels))
        session = Session(self, ch)
        self.sessions[uid] = session
        session.start()
        ch.note(ch.created, "create", name)
        return ch

    def route(self, ch: Channel, destination: str) -> list[tuple[str, str]]:
        """Dialplan lookup; unknown destinations hang up NO_ROUTE_DESTINATION."""
        steps = self._dialplan.get(destination)
        if steps is None:
            return [("hangup", "NO_ROUTE_DESTINATION")]
        return list(steps)

    def set_state(self, ch: Channel, state: ChannelState) -> None:
        ch.state = state

    def progress(self, ch: Channel, media: bool = False) -> None:
        if not ch.alive or ch.answered:
            return
        now = self.clock.now()
        if ch.progress_at is None:
            ch.progress_at = now
            ch.call_state = CallState.RINGING
            self.fire_channel("CHANNEL_PROGRESS", ch)
        if media and ch.progress_media_at is None:
            ch.progress_media_at = now
            ch.call_state = CallState.EARLY
            ch.answer_state = "early"
            self.fire_channel("CHANNEL_PROGRESS_MEDIA", ch)
        self._poke(ch)
        peer = self.find(ch.loopback_peer)
        if peer and peer.alive and not peer.answered and peer.direction == "outbound":
            self.progress(peer, media)

    def answer(self, ch: Channel) -> bool:
        if not ch.alive:
            return False
        if ch.answered:
            return True
        peer = self.find(ch.loopback_peer)
        if peer is not None and peer.alive and not peer.answered and ch.direction == "inbound":
            self.answer(peer)  # mod_loopback: the -a leg reports the answer first (as in the captures)
            if ch.answered:
                return True
        ch.answered_at = self.clock.now()
        ch.answer_state = "answered"
        ch.variables.setdefault("endpoint_disposition", "ANSWER")
        self.fire_channel("CHANNEL_ANSWER", ch)
        ch.call_state = CallState.ACTIVE
        ch.note(ch.answered_at, "answer")
        self._poke(ch)
        peer = self.find(ch.loopback_peer)
        if peer and peer.alive and not peer.answered:
            self.answer(peer)
        return True

    def _poke(self, ch: Channel) -> None:
        session = self.sessions.get(ch.uuid)
        if session:
            session.poke()
        for waiter in list(getattr(ch, "_waiters", ())):
            waiter.set()

    def hangup(self, ch: Channel, cause: str = "NORMAL_CLEARING", *, defer_peer: bool = False) -> bool:
        """switch_channel_hangup: CHANNEL_HANGUP now; the session unwinds and reports."""
        if not ch.alive:
            return False
        cause = (cause or "NORMAL_CLEARING").upper()
        ch.hangup_at = self.clock.now()
        ch.hangup_cause = cause
        ch.answer_state = "hangup"
        ch.note(ch.hangup_at, "hangup", cause)
        self.fire_channel("CHANNEL_HANGUP", ch, state_number=ChannelState.CS_HANGUP.value)
        logger.info("sim call %s (%s) hung up: %s", ch.uuid, ch.name, cause)
        session = self.sessions.get(ch.uuid)
        if session:
            session.request_hangup()
        self._poke(ch)
        partner = self.find(ch.bridged_to)
        if partner is not None:
            self.unbridge(ch, partner)
            self.after_bridge(partner)
        peer = self.find(ch.loopback_peer)
        if peer is not None and peer.alive:
            peer_session = self.sessions.get(peer.uuid)
            if defer_peer and peer_session is not None and peer.current_app:
                # uuid_kill of a loopback leg: the partner's application completes before its
                # CHANNEL_HANGUP (the order FreeSWITCH 1.10 shows in the captures)
                peer_session.request_deferred_hangup(cause)
            else:
                self.hangup(peer, cause)
        for spy in list(self.eavesdroppers.get(ch.uuid, ())):
            other = self.find(spy)
            if other is not None:
                self._poke(other)
        return True

    def finish_channel(self, session: Session) -> None:
        ch = session.ch
        if ch.alive:  # the session ended by itself (should not happen) -> clean hang-up
            ch.hangup_at = self.clock.now()
            ch.hangup_cause = ch.hangup_cause or "NORMAL_CLEARING"
            ch.answer_state = "hangup"
        ch.state = ChannelState.CS_HANGUP
        self.fire_channel("CHANNEL_STATE", ch, variables=False)
        ch.state = ChannelState.CS_REPORTING
        ch.call_state = CallState.HANGUP
        self.fire_channel("CHANNEL_STATE", ch, variables=False)
        ch.set_hangup_variables()
        self.fire_channel("CHANNEL_HANGUP_COMPLETE", ch, first=[("Hangup-Cause", ch.hangup_cause or "")])
        ch.state = ChannelState.CS_DESTROY
        self.fire_channel("CHANNEL_DESTROY", ch, variables=False)
        self.channels.pop(ch.uuid, None)
        self.sessions.pop(ch.uuid, None)
        if session.listener is not None:
            session.listener.channel_gone(ch)

    # -- bridge -----------------------------------------------------------------
    def bridge(self, a: Channel, b: Channel, via_app: str = "uuid_bridge") -> None:
        now = self.clock.now()
        for leg, other, kind in ((a, b, "originatee"), (b, a, "originator")):
            if leg.bridged_to and leg.bridged_to != other.uuid:
                old = self.find(leg.bridged_to)
                if old is not None:
                    self.unbridge(leg, old)
                    self.after_bridge(old)
            leg.bridged_to = other.uuid
            leg.other_leg = other.uuid
            leg.other_type = kind
            leg.bridged_at = leg.bridged_at or now
            leg.variables.update({
                "bridge_to": other.uuid, "last_bridge_to": other.uuid, "bridge_channel": other.name,
                "bridge_uuid": other.uuid, "signal_bond": other.uuid,
            })
            leg.state = ChannelState.CS_EXCHANGE_MEDIA
            leg.note(now, "bridge", other.uuid)
            session = self.sessions.get(leg.uuid)
            if session is not None and session.parked:
                session.request_unpark()
        if via_app == "uuid_bridge":
            # FreeSWITCH ends park first (EXECUTE_COMPLETE park), then announces the bridge.
            self.spawn(self._announce_bridge, a, b, via_app)
        else:
            self._announce_bridge(a, b, via_app)

    def _announce_bridge(self, a: Channel, b: Channel, via_app: str) -> None:
        if via_app == "uuid_bridge":
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and any(
                    (s := self.sessions.get(leg.uuid)) is not None and s.parked for leg in (a, b)):
                gevent.sleep(0.001)
            if a.bridged_to != b.uuid or not (a.alive and b.alive):
                return
            for leg, other in ((a, b), (b, a)):
                self.fire_channel("CHANNEL_EXECUTE", leg, [("Application", "uuid_bridge"),
                                                           ("Application-Data", other.uuid)])
        self.fire_channel("CHANNEL_BRIDGE", a, first=[("Bridge-A-Unique-ID", a.uuid),
                                                      ("Bridge-B-Unique-ID", b.uuid)])
        for leg in (a, b):
            plan = (self.sessions[leg.uuid].party if leg.uuid in self.sessions else None)
            if plan is not None:
                self.spawn(self._party_talk, leg, plan, leg.bridged_at)
            self._poke(leg)

    def unbridge(self, a: Channel, b: Channel) -> None:
        if a.bridged_to != b.uuid:
            return
        first = a if a.other_type == "originatee" else b
        second = b if first is a else a
        a.bridged_to = None
        b.bridged_to = None
        self.fire_channel("CHANNEL_UNBRIDGE", first, first=[("Bridge-A-Unique-ID", first.uuid),
                                                            ("Bridge-B-Unique-ID", second.uuid)])
        now = self.clock.now()
        a.note(now, "unbridge", b.uuid)
        b.note(now, "unbridge", a.uuid)
        self._poke(a)
        self._poke(b)

    def after_bridge(self, ch: Channel) -> None:
        """The other side of a bridge went away: what this leg does next."""
        if not ch.alive:
            return
        session = self.sessions.get(ch.uuid)
        if session is None:
            return
        if session.in_bridge_app:
            session.poke()  # the bridge app returns and the dialplan continues
            return
        if ch.variables.get("park_after_bridge") == "true":
            session.apps.appendleft(("park", ""))
            session.poke()
            return
        if session.listener is not None and ch.controlled:
            session.poke()
            return
        self.hangup(ch, "NORMAL_CLEARING")

    def transfer(self, ch: Channel, destination: str, dialplan: str = "XML", context: str = "default") -> None:
        if dialplan.lower() == "inline":
            steps = []
            for part in destination.split(","):
                app, _, arg = part.partition(":")
                steps.append((app.strip(), arg))
        else:
            steps = self.route(ch, destination)
            ch.destination = destination
        partner = self.find(ch.bridged_to)
        if partner is not None:
            self.unbridge(ch, partner)
            self.after_bridge(partner)
        ch.note(self.clock.now(), "transfer", destination)
        session = self.sessions.get(ch.uuid)
        if session is not None:
            session.holding = False
            session.request_transfer(steps)

    # -- originate ----------------------------------------------------------------
    def originate_command(self, arg: str) -> str:
        """``api originate`` / ``bgapi originate``: returns the api reply text."""
        parts = split_args(arg or "")
        if len(parts) < 2:
            return ORIGINATE_USAGE
        try:
            ds = parse_dialstring(parts[0])
        except DialStringError as err:
            logger.info("sim originate: bad dial string %r: %s", parts[0], err)
            return "-ERR INVALID_NUMBER_FORMAT\n"
        target = unquote_arg(parts[1])
        app = parse_app(target)
        context = parts[3] if len(parts) > 3 else "default"
        cid_name = unquote_arg(parts[4]) if len(parts) > 4 else None
        cid_num = unquote_arg(parts[5]) if len(parts) > 5 else None
        timeout = None
        if len(parts) > 6:
            try:
                timeout = float(parts[6])
            except ValueError:
                return ORIGINATE_USAGE
        if cid_name:
            ds.global_vars.setdefault("origination_caller_id_name", cid_name)
        if cid_num:
            ds.global_vars.setdefault("origination_caller_id_number", cid_num)
        if timeout is not None:
            ds.global_vars.setdefault("originate_timeout", str(timeout))
        try:
            ch = self.originate_legs(ds)
        except OriginateError as err:
            return f"-ERR {err.cause}\n"
        session = self.sessions.get(ch.uuid)
        if session is not None:
            if app is not None:
                session.apps.append(app)
            else:
                ch.context = context
                session.apps.extend(self.route(ch, target))
            session.holding = False
            session.poke()
        return f"+OK {ch.uuid}\n"

    def originate_legs(self, ds: DialString, *, originator: Channel | None = None) -> Channel:
        last = "NORMAL_TEMPORARY_FAILURE"
        for i, leg in enumerate(ds.legs):
            variables = dict(ds.global_vars)
            variables.update(leg.variables)
            if i > 0:
                variables.pop("origination_uuid", None)
            try:
                return self.originate_leg(leg, variables, originator=originator)
            except OriginateError as err:
                last = err.cause
        raise OriginateError(last)

    def originate_leg(self, ep: Endpoint, variables: dict[str, str], *, originator: Channel | None = None) -> Channel:
        kind = ep.kind
        rest = ep.url.split("/", 1)[1] if "/" in ep.url else ""
        if kind == "error":
            raise OriginateError(rest.upper() or "NORMAL_TEMPORARY_FAILURE")
        uid = variables.get("origination_uuid")
        if uid and uid in self.channels:
            raise OriginateError("NORMAL_TEMPORARY_FAILURE")
        if len(self.channels) >= self.config.max_sessions:
            raise OriginateError("SWITCH_CONGESTION")
        cid_num = variables.get("origination_caller_id_number", "0000000000")
        cid_name = variables.get("origination_caller_id_name", "FreeSWITCH")
        if kind == "loopback":
            return self._originate_loopback(rest, variables, uid, cid_num, cid_name, originator)
        if kind == "user":
            ext = rest.split("@", 1)[0]
            user = self.users.get(ext)
            if user is None:
                raise OriginateError("SUBSCRIBER_ABSENT")
            if not user.registered:
                raise OriginateError("USER_NOT_REGISTERED")
            plan = self._scripted(ext) or PartyPlan(
                outcome="busy" if user.busy else "answer", ring_s=user.answer_after_s, talk_s=None,
                dtmf=user.dtmf)
            name, number = f"sofia/internal/{ext}@sim", ext
        elif kind == "sofia":
            bits = rest.split("/")
            if bits[0] == "gateway":
                if len(bits) < 3:
                    raise OriginateError("INVALID_GATEWAY")
                gw, number = bits[1], "/".join(bits[2:])
                if self.config.gateways and gw not in self.config.gateways:
                    raise OriginateError("INVALID_GATEWAY")
            elif len(bits) >= 2:
                number = "/".join(bits[1:]).split("@", 1)[0]
            else:
                raise OriginateError("INVALID_URL")
            name = f"sofia/external/{number}"
            plan = self._plan_for(number, variables)
        else:
            raise OriginateError("CHAN_NOT_IMPLEMENTED")
        ch = self.new_channel(name, "outbound", number, uuid=uid, caller_id_number=cid_num, caller_id_name=cid_name)
        self._apply_vars(ch, variables, ep.kind)
        ch.outcome = plan.outcome
        ch.pending_dtmf = plan.dtmf
        if originator is not None:
            ch.other_leg, ch.other_type = originator.uuid, "originator"
        self.fire_channel("CHANNEL_OUTGOING", ch, variables=False, state_name="CS_NONE", state_number=1)
        ch.state = ChannelState.CS_INIT
        self.fire_channel("CHANNEL_CREATE", ch, state_number=2)
        ch.state = ChannelState.CS_ROUTING
        logger.info("sim originate %s to %s: %s (ring %.1fs)", ch.uuid, number, plan.outcome, plan.ring_s)
        self.sessions[ch.uuid].party = plan
        return self._ring(ch, plan, variables)

    def _apply_vars(self, ch: Channel, variables: Mapping[str, str], endpoint: str) -> None:
        for k, v in variables.items():
            try:
                ch.set_var(k, v)
            except ValueError:
                logger.warning("sim originate %s: ignoring bad variable name %r", ch.uuid, k)
        if "origination_uuid" in variables:
            ch.variables["origination_uuid"] = ch.uuid
        ch.variables["originate_early_media"] = "true"
        ch.variables["originate_endpoint"] = endpoint

    def _scripted(self, number: str) -> PartyPlan | None:
        queue = self.scripts.get(_norm(number))
        if queue:
            plan = queue.popleft()
            if not queue:
                del self.scripts[_norm(number)]
            return plan
        return None

    def _plan_for(self, number: str, variables: Mapping[str, str]) -> PartyPlan:
        plan = self._scripted(number)
        if plan is not None:
            return plan
        if "sim_outcome" in variables:  # per-call override, handy for tests
            outcome = variables["sim_outcome"]
            return PartyPlan(outcome=outcome if outcome in OUTCOMES else "failed",
                             ring_s=float(variables.get("sim_ring_s", 1.0)),
                             talk_s=float(variables.get("sim_talk_s", 30.0)),
                             patience_s=float(variables.get("sim_talk_s", 30.0))
                             if outcome == "hangup_while_waiting" else None,
                             dtmf=variables.get("sim_dtmf", ""))
        rule = self.config.rule_for(number)
        outcome = rule.pick_outcome(self.rng)
        talk = rule.machine_talk.sample(self.rng) if outcome == "machine" else rule.talk.sample(self.rng)
        patience = rule.patience.sample(self.rng) if rule.patience is not None else None
        if outcome == "hangup_while_waiting" and patience is None:
            patience = min(talk, 5.0)
        return PartyPlan(outcome=outcome, ring_s=rule.ring.sample(self.rng), talk_s=talk, patience_s=patience,
                         cause=rule.fail_cause if outcome == "failed" else None, early_media=rule.early_media,
                         dtmf=rule.dtmf)

    def _wait_on(self, ch: Channel, sim_seconds: float, done) -> bool:
        """Wait until done() or the time passes or the channel hangs up; True if done()."""
        waiter = GEvent()
        waiters = ch.__dict__.setdefault("_waiters", [])
        waiters.append(waiter)
        try:
            deadline = time.monotonic() + self.clock.real(sim_seconds)
            while True:
                if done():
                    return True
                if not ch.alive:
                    return False
                remaining = deadline - time.monotonic()
                if remaining <= 0:
                    return False
                waiter.clear()
                waiter.wait(remaining)
        finally:
            waiters.remove(waiter)

    def _ring(self, ch: Channel, plan: PartyPlan, variables: Mapping[str, str]) -> Channel:
        timeout = _float(variables.get("originate_timeout") or variables.get("leg_timeout"), 60.0)
        ignore_early = variables.get("ignore_early_media", "false").lower() == "true"
        self._wait_on(ch, 0.02, lambda: False)  # a moment for INVITE/180
        if not ch.alive:
            raise OriginateError(ch.hangup_cause or "ORIGINATOR_CANCEL")
        self.progress(ch, media=plan.early_media)
        if plan.early_media and not ignore_early and plan.outcome in ("answer", "machine", "hangup_while_waiting"):
            self.spawn(self._delayed_answer, ch, plan, timeout)
            return ch  # early media counts as success for originate
        if plan.outcome in ("answer", "machine", "hangup_while_waiting"):
            if plan.ring_s <= timeout:
                self._wait_on(ch, plan.ring_s, lambda: ch.answered)
                if ch.alive:
                    self._answer_party(ch, plan)
                    return ch
            else:
                self._wait_on(ch, timeout, lambda: ch.answered)
                if ch.alive and ch.answered:
                    return ch
                self.hangup(ch, "NO_ANSWER")
            raise OriginateError(ch.hangup_cause or "NO_ANSWER")
        wait = timeout if plan.outcome == "no_answer" else min(plan.ring_s, timeout)
        self._wait_on(ch, wait, lambda: ch.answered)
        if ch.alive and ch.answered:  # uuid_answer'd from outside
            return ch
        cause = plan.cause or DEFAULT_FAIL_CAUSE.get(plan.outcome, "NORMAL_TEMPORARY_FAILURE")
        if plan.outcome != "no_answer" and plan.ring_s > timeout:
            cause = "NO_ANSWER"
        self.hangup(ch, cause)
        raise OriginateError(ch.hangup_cause or cause)

    def _delayed_answer(self, ch: Channel, plan: PartyPlan, timeout: float) -> None:
        if self._wait_on(ch, min(plan.ring_s, timeout), lambda: ch.answered) or not ch.alive:
            return
        if plan.ring_s > timeout:
            self.hangup(ch, "NO_ANSWER")
            return
        self._answer_party(ch, plan)

    def _answer_party(self, ch: Channel, plan: PartyPlan) -> None:
        ch.variables["sim_party"] = "machine" if plan.outcome == "machine" else "human"
        self.answer(ch)
        self.spawn(self._party_talk, ch, plan, None)

    def _party_talk(self, ch: Channel, plan: PartyPlan, bridged_at: float | None) -> None:
        """The far end hangs up: after talk_s (from the bridge, if any), or out of patience."""
        if plan.outcome == "machine":
            if bridged_at is None and plan.talk_s is not None:
                if not self._wait_on(ch, plan.talk_s, lambda: False) and ch.alive:
                    self.hangup(ch, "NORMAL_CLEARING")
            return
        if bridged_at is not None:
            if plan.talk_s is None:
                return
            started = ch.bridged_at
            self._wait_on(ch, plan.talk_s, lambda: ch.bridged_at != started)
            if ch.alive and ch.bridged_at == started:
                self.hangup(ch, "NORMAL_CLEARING")
            return
        if plan.patience_s is not None:
            # Answered and left waiting (parked, no agent): the person gives up.  An
            # application talking to them (IVR, playback) keeps them on the line.
            self._wait_on(ch, plan.patience_s, lambda: ch.bridged_at is not None)
            if ch.bridged_at is not None or not ch.alive:
                return
            if ch.current_app in (None, "park") or plan.outcome == "hangup_while_waiting":
                ch.note(self.clock.now(), "abandon")
                self.hangup(ch, "NORMAL_CLEARING")
                return
        if plan.talk_s is None:
            return
        answered = ch.answered_at or self.clock.now()
        remaining = plan.talk_s - (self.clock.now() - answered)
        self._wait_on(ch, remaining, lambda: ch.bridged_at is not None)
        if ch.alive and ch.bridged_at is None:
            self.hangup(ch, "NORMAL_CLEARING")

    def _caller_patience(self, ch: Channel, plan: PartyPlan) -> None:
        if plan.patience_s is None:
            return
        self._wait_on(ch, plan.patience_s, lambda: ch.bridged_at is not None)
        if ch.alive and ch.bridged_at is None:
            ch.note(self.clock.now(), "caller_gave_up")
            self.hangup(ch, "ORIGINATOR_CANCEL" if not ch.answered else "NORMAL_CLEARING")

    def _originate_loopback(self, ext: str, variables: dict[str, str], uid: str | None, cid_num: str,
                            cid_name: str, originator: Channel | None) -> Channel:
        a = self.new_channel(f"loopback/{ext}-a", "outbound", ext, uuid=uid, caller_id_number=cid_num,
                             caller_id_name=cid_name, source="mod_loopback")
        self._apply_vars(a, variables, "loopback")
        b = self.new_channel(f"loopback/{ext}-b", "inbound", ext, caller_id_number=cid_num,
                             caller_id_name=cid_name, source="mod_loopback")
        b.hit_dialplan = True
        for k, v in variables.items():
            if k in a.variables:  # names a accepted (valid)
                b.variables.setdefault(k, v)
        a.loopback_peer, b.loopback_peer = b.uuid, a.uuid
        a.variables.update({"other_loopback_leg_uuid": b.uuid, "loopback_leg": "A", "is_loopback": "1"})
        b.variables.update({"other_loopback_leg_uuid": a.uuid, "loopback_leg": "B", "is_loopback": "1"})
        if originator is not None:
            a.other_leg, a.other_type = originator.uuid, "originator"
        self.fire_channel("CHANNEL_OUTGOING", a, variables=False, state_name="CS_NONE", state_number=1)
        for leg in (a, b):
            leg.state = ChannelState.CS_INIT
            self.fire_channel("CHANNEL_CREATE", leg, state_number=2)
            leg.state = ChannelState.CS_EXECUTE
        bs = self.sessions[b.uuid]
        bs.holding = False
        bs.apps.extend(self.route(b, ext))
        bs.poke()
        timeout = _float(variables.get("originate_timeout"), 60.0)
        ignore_early = variables.get("ignore_early_media", "false").lower() == "true"
        self._wait_on(a, timeout, lambda: a.answered or (a.progress_media_at is not None and not ignore_early))
        if a.alive and (a.answered or (a.progress_media_at is not None and not ignore_early)):
            return a
        if a.alive:
            self.hangup(a, "NO_ANSWER")
        raise OriginateError(a.hangup_cause or "NO_ANSWER")

    # -- inbound callers ------------------------------------------------------------
    def _inbound_arrivals(self) -> None:
        inb = self.config.inbound
        rate = inb.rate_per_minute / 60.0
        n = 0
        while True:
            gevent.sleep(self.clock.real(self.rng.expovariate(rate)))
            n += 1
            caller = f"{inb.caller_id_prefix}{n % 10000:04d}"
            try:
                self.inbound_call(inb.destination, caller, dtmf=inb.dtmf)
            except Exception:  # keep arrivals going; one bad call must not stop the model
                logger.exception("sim inbound arrival failed")

    # -- messages ----------------------------------------------------------------------
    def queue_message(self, uuid: str, message: Message) -> bool:
        session = self.sessions.get(uuid)
        if session is None or not session.ch.alive:
            return False
        session.queue(message)
        return True


def _norm(number: str) -> str:
    return number.strip().lstrip("+")


def _float(value: str | None, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default


def _uptime_text(seconds: float) -> str:
    s = int(seconds)
    return (f"0 years, {s // 86400} days, {s // 3600 % 24} hours, {s // 60 % 60} minutes, {s % 60} seconds, "
            f"{int(seconds * 1000) % 1000} milliseconds, 0 microseconds")

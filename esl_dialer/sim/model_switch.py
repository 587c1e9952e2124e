"""The switch model: channels, events, hang-up (layer ``model_``).

Bridging is :mod:`.model_bridge`, originate and the call model
:mod:`.model_originate` (mixins of :class:`SwitchCore`).

Everything runs in gevent greenlets of the calling process.  Above this layer
are the api commands (:mod:`.cmd_api`) and the event-socket connections
(``wire_*``); below it the channels and their applications (``chan_*``).
:class:`~esl_dialer.sim.simulator.SimSwitch` assembles them.
"""
from __future__ import annotations

import collections
import logging
import random
import time
from typing import Any, Iterable, Mapping

import gevent
from gevent.event import Event as GEvent
from gevent.pool import Group

from .chan_apps import AppRunner
from .chan_channel import (
    CALLSTATE_NUMBER,
    CallState,
    Channel,
    ChannelState,
    HeaderFactory,
    SimClock,
    channel_headers,
    codec_headers,
    new_uuid,
)
from .config import OUTCOMES, SimConfig, UserPhone
from .events import CHANNEL_ID_LOG, CHANNEL_ID_SESSION, SimEvent, SimLogLine
from .chan_session import Message, Session
from .model_bridge import BridgeMixin
from .model_originate import OriginateMixin, _norm
from .plans import OriginateError, PartyPlan

logger = logging.getLogger(__name__)

# the write-codec CODEC event's origin (the read one's is chan_channel.BASE_CALLING's)
_WRITE_CODEC_SITE = {"Event-Calling-Function": ("Event-Calling-Function", "switch_core_session_set_write_codec"),
                     "Event-Calling-Line-Number": ("Event-Calling-Line-Number", "450")}
GONE_KEEP = 1000  # finished channels kept for Other-Leg-* headers of their partners


class SwitchCore(BridgeMixin, OriginateMixin):
    """The switch model: channels, events, bridge, hang-up (no sockets, no command parsing)."""

    def __init__(self, config: SimConfig | None = None, host: str | None = None, port: int | None = None,
                 password: str | None = None) -> None:
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
        # every channel ever created, newest last; bounded so a long-running sim does not grow forever
        self.history: list[Channel] = []
        self.listeners: set = set()
        self.users: dict[str, UserPhone] = dict(self.config.users)
        self._dialplan: dict[str, list[tuple[str, str]]] = {
            k: list(v) for k, v in self.config.dialplan.items()
        }
        self.scripts: dict[str, collections.deque[PartyPlan]] = {}
        self.eavesdroppers: dict[str, set[str]] = {}  # target uuid -> uuids listening in
        self._gone: collections.OrderedDict[str, Channel] = collections.OrderedDict()
        self._unbridging: set[str] = set()  # legs whose uuid_bridge is being torn down
        self.apps = AppRunner(self)
        self.group = Group()
        self.started_at = time.time()
        self.session_count = 0
        self.peak = 0
        self._server = None
        self._session_ids = 0
        self.stopped = GEvent()
        self._sps_second: int | None = None  # the simulated second the session-rate counter is for
        self._sps_left = self.config.sessions_per_second
        self.throttled = 0  # sessions refused by the rate or session limit

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

    def start(self) -> "SwitchCore":
        """Start the switch's own greenlets (heartbeat, inbound arrivals); the server is the top layer's."""
        self.spawn(self._heartbeat_loop)
        if self.config.inbound.rate_per_minute > 0:
            self.spawn(self._inbound_arrivals)
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
                     variables: Mapping[str, str] | None = None, caller_id_name: str = "") -> str:
        """A caller arriving from the network at ``destination`` in the dialplan.

        Raises OriginateError when the switch refuses the session (over the session rate or limit).
        """
        self.admit_session()
        ch = self.new_channel(f"sofia/external/{caller_id}@sim", "inbound", destination,
                              caller_id_number=caller_id, caller_id_name=caller_id_name)
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
        self.start_inbound(ch)
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
        other = (self.channels.get(ch.other_leg) or self._gone.get(ch.other_leg)) if ch.other_leg else None
        first, extra = list(first), list(extra)
        base = self.headers.base(name)
        headers = base + first + channel_headers(ch, other=other, variables=variables, state_name=state_name,
                                                 state_number=state_number) + extra
        event = SimEvent(name, headers, None, None, ch.uuid)
        for listener in list(self.listeners):
            listener.offer(event)
        return event

    def log(self, level: int, file: str, func: str, line: int, text: str, *, uuid: str = "",
            channel: int = CHANNEL_ID_SESSION) -> None:
        """switch_log_printf: give one log line to every listener that asked for ``log`` at that level.

        The channel code calls it for what FreeSWITCH logs at NOTICE/INFO (new
        channel, routing, EXECUTE, answer, hang-up, end); ``file``/``func``/
        ``line`` name the FreeSWITCH 1.10.12 source line that prints it.
        """
        takers = [lst for lst in self.listeners if getattr(lst, "log_level", -1) >= level]
        if not takers:
            return
        entry = SimLogLine(level, file, func, line, text, uuid=uuid, channel=channel, ts=self.clock.now())
        for listener in takers:
            listener.offer_log(entry)

    def fire_state(self, ch: Channel, state: ChannelState) -> None:
        ch.state = state
        self.fire_channel("CHANNEL_STATE", ch, variables=False)

    def fire_callstate(self, ch: Channel, state: CallState) -> None:
        """switch_channel_perform_set_callstate: CHANNEL_CALLSTATE on every change (no variables)."""
        old = ch.call_state
        if old == state:
            return
        ch.call_state = state
        self.fire_channel("CHANNEL_CALLSTATE", ch, variables=False, first=[
            ("Original-Channel-Call-State", old.value),
            ("Channel-Call-State-Number", str(CALLSTATE_NUMBER[state.value]))])

    def fire_codecs(self, ch: Channel, uuid: str | None = None) -> None:
        """The two CODEC events of a new channel (read, then write codec), under its first uuid."""
        for write in (False, True):
            if not any(listener.may_want("CODEC") for listener in self.listeners):
                self.headers.sequence += 1
                continue
            base = self.headers.base("CODEC")
            if write:
                base = [_WRITE_CODEC_SITE.get(k, (k, v)) for k, v in base]
            event = SimEvent("CODEC", base + codec_headers(ch, uuid or ch.uuid, write), None, None, uuid or ch.uuid)
            for listener in list(self.listeners):
                listener.offer(event)

    def start_inbound(self, ch: Channel) -> None:
        """switch_core_session_run of an inbound channel: CS_INIT, CHANNEL_CREATE, then CS_ROUTING, whose
        switch_channel_perform_set_running_state first sets callstate RINGING (CHANNEL_CALLSTATE)."""
        self.fire_state(ch, ChannelState.CS_INIT)
        self.fire_channel("CHANNEL_CREATE", ch, state_number=2)
        ch.state = ChannelState.CS_ROUTING
        self.fire_callstate(ch, CallState.RINGING)
        self.fire_channel("CHANNEL_STATE", ch, variables=False)

    def enter_execute(self, ch: Channel) -> None:
        """An application starts on a channel not yet executing: CHANNEL_STATE CS_EXECUTE."""
        if ch.state in (ChannelState.CS_NEW, ChannelState.CS_INIT, ChannelState.CS_ROUTING,
                        ChannelState.CS_CONSUME_MEDIA):
            self.fire_state(ch, ChannelState.CS_EXECUTE)

    def flip_cid(self, ch: Channel) -> None:
        """switch_channel_flip_cid on an originated leg once it is up: CALL_UPDATE (Direction RECV)."""
        if ch.variables.get("channel_cid_flipped") == "yes":
            return
        ch.flip_cid()
        self.fire_channel("CALL_UPDATE", ch, first=[("Direction", "RECV")])

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
    def admit_session(self) -> None:
        """switch_core_session_request_uuid's limits, for each session an originate or a caller creates.

        The session rate: ``sps = --runtime.sps; if (sps <= 0) fail`` with the counter reset to
        ``sessions-per-second`` once a second (switch_time.c), so at most sps - 1 new sessions
        a second get through (29 with the default 30); then the session limit.  A refused
        session makes the endpoint fail with DESTINATION_OUT_OF_ORDER (sofia_outgoing_channel's
        cause when the request returns NULL).  Seconds are simulated seconds (``time_scale``).
        """
        second = int(self.clock.now())
        if second != self._sps_second:
            if self._sps_left <= 0 and self._sps_second is not None:
                logger.warning("sim: Over Session Rate of %d!", self.config.sessions_per_second)
            self._sps_second, self._sps_left = second, self.config.sessions_per_second
        self._sps_left -= 1
        if self._sps_left <= 0:
            self.throttled += 1
            logger.warning("sim: Throttle Error! %d", len(self.channels))
            raise OriginateError("DESTINATION_OUT_OF_ORDER")
        if len(self.channels) + 1 > self.config.max_sessions:
            self.throttled += 1
            logger.warning("sim: Over Session Limit! %d", self.config.max_sessions)
            raise OriginateError("DESTINATION_OUT_OF_ORDER")

    def find(self, uuid: str | None) -> Channel | None:
        return self.channels.get(uuid) if uuid else None

    def new_channel(self, name: str, direction: str, destination: str, *, uuid: str | None = None,
                    caller_id_number: str = "0000000000", caller_id_name: str = "",
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
        codec = "L16" if source == "mod_loopback" else "PCMU"
        ch.variables.update({"read_codec": codec, "read_rate": "8000", "write_codec": codec, "write_rate": "8000"})
        self.channels[uid] = ch
        self.history.append(ch)
        limit = self.config.history_limit
        if len(self.history) > limit + max(1, limit // 10):  # trim in batches: amortised O(1), still a list
            del self.history[: len(self.history) - limit]
        self.peak = max(self.peak, len(self.channels))
        session = Session(self, ch)
        self.sessions[uid] = session
        session.start()
        ch.note(ch.created, "create", name)
        self.log(5, "switch_channel.c", "switch_channel_set_name", 1142, f"New Channel {name} [{uid}]", uuid=uid)
        return ch

    def route(self, ch: Channel, destination: str) -> list[tuple[str, str]]:
        """Dialplan lookup; unknown destinations hang up NO_ROUTE_DESTINATION."""
        steps = self._dialplan.get(destination)
        self.log(6, "mod_dialplan_xml.c", "dialplan_hunt", 639,
                 f"Processing {ch.caller_id_name} <{ch.caller_id_number}>->{destination} in context default",
                 uuid=ch.uuid)
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
            self.fire_channel("CHANNEL_PROGRESS", ch)
            self.fire_callstate(ch, CallState.RINGING)
        if media and ch.progress_media_at is None:
            ch.progress_media_at = now
            ch.answer_state = "early"
            self.fire_channel("CHANNEL_PROGRESS_MEDIA", ch)
            self.fire_callstate(ch, CallState.EARLY)
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
        self.fire_callstate(ch, CallState.ACTIVE)
        ch.note(ch.answered_at, "answer")
        self.log(5, *_answer_site(ch), f"Channel [{ch.name}] has been answered", uuid=ch.uuid, channel=CHANNEL_ID_LOG)
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
        partner = self.find(ch.bridged_to)
        if partner is not None and ch.bridged_by == "uuid_bridge" and ch.uuid not in self._unbridging:
            # the leg whose hang-up ends a uuid_bridge records its role; the other why it ended (e_timing)
            ch.variables["last_bridge_role"] = "originator" if ch.other_type == "originatee" else "originatee"
            partner.variables["last_bridge_hangup_cause"] = cause
        self.log(5, *_hangup_site(ch, self.find(ch.loopback_peer)),
                 f"Hangup {ch.name} [{ch.state.name}] [{cause}]", uuid=ch.uuid, channel=CHANNEL_ID_LOG)
        self.fire_channel("CHANNEL_HANGUP", ch, state_number=ChannelState.CS_HANGUP.value)
        logger.info("sim call %s (%s) hung up: %s", ch.uuid, ch.name, cause)
        session = self.sessions.get(ch.uuid)
        if session:
            session.request_hangup()
        self._poke(ch)
        if partner is not None and ch.bridged_by == "uuid_bridge":
            if ch.uuid not in self._unbridging:
                self._unbridging.update((ch.uuid, partner.uuid))
                if session is not None:
                    session.finish_gate = GEvent()  # this leg reports HANGUP_COMPLETE when the sequence allows
                self.spawn(self._end_uuid_bridge, ch, partner, time.monotonic())
        elif partner is not None:
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
        self.fire_callstate(ch, CallState.HANGUP)
        ch.state = ChannelState.CS_REPORTING
        self.fire_channel("CHANNEL_STATE", ch, variables=False)
        ch.set_hangup_variables()
        if ch.loopback_peer:
            ch.variables["is_loopback"] = "1"  # mod_loopback's, seen only from CHANNEL_HANGUP_COMPLETE on
        self.fire_channel("CHANNEL_HANGUP_COMPLETE", ch, first=[("Hangup-Cause", ch.hangup_cause or "")])
        if session.listener is not None:
            session.listener.channel_gone(ch)
            session.listener = None
        # e_timing: CHANNEL_DESTROY still says CS_REPORTING (number 12) and carries the variables;
        # CHANNEL_STATE CS_DESTROY follows
        self.fire_channel("CHANNEL_DESTROY", ch, state_number=ChannelState.CS_DESTROY.value)
        ch.state = ChannelState.CS_DESTROY
        self.fire_channel("CHANNEL_STATE", ch, variables=False)
        self.log(5, "switch_core_session.c", "switch_core_session_thread", 1762,
                 f"Session {ch.session_id} ({ch.name}) Ended", uuid=ch.uuid)
        self.log(5, "switch_core_session.c", "switch_core_session_thread", 1766,
                 f"Close Channel {ch.name} [CS_DESTROY]", uuid=ch.uuid, channel=CHANNEL_ID_LOG)
        self.channels.pop(ch.uuid, None)
        self.sessions.pop(ch.uuid, None)
        self._gone[ch.uuid] = ch  # a partner's later events still carry Other-Leg-* of this leg
        if len(self._gone) > GONE_KEEP:
            self._gone.popitem(last=False)


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
            except OriginateError as err:
                logger.warning("sim inbound caller %s refused: %s", caller, err.cause)
            except Exception:  # keep arrivals going; one bad call must not stop the model
                logger.exception("sim inbound arrival failed")

    # -- messages ----------------------------------------------------------------------
    def queue_message(self, uuid: str, message: Message) -> bool:
        session = self.sessions.get(uuid)
        if session is None or not session.ch.alive:
            return False
        session.queue(message)
        return True


def _answer_site(ch: Channel) -> tuple[str, str, int]:
    """Where "Channel [...] has been answered" is logged: switch_channel_perform_mark_answered
    (switch_channel.c:3883) prints its caller's place."""
    if ch.direction == "outbound" and ch.loopback_peer:
        return "mod_loopback.c", "channel_receive_message", 1021
    if ch.direction == "outbound":  # the far end's 200 OK (sofia.c, after early media or not)
        return "sofia.c", "sofia_handle_sip_i_state", 8623 if ch.progress_media_at is not None else 8681
    return "mod_dptools.c", "answer_function", 1406


def _hangup_site(ch: Channel, peer: Channel | None) -> tuple[str, str, int]:
    """Where FreeSWITCH logs "Hangup ...": switch_channel_perform_hangup (switch_channel.c:3424)
    prints its caller's file, function and line; the e_timing capture shows these two callers."""
    if ch.current_app == "hangup":
        return "mod_dptools.c", "hangup_function", 1374
    if peer is not None and not peer.alive:  # mod_loopback: the partner leg went down first
        return "mod_loopback.c", "channel_on_hangup", 585
    return "switch_channel.c", "switch_channel_perform_hangup", 3424


def _uptime_text(seconds: float) -> str:
    s = int(seconds)
    return (f"0 years, {s // 86400} days, {s // 3600 % 24} hours, {s // 60 % 60} minutes, {s % 60} seconds, "
            f"{int(seconds * 1000) % 1000} milliseconds, 0 microseconds")

"""Bridging two channels and ending a bridge (a mixin of :class:`~.model_switch.SwitchCore`, layer ``model_``).

``uuid_bridge`` follows FreeSWITCH 1.10's order and timing (``config.timing``,
see :mod:`.timing`): the reply first, CHANNEL_UNPARK one media step later,
CHANNEL_BRIDGE (on the first leg only) three steps later; a hung-up leg's
partner follows one step later.  The ``bridge`` application bridges at once.
``self`` is the switch: channels, sessions, events, clock, spawn.
"""
from __future__ import annotations

import time

import gevent

from .chan_channel import Channel, ChannelState, new_uuid


class BridgeMixin:
    """Bridge, unbridge and what a leg does after its bridge ended."""

    def sleep_until_ms(self, start: float, ms: float) -> None:
        """Wait until ``ms`` simulated milliseconds after the monotonic time ``start`` (no drift from work done)."""
        remaining = start + self.clock.real(ms / 1000.0) - time.monotonic()
        if remaining > 0:
            gevent.sleep(remaining)

    def media_delay_s(self, ch: Channel) -> float:
        """Simulated seconds from uuid_broadcast to the playback starting on ``ch`` (e_timing)."""
        t = self.config.timing
        if ch.bridge_pending:
            return t.seconds("broadcast_lost_ms")
        parked = t.seconds("broadcast_parked_ms")
        if ch.bridged_to:
            # Sent right after CHANNEL_BRIDGE (1-2 ms) a broadcast started after 361/381 ms (e_timing);
            # sent 440 ms after the bridge, after the parked leg's 201 ms (a_inbound).  Two points
            # only: the sim takes the bridged delay while the bridge is younger than the parked
            # delay (200 ms), the parked delay after that (an assumption, docs/30).
            bridged = t.seconds("broadcast_bridged_a_ms" if ch.other_type == "originatee" else "broadcast_bridged_b_ms")
            age = self.clock.now() - ch.media_bridged_at if ch.media_bridged_at is not None else 0.0
            return bridged if age < parked else parked
        return parked

    def _end_uuid_bridge(self, gone: Channel, other: Channel, start: float) -> None:
        """One leg of a uuid_bridge hung up: the order of FreeSWITCH 1.10 (e_timing, README).

        Killing A (first uuid): A HANGUP, B HANGUP, B HANGUP_COMPLETE, A UNBRIDGE, A HANGUP_COMPLETE.
        Killing B: B HANGUP, A UNBRIDGE, A HANGUP, A HANGUP_COMPLETE, B HANGUP_COMPLETE.
        The other leg follows one media step later, with NORMAL_CLEARING.
        """
        a, b = (gone, other) if gone.other_type == "originatee" else (other, gone)
        try:
            self.sleep_until_ms(start, self.config.timing.hangup_other_leg_ms)
            for leg in (a, b):
                leg.variables.pop("bridge_to", None)  # the bridge is over; last_bridge_to stays
            if gone is a:
                if b.bridged_to == a.uuid:
                    self.after_bridge(b)  # B hangs up (or parks / returns to its socket)
                    b_session = self.sessions.get(b.uuid)
                    if not b.alive and b_session is not None:
                        b_session.done.wait(timeout=2.0)
                self.unbridge(a, b)
            else:
                self.unbridge(a, b)
                if a.alive:
                    self.fire_state(a, ChannelState.CS_EXECUTE)
                    a_session = self.sessions.get(a.uuid)
                    self.after_bridge(a)
                    if not a.alive and a_session is not None:
                        a_session.done.wait(timeout=2.0)
        finally:
            self._unbridging.discard(a.uuid)
            self._unbridging.discard(b.uuid)
            gone_session = self.sessions.get(gone.uuid)
            if gone_session is not None and gone_session.finish_gate is not None:
                gone_session.finish_gate.set()

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
            leg.bridged_by = via_app
            leg.bridge_pending = via_app == "uuid_bridge" and self.config.timing.delayed
            leg.variables.update({"bridge_channel": other.name, "bridge_uuid": other.uuid, "signal_bond": other.uuid})
            if via_app != "uuid_bridge":
                leg.bridged_at = leg.bridged_at or now
                leg.media_bridged_at = now
                leg.variables.update({"bridge_to": other.uuid, "last_bridge_to": other.uuid})
            else:
                # uuid_bridge transfers both legs: FreeSWITCH records it in the profile and variables
                source = f"{int(now)}:{new_uuid()}:uuid_br:{other.uuid}"
                leg.transfer_source = source
                leg.variables.update({
                    "original_destination_number": leg.destination,
                    "original_caller_id_name": leg.caller_id_name,
                    "original_caller_id_number": leg.caller_id_number,
                    "transfer_history": source, "transfer_source": source,
                })
            leg.note(now, "bridge", other.uuid)
            if via_app != "uuid_bridge":
                leg.state = ChannelState.CS_EXCHANGE_MEDIA
        if via_app == "uuid_bridge":
            a.variables["uuid_bridge"] = b.uuid  # mod_commands records the partner on the first leg
            # The reply goes out first; park ends and the bridge is announced later (_uuid_bridge).
            self.spawn(self._uuid_bridge, a, b)
        else:
            self._announce_bridge(a, b, via_app)

    def _uuid_bridge(self, a: Channel, b: Channel) -> None:
        """After the +OK: the order and media steps of FreeSWITCH 1.10 (e_timing, README).

        Both legs: CHANNEL_UNPARK, EXECUTE_COMPLETE park, CS_HIBERNATE, CS_RESET
        (+20 ms); A: CS_SOFT_EXECUTE at once, B one step later; then (+60 ms)
        CHANNEL_EXECUTE uuid_bridge on both, CHANNEL_BRIDGE on A only, B
        CS_CONSUME_MEDIA and CS_EXCHANGE_MEDIA.  B's Channel-Call-UUID becomes A.
        """
        t = self.config.timing
        start = time.monotonic()
        try:
            self.sleep_until_ms(start, t.bridge_unpark_ms)
            if a.bridged_to != b.uuid or not (a.alive and b.alive):
                return
            for leg in (a, b):
                session = self.sessions.get(leg.uuid)
                if session is not None and session.parked:
                    session.request_unpark()
            deadline = time.monotonic() + 1.0
            while time.monotonic() < deadline and any(
                    (s := self.sessions.get(leg.uuid)) is not None and s.parked for leg in (a, b)):
                gevent.sleep(0.001)
            if a.bridged_to != b.uuid or not (a.alive and b.alive):
                return
            for state in (ChannelState.CS_HIBERNATE, ChannelState.CS_RESET, ChannelState.CS_SOFT_EXECUTE):
                self.fire_state(a, state)
            for state in (ChannelState.CS_HIBERNATE, ChannelState.CS_RESET):
                self.fire_state(b, state)
            complete = max(t.bridge_complete_ms, t.bridge_unpark_ms)
            self.sleep_until_ms(start, (t.bridge_unpark_ms + complete) / 2)
            if b.alive:
                self.fire_state(b, ChannelState.CS_SOFT_EXECUTE)
            self.sleep_until_ms(start, complete)
            if a.bridged_to != b.uuid or not (a.alive and b.alive):
                return
            a.variables.pop("uuid_bridge", None)  # on UNPARK, gone by CHANNEL_BRIDGE (e_timing)
            for leg, other in ((a, b), (b, a)):
                self.fire_channel("CHANNEL_EXECUTE", leg, [("Application", "uuid_bridge"),
                                                           ("Application-Data", other.uuid)])
            b.variables["call_uuid"] = a.uuid  # from the bridge on, B's events carry A as Channel-Call-UUID
            now = self.clock.now()
            for leg in (a, b):
                leg.bridged_at = leg.bridged_at or now
                leg.media_bridged_at = now
            self._announce_bridge(a, b, "uuid_bridge")
            for leg, other in ((a, b), (b, a)):  # set once the bridge runs (not yet on CHANNEL_BRIDGE)
                leg.variables.update({"bridge_to": other.uuid, "last_bridge_to": other.uuid})
            for state in (ChannelState.CS_CONSUME_MEDIA, ChannelState.CS_EXCHANGE_MEDIA):
                self.fire_state(b, state)
        finally:
            a.bridge_pending = b.bridge_pending = False

    def _announce_bridge(self, a: Channel, b: Channel, via_app: str) -> None:
        a.bridge_pending = b.bridge_pending = False
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
        a.bridge_pending = b.bridge_pending = False
        for leg in (a, b):
            leg.variables.pop("bridge_to", None)  # last_bridge_to stays
        if second.hangup_cause:  # the first leg's bridge thread records why the bridge ended
            first.variables["bridge_hangup_cause"] = second.hangup_cause
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

"""Originate and the call model's far ends (a mixin of :class:`~esl_dialer.sim.model_switch.SwitchCore`).

``originate <dial string> <&app()|extension>`` as mod_commands parses it,
endpoints user/, sofia/, loopback/ and error/, and what the simulated party
at the other end does (ring, answer, talk, hang up, give up waiting), taken
from a scripted plan or the seeded TOML model.
"""
from __future__ import annotations

import logging
import time
from typing import Mapping

from gevent.event import Event as GEvent

from .chan_channel import Channel, ChannelState, new_uuid
from .config import DEFAULT_FAIL_CAUSE, OUTCOMES
from .plans import OriginateError, PartyPlan
from .dialstring import DialString, DialStringError, Endpoint, parse_app, parse_dialstring, split_args, unquote_arg

logger = logging.getLogger(__name__)

ORIGINATE_USAGE = ("-USAGE: <call url> <exten>|&<application_name>(<app_args>) [<dialplan>] "
                   "[<context>] [<cid_name>] [<cid_num>] [<timeout_sec>]\n")


class OriginateMixin:
    """Originate logic; ``self`` is the SimSwitch (channels, events, clock, rng)."""

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
        self.flip_cid(ch)
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
        cid_num = variables.get("origination_caller_id_number", "0000000000")
        cid_name = variables.get("origination_caller_id_name", "")
        if kind == "loopback":
            return self._originate_loopback(rest, variables, uid, cid_num, cid_name, originator)
        if kind == "user":
            ext = rest.split("@", 1)[0]
            user = self.users.get(ext)
            if user is None:
                raise OriginateError("SUBSCRIBER_ABSENT")
            if not user.registered:
                raise OriginateError("USER_NOT_REGISTERED")
            self.admit_session()
            plan = self._scripted(ext) or PartyPlan(
                outcome="busy" if user.busy else "answer", ring_s=user.answer_after_s, talk_s=None,
                dtmf=user.dtmf)
            name, number = f"sofia/internal/{ext}@sim", ext
        elif kind == "sofia":
            self.admit_session()  # sofia_outgoing_channel requests the session before it looks at the URL
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
        self._start_outbound(ch)
        logger.info("sim originate %s to %s: %s (ring %.1fs)", ch.uuid, number, plan.outcome, plan.ring_s)
        self.sessions[ch.uuid].party = plan
        return self._ring(ch, plan, variables)

    def _start_outbound(self, ch: Channel) -> None:
        """switch_core_session_run of an originated leg: CS_INIT, CHANNEL_CREATE, CHANNEL_ORIGINATE
        (every outbound channel), CS_ROUTING, then switch_ivr_originate's CS_CONSUME_MEDIA."""
        self.fire_state(ch, ChannelState.CS_INIT)
        self.fire_channel("CHANNEL_CREATE", ch, state_number=2)
        self.fire_channel("CHANNEL_ORIGINATE", ch, state_number=2)
        self.fire_state(ch, ChannelState.CS_ROUTING)
        self.fire_state(ch, ChannelState.CS_CONSUME_MEDIA)

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
        # mod_loopback requests two sessions: the -a leg, and the -b leg in its on_init; either
        # can meet the session-rate limit (the sim checks both before creating either)
        self.admit_session()
        self.admit_session()
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
        # is_loopback is set only at hang-up (CHANNEL_HANGUP_COMPLETE in every capture), see finish_channel
        a.variables.update({"other_loopback_leg_uuid": b.uuid, "loopback_leg": "A"})
        b.variables.update({"other_loopback_leg_uuid": a.uuid, "loopback_leg": "B"})
        if originator is not None:
            a.other_leg, a.other_type = originator.uuid, "originator"
        # e_timing, per leg: A: CODEC x2 (under its first uuid), CHANNEL_UUID (origination_uuid),
        # CHANNEL_OUTGOING, CS_INIT, CHANNEL_CREATE, CHANNEL_ORIGINATE, CS_ROUTING, CS_CONSUME_MEDIA;
        # B: CODEC x2, CS_INIT, CHANNEL_CREATE, CALLSTATE RINGING, CS_ROUTING, CS_EXECUTE
        if uid:
            first_uuid = new_uuid()  # mod_loopback creates the leg, then origination_uuid renames it
            self.fire_codecs(a, first_uuid)
            self.fire_channel("CHANNEL_UUID", a, first=[("Old-Unique-ID", first_uuid)],
                              state_name="CS_NONE", state_number=1)
        else:
            self.fire_codecs(a)
        self.fire_channel("CHANNEL_OUTGOING", a, variables=False, state_name="CS_NONE", state_number=1)
        self.fire_codecs(b)
        self._start_outbound(a)
        self.start_inbound(b)
        self.fire_state(b, ChannelState.CS_EXECUTE)
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


def _norm(number: str) -> str:
    return number.strip().lstrip("+")


def _float(value: str | None, default: float) -> float:
    try:
        return float(value) if value not in (None, "") else default
    except ValueError:
        return default

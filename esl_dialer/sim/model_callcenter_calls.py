"""mod_callcenter's calls (layer ``model_``): the ``callcenter`` application and the agent thread.

``callcenter_function`` puts the caller in the members table, plays the
queue's music until an agent is bridged or the member thread cancels it, and
reports member-queue-start / member-queue-end.  ``outbound_agent_thread_run``
originates the agent's contact (through :mod:`.model_originate`, with the
module's channel variables), uuid_bridges the member to the answered agent and
reports agent-offering, bridge-agent-start / -end / -fail.  The state they
change lives in :class:`~esl_dialer.sim.model_callcenter.CallCenter`.
"""
from __future__ import annotations

import logging
import time
from typing import Any

import gevent
from gevent.lock import Semaphore

from .chan_apps import NONE
from .chan_channel import Channel, new_uuid
from .chan_session import Interrupt, Session
from .model_callcenter import (
    INSTANCE, IN_A_QUEUE_CALL, IDLE, LOGGED_OUT, M_ABANDONED, M_ANSWERED, M_TRYING, M_WAITING, ON_DEMAND, RING_ALL,
    TIER_ACTIVE, TIER_NO_ANSWER, TIER_READY, WAITING, CallCenter, Member, Offer, _atoi,
)
from .model_callcenter_dispatch import Dispatcher
from .plans import OriginateError

logger = logging.getLogger(__name__)

LOOPBACK_BRIDGE_WAIT_S = 5.0  # switch_channel_wait_for_flag(loopback_b, CF_BRIDGED, ..., 5000, member)
ENDLESS_S = 86400.0  # local_stream:// music plays until broken


def attach_callcenter(switch: Any, **kwargs: Any) -> CallCenter:
    """Give ``switch`` a mod_callcenter (``switch.callcenter``) and its ``callcenter`` application."""
    cc = CallCenter(switch, **kwargs)
    Dispatcher(cc)
    CallcenterCalls(cc)
    switch.callcenter = cc
    return cc


class CallcenterCalls:
    def __init__(self, cc: CallCenter) -> None:
        self.cc = cc
        self.switch = cc.switch
        cc.app = self
        self.switch.apps.table["callcenter"] = self.run
        # members leave one at a time, in the order they went (the module's database lock does that)
        self._leaving = Semaphore()

    # -- helpers ---------------------------------------------------------------------
    def _wake(self, ch: Channel | None) -> None:
        """Stop the member's music so callcenter_function looks at its flags."""
        session = self.switch.sessions.get(ch.uuid) if ch is not None else None
        if session is not None:
            session.request_break()
            session.poke()

    @staticmethod
    def _member_headers(uuid: str, session_uuid: str, cid_name: str, cid_number: str) -> list[tuple[str, str]]:
        return [("CC-Member-UUID", uuid), ("CC-Member-Session-UUID", session_uuid),
                ("CC-Member-CID-Name", cid_name), ("CC-Member-CID-Number", cid_number)]

    # -- callcenter_function ---------------------------------------------------------
    def run(self, session: Session, arg: str) -> str:
        """The ``callcenter <queue>`` application."""
        cc, sw, ch = self.cc, self.switch, session.ch
        queue_name = arg.split(" ")[0] if arg and arg.strip() else ""
        queue = cc.get_queue(queue_name) if queue_name else None
        if queue is None:
            logger.warning("sim callcenter %s: queue %r not found", ch.uuid, queue_name)
            return NONE
        sw.answer(ch)
        start_epoch = int(ch.answered_at or sw.clock.now())
        cid_name, cid_number = ch.caller_id_name, ch.caller_id_number
        resumed: Member | None = None
        if queue.abandoned_resume_allowed:
            old = [m for m in cc.members.values()
                   if m.queue == queue_name and m.cid_number == cid_number and m.state == M_ABANDONED]
            resumed = max(old, key=lambda m: m.abandoned_epoch) if old else None
        member_uuid = resumed.uuid if resumed is not None else new_uuid()
        v = ch.variables
        v["cc_side"] = "member"
        v["cc_member_uuid"] = member_uuid
        v.pop("cc_agent_found", None)
        v.pop("cc_agent_bridged", None)
        base_score = _atoi(v["cc_base_score"]) if "cc_base_score" in v else 0
        now = cc.now()
        if queue.time_base_score.lower() == "system":
            base_score += now - start_epoch
        v["cc_queue_joined_epoch"] = str(now)
        v["cc_queue"] = queue_name
        if resumed is not None:
            resumed.session_uuid, resumed.state, resumed.rejoined_epoch = ch.uuid, M_WAITING, now
            resumed.instance_id, resumed.cancel_reason, resumed.agent_found = INSTANCE, "NONE", False
            resumed.running, resumed.serving_agent, resumed.serving_system = True, "", ""
        cc.fire("member-queue-start", [
            ("CC-Queue", queue_name), ("CC-Action", f"member-queue-{'resume' if resumed else 'start'}"),
            *self._member_headers(member_uuid, ch.uuid, cid_name, cid_number)], ch)
        if resumed is None:
            strategy = queue.strategy.lower()
            cc.members[member_uuid] = Member(
                queue=queue_name, uuid=member_uuid, session_uuid=ch.uuid, cid_number=cid_number, cid_name=cid_name,
                system_epoch=start_epoch, joined_epoch=now, base_score=base_score,
                serving_agent=strategy if strategy in RING_ALL else "")
        member = cc.members[member_uuid]
        cc.queue_count(queue_name)
        t_member_called = now
        watcher = sw.spawn(self._member_thread, member, ch, t_member_called)
        cc.kick()
        moh = v.get("cc_moh_override") or queue.moh_sound
        interrupted: Interrupt | None = None
        try:
            while ch.alive:
                if member.agent_found or v.get("cc_agent_bridged") == "true" or member.cancel_reason != "NONE":
                    break
                if moh:
                    endless = moh.startswith("local_stream://")
                    sw.apps.play(session, moh, ENDLESS_S if endless else None)
                else:
                    session.block(None, until=lambda: member.agent_found or member.cancel_reason != "NONE")
        except Interrupt as exc:  # hang-up or transfer: the loop ends, the bookkeeping below still runs
            interrupted = exc
        member.running = False
        watcher.kill(block=False)
        with self._leaving:
            self._member_leaves(member, ch, queue_name, t_member_called)
        if interrupted is not None:
            raise interrupted
        return NONE

    def _member_leaves(self, member: Member, ch: Channel, queue_name: str, t_member_called: int) -> None:
        """The end of callcenter_function: answered, or cancelled (member-queue-end, Cause Cancel)."""
        cc, v = self.cc, ch.variables
        agent_found = v.get("cc_agent_bridged") == "true" or v.get("cc_agent_found") == "true"
        if member.cancel_reason == "NONE" and not agent_found:
            member.cancel_reason = "BREAK_OUT"
        v.pop("cc_agent_found", None)
        if not ch.alive or member.cancel_reason != "NONE":
            now = cc.now()
            member.state, member.session_uuid, member.abandoned_epoch = M_ABANDONED, "", now
            cc.hangup_matching(member.uuid, "ORIGINATOR_CANCEL")
            # the agent threads notice at once and report first (as in c_callcenter.jsonl)
            gevent.joinall(list(member.offers), timeout=2.0)
            cc.fire("member-queue-end", [
                ("CC-Queue", queue_name), ("CC-Action", "member-queue-end"),
                ("CC-Member-Leaving-Time", str(cc.now())), ("CC-Member-Joined-Time", str(t_member_called)),
                ("CC-Cause", "Cancel"), ("CC-Cancel-Reason", member.cancel_reason),
                *self._member_headers(member.uuid, ch.uuid, ch.caller_id_name, ch.caller_id_number)], ch)
            v["cc_queue_canceled_epoch"] = str(cc.now())
            v["cc_cause"] = "cancel"
            v["cc_cancel_reason"] = member.cancel_reason
            queue = cc.get_queue(queue_name)
            if queue is not None:
                queue.calls_abandoned += 1
        else:
            v["cc_cause"] = "answered"
            queue = cc.get_queue(queue_name)
            if queue is not None:
                queue.calls_answered += 1
        cc.queue_count(queue_name)

    def _member_thread(self, m: Member, ch: Channel, t_member_called: int) -> None:
        """cc_member_thread_run: every half second, cancel a member waiting too long."""
        cc = self.cc
        while ch.alive and m.running:
            queue = cc.get_queue(m.queue)
            if queue is None:
                return
            now = cc.now()
            reason = None
            if 0 < queue.max_wait_time <= now - t_member_called and not m.connecting and not ch.bridged_to:
                reason = "TIMEOUT"
            if queue.max_wait_time_with_no_agent > 0 and queue.last_agent_exist_check > queue.last_agent_exist \
                    and t_member_called <= queue.last_agent_exist_check \
                    and queue.last_agent_exist_check - queue.last_agent_exist >= queue.max_wait_time_with_no_agent:
                grace = queue.max_wait_time_with_no_agent_time_reached
                if grace <= 0 or queue.last_agent_exist_check - t_member_called >= \
                        grace + queue.max_wait_time_with_no_agent:
                    reason = "NO_AGENT_TIMEOUT"
            if reason is not None:
                m.cancel_reason = reason
                self._wake(ch)
                return
            gevent.sleep(max(0.01, self.switch.clock.real(0.5)))

    # -- outbound_agent_thread_run -----------------------------------------------------
    def agent_thread(self, h: Offer) -> None:
        """Offer one member to one agent: ring, bridge, wait for the end, put the agent back."""
        cc, sw, m = self.cc, self.switch, h.member
        member_ch = sw.find(h.member_session_uuid)
        bridged, tiers_state = True, TIER_READY
        try:
            if member_ch is None or not member_ch.alive:  # gone just before we assigned an agent
                bridged = False
                if m.state != M_ABANDONED and cc.members.get(m.uuid) is m:
                    m.state, m.session_uuid, m.abandoned_epoch = M_ABANDONED, "", cc.now()
                return
            member_hdrs = self._member_headers(h.member_uuid, h.member_session_uuid, h.member_cid_name,
                                               h.member_cid_number)
            cc.fire("agent-offering", [
                ("CC-Queue", h.queue), ("CC-Action", "agent-offering"), ("CC-Agent", h.agent),
                ("CC-Agent-Type", h.agent_type), ("CC-Agent-System", h.agent_system), *member_hdrs])
            agent_ch, cause, t_called = self._contact_agent(h, member_ch)
            if agent_ch is not None:
                bridged = self._serve(h, member_ch, agent_ch, cause, t_called, member_hdrs)
            else:
                bridged = False
                tiers_state = self._failed(h, cause, t_called, member_hdrs)
        finally:
            cc._set_tiers_after(h.agent, h.queue, tiers_state)
            on_demand = h.agent_status.lower() == ON_DEMAND.lower()
            if h.agent in cc.agents:
                cc.agent_update("state", IDLE if on_demand and bridged else WAITING, h.agent)
            cc.kick()

    def _contact_agent(self, h: Offer, member_ch: Channel) -> tuple[Channel | None, str, int]:
        """Ring the agent (callback) or find its standby channel; (agent channel or None, cause, called)."""
        cc, sw, m = self.cc, self.switch, h.member
        mv = member_ch.variables
        exports = [n.strip() for n in mv.get("cc_export_vars", "").split(",") if n.strip()]
        if h.agent_type.lower() == "callback":
            cid_name = mv.get("effective_caller_id_name") or h.member_cid_name
            cid_number = mv.get("effective_caller_id_number") or h.member_cid_number
            if mv.get("cc_outbound_cid_name_prefix"):
                cid_name = mv["cc_outbound_cid_name_prefix"] + cid_name
            ovars = {
                "cc_queue": h.queue, "cc_queue_joined_epoch": str(h.member_joined_epoch),
                "cc_member_uuid": h.member_uuid, "cc_member_session_uuid": h.member_session_uuid,
                "cc_member_pre_answer_uuid": h.member_uuid, "cc_agent": h.agent, "cc_agent_type": h.agent_type,
                "cc_side": "agent", "loopback_bowout": "false", "loopback_bowout_on_execute": "false",
                "ignore_early_media": "true", "origination_caller_id_name": cid_name,
                "origination_caller_id_number": cid_number,
            }
            ovars.update({n: mv[n] for n in exports if n in mv})
            t_called = cc.now()
            m.connecting += 1
            try:
                agent_ch = cc.originate_agent(h, member_ch, ovars)
            except OriginateError as err:
                m.connecting -= 1
                return None, err.cause, t_called
            m.connecting -= 1
            if agent_ch.variables.get("other_loopback_leg_uuid"):
                return self._behind_loopback(h, member_ch, agent_ch, exports), "SUCCESS", t_called
            return agent_ch, "SUCCESS", t_called
        if h.agent_type.lower() == "uuid-standby":
            agent_ch = sw.find(h.agent_uuid) if h.agent_uuid else None
            if agent_ch is not None and agent_ch.alive:
                self._mark_agent(h, member_ch, agent_ch, exports)
                return agent_ch, "NONE", 0
            cc.agent_update("status", LOGGED_OUT, h.agent)
            cc.agent_update("uuid", "", h.agent)
            return None, "NONE", 0
        return None, "USER_NOT_REGISTERED", 0

    def _mark_agent(self, h: Offer, member_ch: Channel, agent_ch: Channel, exports: list[str]) -> None:
        av = agent_ch.variables
        av.update({"cc_side": "agent", "cc_queue": h.queue, "cc_agent": h.agent, "cc_agent_type": h.agent_type,
                   "cc_member_uuid": h.member_uuid, "cc_member_session_uuid": h.member_session_uuid})
        av.update({n: member_ch.variables[n] for n in exports if n in member_ch.variables})

    def _behind_loopback(self, h: Offer, member_ch: Channel, loop_a: Channel, exports: list[str]) -> Channel | None:
        """A loopback contact: the agent is whatever the -b leg gets bridged to within 5 s."""
        sw = self.switch
        loop_b = sw.find(loop_a.variables.get("other_loopback_leg_uuid"))
        real = None
        if loop_b is not None:
            deadline = time.monotonic() + sw.clock.real(LOOPBACK_BRIDGE_WAIT_S)
            while not loop_b.bridged_to and loop_b.alive and member_ch.alive and time.monotonic() < deadline:
                gevent.sleep(0.005)
            real = sw.find(loop_b.bridged_to) if loop_b.bridged_to and member_ch.alive else None
        if real is None or not real.alive:
            sw.hangup(loop_a, "DESTINATION_OUT_OF_ORDER")
            return None
        self._mark_agent(h, member_ch, real, exports)
        loop_a.variables.pop("cc_member_pre_answer_uuid", None)
        loop_b.variables.pop("cc_member_pre_answer_uuid", None)
        return real

    def _serve(self, h: Offer, member_ch: Channel, agent_ch: Channel, cause: str, t_called: int,
               member_hdrs: list[tuple[str, str]]) -> bool:
        """The agent answered: bridge, wait for the end of the call, report.  True if it was bridged."""
        cc, sw, m = self.cc, self.switch, h.member
        agent_ch.variables.pop("cc_member_pre_answer_uuid", None)
        if h.strategy.lower() in RING_ALL:
            if m.state == M_TRYING and m.serving_agent == h.strategy.lower():
                m.serving_agent, m.serving_system = h.agent, INSTANCE
            if not (m.serving_agent == h.agent and m.serving_system == INSTANCE):
                sw.hangup(agent_ch, "LOSE_RACE")  # another agent of a ring-all won the member
                return True
            cc.hangup_matching(h.member_uuid, "LOSE_RACE")
        t_answered = cc.now()
        agent_hdrs = [("CC-Agent", h.agent), ("CC-Agent-System", h.agent_system), ("CC-Agent-UUID", agent_ch.uuid)]
        cc.fire("bridge-agent-start", [
            ("CC-Queue", h.queue), ("CC-Action", "bridge-agent-start"), *agent_hdrs,
            ("CC-Agent-Called-Time", str(t_called)), ("CC-Agent-Answered-Time", str(t_answered)),
            ("CC-Member-Joined-Time", str(h.member_joined_epoch)), *member_hdrs], agent_ch)
        mv = member_ch.variables
        mv["cc_agent_found"] = "true"
        mv["cc_agent_uuid"] = agent_ch.uuid
        bridged = False
        if member_ch.alive and agent_ch.alive:
            session = sw.sessions.get(member_ch.uuid)
            if session is not None:
                session.apps.clear()  # uuid_bridge takes the member out of its dialplan
            m.agent_found = True
            sw.bridge(member_ch, agent_ch, via_app="uuid_bridge")
            self._wake(member_ch)
            bridged = agent_ch.bridged_to == member_ch.uuid
        now = cc.now()
        if not bridged and not member_ch.alive:
            mv["cc_agent_bridged"] = agent_ch.variables["cc_agent_bridged"] = "false"
            m.state, m.session_uuid, m.abandoned_epoch = M_ABANDONED, "", now
            if h.agent_type.lower() == "callback":
                sw.hangup(agent_ch, "ORIGINATOR_CANCEL")
        elif not bridged:
            m.state = M_WAITING
        else:
            mv["cc_agent_bridged"] = agent_ch.variables["cc_agent_bridged"] = "true"
            m.state, m.bridge_epoch = M_ANSWERED, now
            mv["cc_agent"] = h.agent
            mv["cc_queue_answered_epoch"] = str(now)
            agent = cc.agents.get(h.agent)
            if agent is not None and agent.instance_id == h.agent_system:
                agent.uuid, agent.last_bridge_start = agent_ch.uuid, now
                agent.calls_answered += 1
                agent.no_answer_count = 0
            cc.tier_update("state", TIER_ACTIVE, h.queue, h.agent)
            cc.agent_update("state", IN_A_QUEUE_CALL, h.agent)
            standby = h.agent_type.lower() == "uuid-standby"
            while agent_ch.alive and not (standby and not agent_ch.bridged_to):
                sw._wait_on(agent_ch, ENDLESS_S, lambda: standby and not agent_ch.bridged_to)
        cc.fire("bridge-agent-end", [
            ("CC-Queue", h.queue), ("CC-Action", "bridge-agent-end"), ("CC-Hangup-Cause", cause), *agent_hdrs,
            ("CC-Agent-Bridged", "true" if bridged else "false"), ("CC-Agent-Called-Time", str(t_called)),
            ("CC-Agent-Answered-Time", str(t_answered)), ("CC-Member-Joined-Time", str(h.member_joined_epoch)),
            ("CC-Bridge-Terminated-Time", str(cc.now())), *member_hdrs], agent_ch)
        if bridged:
            now = cc.now()
            mv["cc_queue_terminated_epoch"] = str(now)
            agent = cc.agents.get(h.agent)
            if agent is not None and agent.instance_id == h.agent_system:
                if h.agent_type.lower() != "uuid-standby":
                    agent.uuid = ""
                agent.last_bridge_end = now
                agent.talk_time += now - agent.last_bridge_start
            if cc.members.get(m.uuid) is m:
                del cc.members[m.uuid]
            cc.fire("member-queue-end", [
                ("CC-Queue", h.queue), ("CC-Action", "member-queue-end"), ("CC-Hangup-Cause", cause),
                ("CC-Cause", "Terminated"), *agent_hdrs, ("CC-Agent-Called-Time", str(t_called)),
                ("CC-Agent-Answered-Time", str(t_answered)), ("CC-Member-Leaving-Time", str(now)),
                ("CC-Member-Joined-Time", str(h.member_joined_epoch)), *member_hdrs],
                member_ch, calling="member-queue-end-terminated")
        return bridged

    def _failed(self, h: Offer, cause: str, t_called: int, member_hdrs: list[tuple[str, str]]) -> str:
        """The agent did not answer (or could not be reached): count it, maybe rest it; the tier's state."""
        cc, m = self.cc, h.member
        if m.serving_agent == h.agent and m.serving_system == h.agent_system:
            m.state = M_WAITING if m.state == M_TRYING else m.state
            m.serving_agent = m.serving_system = ""
        tiers_state, delay = TIER_READY, 0
        if cause in ("LOSE_RACE", "ORIGINATOR_CANCEL"):
            pass
        elif cause in ("NORMAL_CIRCUIT_CONGESTION", "USER_BUSY"):
            delay = max(h.busy_delay_time, 0)
        elif cause == "CALL_REJECTED":
            delay = max(h.reject_delay_time, 0)
        elif cause == "USER_NOT_REGISTERED":
            delay = 5
        else:  # no answer, or any other reason
            delay, tiers_state = max(h.no_answer_delay_time, 0), TIER_NO_ANSWER
            agent = cc.agents.get(h.agent)
            if agent is not None and agent.instance_id == h.agent_system:
                agent.no_answer_count += 1
            if h.max_no_answer > 0 and h.no_answer_count + 1 >= h.max_no_answer:
                cc.fire("agent-max-no-answer", [
                    ("CC-Agent", h.agent), ("CC-Action", "agent-max-no-answer"),
                    ("CC-Agent-No-Answer-Count", str(h.max_no_answer)),
                    ("CC-Agent-No-Answer-Status", h.agent_no_answer_status),
                    ("CC-Member-UUID", h.member_uuid), ("CC-Member-Session-UUID", h.member_session_uuid)])
                cc.agent_update("status", h.agent_no_answer_status, h.agent)
        if delay > 0:
            cc.agent_update("ready_time", str(cc.now() + delay), h.agent)
        cc.fire("bridge-agent-fail", [
            ("CC-Queue", h.queue), ("CC-Action", "bridge-agent-fail"), ("CC-Hangup-Cause", cause),
            ("CC-Agent", h.agent), ("CC-Agent-System", h.agent_system), ("CC-Agent-Called-Time", str(t_called)),
            ("CC-Agent-Aborted-Time", str(cc.now())), *member_hdrs,
            ("CC-Member-Joined-Time", str(h.member_joined_epoch))])
        return tiers_state

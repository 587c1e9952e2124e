"""mod_callcenter's dispatch thread (layer ``model_``): which waiting member goes to which agent.

``cc_agent_dispatch_thread_run`` / ``members_callback`` / ``agents_callback``
of mod_callcenter.c: members by score, each queue's agents in its strategy's
order (the module's SQL orderings, tier level first), the tier rules, and
the conditions under which an agent may be offered a call (Waiting, not On
Break, past wrap-up and ready time, tier Ready or No Answer), so an agent is
never offered two calls at once.  An offer starts the agent thread of
:mod:`.model_callcenter_calls`.
"""
from __future__ import annotations

import logging

import gevent
from gevent.event import Event as GEvent

from .chan_channel import Channel
from .model_callcenter import (
    INSTANCE, M_ABANDONED, M_TRYING, M_WAITING, ON_BREAK, ON_DEMAND, AVAILABLE, RECEIVING, RING_ALL, TIER_NO_ANSWER,
    TIER_OFFERING, TIER_READY, TIER_STANDBY, WAITING, Agent, CallCenter, Member, Offer, Queue, Tier, _atoi, _canon,
)

logger = logging.getLogger(__name__)


class Dispatcher:
    """The dispatch greenlet of one CallCenter (``cc.dispatcher``); it runs only while members exist."""

    def __init__(self, cc: CallCenter) -> None:
        self.cc = cc
        self.switch = cc.switch
        self._kick = GEvent()
        self._dispatcher: gevent.Greenlet | None = None
        self._pass: dict[str, tuple[list[tuple[Agent, Tier]], bool]] = {}  # per pass: a queue's agents
        cc.dispatcher = self

    def kick(self) -> None:
        """Something changed: let the dispatcher look at the members now (it also polls)."""
        self._kick.set()
        if self.cc.members and (self._dispatcher is None or self._dispatcher.dead):
            self._dispatcher = self.switch.spawn(self._dispatch_loop)

    def _dispatch_loop(self) -> None:
        while True:
            self._kick.clear()
            try:
                self.dispatch_once()
            except Exception:  # one bad row must not stop the queue
                logger.exception("sim callcenter: dispatch failed")
            # cc_agent_dispatch_thread_run looks every 100 ms; idle without members
            self._kick.wait(max(0.01, self.switch.clock.real(0.1)) if self.cc.members else None)

    def dispatch_once(self) -> None:
        self._pass = {}
        now = self.cc.now()
        members = [m for m in self.cc.members.values()
                   if m.state in (M_WAITING, M_ABANDONED) or (m.serving_agent in RING_ALL and m.state == M_TRYING)]
        members.sort(key=lambda m: -m.score(now))
        for member in members:
            if self.cc.members.get(member.uuid) is member:
                self._member_tick(member)

    def _member_tick(self, m: Member) -> None:
        """members_callback: find agents for one member."""
        now = self.cc.now()
        queue = self.cc.get_queue(m.queue)
        if queue is None:
            self.cc.members.pop(m.uuid, None)
            return
        if m.state == M_ABANDONED:
            abandoned = m.abandoned_epoch or m.joined_epoch
            if abandoned + queue.discard_abandoned_after < now:
                self.cc.members.pop(m.uuid, None)
            return
        ch = self.switch.find(m.session_uuid)
        if ch is not None and not ch.alive:
            return  # hung up: callcenter_function is about to mark it Abandoned (milliseconds on a real switch)
        if queue.strategy.lower() in RING_ALL and m.state == M_WAITING:
            m.state = M_TRYING
        if queue.strategy.lower() == "ring-progressively" and ch is not None:
            last = ch.variables.get("cc_last_originated_call")
            delay = queue.ring_progressively_delay or 10
            if last and ch.alive and now < _atoi(last) + delay and ch.variables.get("cc_agent_found") != "true":
                return
        cbt = {"tier": 0, "available": 0, "found": False}
        rows, any_free = self._queue_rows(queue, now)
        if any_free:
            for agent, tier in self._candidates(queue, rows, ch):
                if self._agent_row(queue, m, agent, tier, cbt):
                    break
        else:  # the loop would only note that the queue has agents (a shortcut, same outcome)
            cbt["found"] = bool(rows)
        queue.last_agent_exist_check = self.cc.now()
        if cbt["found"]:
            queue.last_agent_exist = queue.last_agent_exist_check
        elif queue.strategy == "top-down" and ch is not None:
            ch.variables.pop("cc_last_agent_tier_position", None)
            ch.variables.pop("cc_last_agent_tier_level", None)

    def _queue_rows(self, queue: Queue, now: int) -> tuple[list[tuple[Agent, Tier]], bool]:
        """The queue's logged-in agents (tier order) and whether any may be offered a call now."""
        hit = self._pass.get(queue.name)
        if hit is None:
            agents = self.cc.agents
            rows = [(agents[t.agent], t) for t in self.cc.tiers if t.queue == queue.name and t.agent in agents
                    and agents[t.agent].status in (AVAILABLE, ON_BREAK, ON_DEMAND)]
            hit = self._pass[queue.name] = (rows, any(self._contactable(queue, a, t, now) for a, t in rows))
        return hit

    @staticmethod
    def _contactable(queue: Queue, agent: Agent, tier: Tier, now: int) -> bool:
        """agents_callback's contact_agent: Waiting, tier Ready/No Answer, past wrap-up and ready time."""
        return _canon(tier.state, (TIER_NO_ANSWER, TIER_READY)) is not None \
            and agent.state.lower() == WAITING.lower() and agent.last_bridge_end < now - agent.wrap_up_time \
            and agent.ready_time <= now and agent.status.lower() != ON_BREAK.lower() \
            and not (queue.skip_agents_with_external_calls and agent.external_calls_count > 0)

    def _candidates(self, queue: Queue, rows: list[tuple[Agent, Tier]],
                    ch: Channel | None) -> list[tuple[Agent, Tier]]:
        """The SELECT of members_callback: agents of the queue in the strategy's order."""
        strategy = queue.strategy.lower()
        if strategy == "top-down":
            pos = _atoi(ch.variables.get("cc_last_agent_tier_position", "0")) if ch is not None else 0
            lvl = _atoi(ch.variables.get("cc_last_agent_tier_level", "0")) if ch is not None else 0
            union = [(1, r) for r in rows if r[1].position > pos and r[1].level == lvl]
            union += [(2, r) for r in rows if r[1].level > lvl]
            union.sort(key=lambda d: (d[0], d[1][1].level, d[1][1].position, d[1][0].last_offered_call))
            return [r for _, r in union]
        if strategy == "round-robin":
            agents = self.cc.agents  # the last agent offered a call in this queue, whatever its status
            offered = [(agents[t.agent], t) for t in self.cc.tiers if t.queue == queue.name and t.agent in agents
                       and agents[t.agent].last_offered_call > 0]
            union = []
            if offered:
                last = max(offered, key=lambda r: r[0].last_offered_call)[1]
                union = [(1, r) for r in rows if r[1].position > last.position and r[1].level == last.level]
            union += [(2, r) for r in rows]
            union.sort(key=lambda d: (d[0], d[1][1].level, d[1][1].position, d[1][0].last_offered_call))
            return [r for _, r in union]
        if strategy == "longest-idle-agent":
            key = lambda r: (r[1].level, r[0].last_bridge_end, r[1].position)  # noqa: E731
        elif strategy == "agent-with-least-talk-time":
            key = lambda r: (r[1].level, r[0].talk_time, r[1].position)  # noqa: E731
        elif strategy == "agent-with-fewest-calls":
            key = lambda r: (r[1].level, r[0].calls_answered, r[1].position)  # noqa: E731
        elif strategy in RING_ALL:
            key = lambda r: (r[1].level, r[1].position)  # noqa: E731
        elif strategy == "random":
            rng = self.switch.rng
            draws = {id(r[1]): rng.random() for r in rows}
            key = lambda r: (r[1].level, draws[id(r[1])])  # noqa: E731
        else:  # sequentially-by-agent-order and unknown strategies
            key = lambda r: (r[1].level, r[1].position, r[0].last_offered_call)  # noqa: E731
        return sorted(rows, key=key)

    def _agent_row(self, queue: Queue, m: Member, agent: Agent, tier: Tier, cbt: dict) -> bool:
        """agents_callback: offer ``m`` to ``agent`` if allowed; True stops looking at further agents."""
        now = self.cc.now()
        cbt["found"] = True
        if queue.tier_rules_apply and tier.level > cbt["tier"]:
            waited = now - m.joined_epoch
            if queue.tier_rule_no_agent_no_wait and cbt["available"] == 0:
                cbt["tier"] = tier.level
            elif queue.tier_rule_wait_multiply_level and waited >= tier.level * queue.tier_rule_wait_second:
                cbt["tier"], cbt["available"] = tier.level, 0
            elif not queue.tier_rule_wait_multiply_level and waited >= queue.tier_rule_wait_second:
                cbt["tier"], cbt["available"] = tier.level, 0
            else:
                return True  # not allowed to go on to the next tier yet
        cbt["available"] += 1
        if not self._contactable(queue, agent, tier, now):
            return False
        strategy = queue.strategy.lower()
        if agent.instance_id.lower() != INSTANCE:
            return strategy == "ring-all"
        if strategy in RING_ALL:
            won = m.serving_agent == strategy
        else:
            if m.state == M_WAITING:
                m.serving_agent, m.serving_system, m.state = agent.name, agent.instance_id, M_TRYING
            won = m.serving_agent == agent.name and m.serving_system == agent.instance_id
        if not won:
            return True
        ch = self.switch.find(m.session_uuid)
        if ch is not None:
            if strategy == "ring-progressively":
                ch.variables["cc_last_originated_call"] = str(now)
            if strategy == "top-down":
                ch.variables["cc_last_agent_tier_position"] = str(tier.position)
                ch.variables["cc_last_agent_tier_level"] = str(tier.level)
        offer = Offer(member=m, member_uuid=m.uuid, member_session_uuid=m.session_uuid, member_cid_name=m.cid_name,
                      member_cid_number=m.cid_number, member_joined_epoch=m.joined_epoch, queue=queue.name,
                      strategy=queue.strategy, agent=agent.name, agent_system=agent.instance_id,
                      agent_status=agent.status, agent_type=agent.type, agent_uuid=agent.uuid,
                      contact=agent.contact, record_template=queue.record_template,
                      no_answer_count=agent.no_answer_count, max_no_answer=agent.max_no_answer,
                      reject_delay_time=agent.reject_delay_time, busy_delay_time=agent.busy_delay_time,
                      no_answer_delay_time=agent.no_answer_delay_time,
                      agent_no_answer_status=queue.agent_no_answer_status)
        self.cc.agent_update("state", RECEIVING, agent.name)
        for t in self.cc.tiers:
            if t.agent == agent.name and t.queue == queue.name:
                t.state = TIER_OFFERING
            elif t.agent == agent.name and t.state == TIER_READY:
                t.state = TIER_STANDBY
        self._pass.clear()  # agents changed state
        g = self.switch.spawn(self.cc.app.agent_thread, offer)
        m.offers.add(g)
        g.link(lambda done: m.offers.discard(done))
        return strategy != "ring-all"

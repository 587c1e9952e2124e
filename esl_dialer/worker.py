"""The dialing worker (`dialer worker`): one per agent, many per process (D1, D11).

Shell around the pure :class:`~esl_dialer.worker_core.AgentDialer`: it owns
the I/O (controller over HTTP through :mod:`esl_dialer.client`, the switch
through :class:`esl_dialer.switch.Switch` only, the contingency file) and
carries out the actions the core returns.

Greenlets of one :class:`AgentWorker`, all in its own ``gevent.pool.Group``,
each linked to an error logger, killed and joined by :meth:`AgentWorker.stop`:

``agent-leg``  keeps the agent parked on a waiting leg (see freeswitch/README.md)
``inbox``      applies switch events and controller events to the core, in order
``dialer``     paces, dial-checks (D9/X1) and originates (D2); ticks wrap-up
``lease``      keeps the contingency file stocked (D1, P2) and releases on stop
``flush``      uploads results from the contingency file (P10)
``heartbeat``  liveness + the immediate state report of every change (D8)
``events``     the controller's SSE stream: overflow assignments (D7), campaign status

Many workers in one process, their team pacing and agent console:
:mod:`esl_dialer.worker_host`.

Switch handlers never block: they post to the inbox, so one shared Switch (one
ESL connection per process) serves every agent worker of the process.
"""
from __future__ import annotations

import datetime as dt
import logging
import time
from collections import deque
from dataclasses import dataclass, field, replace
from pathlib import Path
from typing import TYPE_CHECKING, Any, Callable, Optional

import gevent
import gevent.event
import gevent.lock
import gevent.pool
import gevent.queue

from . import switch as sw
from .agent_state import IllegalAgentTransition
from .call_state import Call, CallState, IllegalCallTransition
from .client import ApiError, ControllerClient, ControllerError, ControllerUnavailable, SseEvent
from .contingency import Contingency, ContingencyError, flush, new_client_id
from .esl.commands import dial_string, new_uuid
from .messages import AgentState, AttemptResult, DialMode
from .pacing import PacingConfig, make_pacer
from .team import AgentView, TeamSnapshot
from . import worker_legs
from .worker_core import (
    Abandon,
    Action,
    AgentDialer,
    BridgeToAgent,
    ClaimAgent,
    ReportState,
    ScreenPop,
    StoreResult,
    UnknownCall,
    within_window,
)

if TYPE_CHECKING:  # pragma: no cover
    from . import worker_host

logger = logging.getLogger(__name__)

CALL_EVENTS = frozenset(
    {"CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA", "CHANNEL_ANSWER", "CHANNEL_BRIDGE", "CHANNEL_HANGUP_COMPLETE"}
)
CLAIM_RETRY_S = 0.25
CONTROLLER_RECHECK_S = 5.0
PRUNE_EVERY_S = 600.0
PRUNE_AFTER_S = 86400.0  # acknowledged results are kept a day for inspection, then dropped


def iso(ts: Optional[float]) -> Optional[str]:
    if ts is None:
        return None
    return dt.datetime.fromtimestamp(ts, dt.timezone.utc).isoformat()


@dataclass(frozen=True)
class WorkerSettings:
    """Everything one agent worker needs; built by `dialer worker` from options or a TOML file."""

    agent: str  # the agent's extension: its name on the wire and in `user/<ext>`
    controller: str
    token: str
    data_dir: Path = Path("var/worker")
    agent_endpoint: Optional[str] = None  # default user/<agent>
    dial_template: str = "sofia/gateway/outbound/{number}"
    greeting: Optional[str] = None  # default <greetings_dir>/<agent>.wav
    greetings_dir: str = "/usr/share/freeswitch/sounds/esl-dialer/greetings"
    abandon_message: str = "/usr/share/freeswitch/sounds/esl-dialer/abandon.wav"
    caller_id_number: Optional[str] = None
    caller_id_name: Optional[str] = None
    campaign: Optional[str] = None
    mode: DialMode = DialMode.PROGRESSIVE
    ratio: float = 2.0  # power mode
    abandon_target: float = 0.03
    lease_batch: int = 20
    low_water: int = 5
    originate_timeout_s: int = 25
    heartbeat_s: float = 5.0
    wrapup_s: float = 0.0
    overflow_wait_s: float = 2.0  # D7/X1: answered party waits at most this for an agent
    overflow_bridge_s: float = 1.5  # after a claim, how long the other worker has to bridge
    dial_interval_s: float = 0.2
    abandon_max_s: float = 15.0  # abandon message longest play before the hang-up
    bridge_wait_s: float = 2.0  # uuid_bridge +OK -> CHANNEL_BRIDGE (FreeSWITCH: ~60 ms); the greeting waits for it
    agent_answer_timeout_s: int = 30
    http_timeout_s: float = 3.0
    console_password: Optional[str] = None  # agent console login (D5); no console for this agent when unset
    # Which of CAMPAIGN_SETTINGS were given on this worker's command line / config and so
    # override the controller's campaign settings. None (the default when built in code):
    # the worker keeps its own dialing settings and applies only the campaign status.
    overrides: Optional[frozenset] = None

    @property
    def owner(self) -> str:
        """The owner mark on every leg this worker originates (a restarted worker finds its legs by it)."""
        return worker_legs.owner_id(self.agent, self.controller)

    @property
    def endpoint(self) -> str:
        return self.agent_endpoint or f"user/{self.agent}"

    @property
    def greeting_path(self) -> str:
        return self.greeting or f"{self.greetings_dir.rstrip('/')}/{self.agent}.wav"

    @property
    def contingency_path(self) -> Path:
        return Path(self.data_dir) / f"contingency-{self.agent}.sqlite"


@dataclass
class WorkerStats:
    placed: int = 0
    refused: dict = field(default_factory=dict)
    bridged_own: int = 0
    overflow_taken: int = 0
    overflow_sent: int = 0
    abandoned: int = 0
    results_stored: int = 0
    dialed_while_talking: int = 0
    greeting_skipped: int = 0  # bridges whose CHANNEL_BRIDGE never came: no greeting sent
    pop_latency_ms: list = field(default_factory=list)  # answer (or overflow) event received -> screen pop (D5)


class AgentWorker:
    """One agent's dialing worker."""

    def __init__(
        self,
        settings: WorkerSettings,
        switch: "sw.Switch",
        *,
        client: ControllerClient | None = None,
        clock: Callable[[], float] = time.time,
        on_screen_pop: Callable[[dict], Any] | None = None,
        on_state: Callable[[str, AgentState], Any] | None = None,
        team: "worker_host.HostTeam | None" = None,
    ) -> None:
        self.s = settings
        self.switch = switch
        self.clock = clock
        self.client = client or ControllerClient(settings.controller, settings.token, timeout=settings.http_timeout_s)
        # dial-check and claim must answer fast or not at all (2-s budget of D7)
        self.fast = replace(self.client, timeout=min(1.0, self.client.timeout), retries=0)
        self.store = Contingency(settings.contingency_path, f"{settings.agent}@{settings.controller}")
        self.core = AgentDialer(settings.agent, now=clock(), wrapup_s=settings.wrapup_s, overflow_wait_s=settings.overflow_wait_s)
        self.team = team
        self.pacer = team.pacer if team is not None else make_pacer(
            PacingConfig(mode=settings.mode, ratio=settings.ratio, abandon_target=settings.abandon_target), clock)
        self.on_screen_pop = on_screen_pop
        self.on_state = on_state
        self.screen_pops: deque[dict] = deque(maxlen=100)
        self.stats = WorkerStats()
        self.group = gevent.pool.Group()
        self.inbox: gevent.queue.Queue = gevent.queue.Queue()
        self.stopping = gevent.event.Event()
        self.draining = gevent.event.Event()  # stop: no new calls, let the live ones end
        self.kick_dial = gevent.event.Event()
        self.kick_flush = gevent.event.Event()
        self.kick_report = gevent.event.Event()
        self._flush_lock = gevent.lock.BoundedSemaphore(1)  # one upload at a time (lease loop and flusher)
        self.agent_leg: Optional[str] = None
        self.agent_leg_down = gevent.event.Event()
        self.campaign_active = True
        self.campaign_seen = gevent.event.Event()  # first campaign settings received (heartbeat or event)
        self.controller_down_since: Optional[float] = None
        self.reported_state: Optional[AgentState] = None
        self._foreign: dict[str, dict] = {}  # overflow calls of other workers bridged to our agent
        self._talk_started: dict[str, float] = {}
        self._rx: dict[str, float] = {}  # call uuid -> monotonic time its answer/overflow event arrived

    # -- life ------------------------------------------------------------------------

    def _spawn(self, fn: Callable, *args: Any, name: str = "") -> gevent.Greenlet:
        g = self.group.spawn(fn, *args)
        g.name = f"{self.s.agent}:{name or fn.__name__}"
        g.link_exception(self._died)
        return g

    def _died(self, g: gevent.Greenlet) -> None:
        logger.error("worker %s: greenlet %s died: %r", self.s.agent, getattr(g, "name", g), g.exception)

    def start(self) -> "AgentWorker":
        if self.store.recovered:
            logger.warning("worker %s: %d interrupted call(s) recovered from the contingency file", self.s.agent, self.store.recovered)
        for fn in (self._inbox_loop, self._agent_leg_loop, self._dial_loop, self._lease_loop, self._flush_loop,
                   self._heartbeat_loop, self._events_loop):
            self._spawn(fn, name=fn.__name__.strip("_"))
        return self

    def stop(self, timeout: float = 5.0, *, release: bool = True, hangup_agent: bool = True,
             drain_s: float = 10.0) -> None:
        """Stop dialing, let live calls end (hang them up after ``drain_s``), hand back
        unused records, flush results, end the greenlets.

        Draining keeps every attempt's result: a call cut by a plain kill would
        only be recovered as ``WORKER_RESTART`` at the next start.
        """
        self.draining.set()
        self._drain(drain_s)
        self._release_pending()
        self.stopping.set()
        for ev in (self.kick_dial, self.kick_flush, self.kick_report):
            ev.set()
        if release:
            held = self.store.held_ids()
            if held:
                try:
                    self.client.release(held)
                    for rid in held:
                        self.store.drop(rid, "released")
                except ControllerError as exc:
                    logger.info("worker %s: release on stop failed (%s); leases will expire", self.s.agent, exc)
        try:
            self._flush()
        except ControllerError as exc:
            logger.info("worker %s: final flush failed (%s); results stay in %s", self.s.agent, exc, self.store.path)
        if hangup_agent and self.agent_leg and self.switch.connected:
            try:
                self.switch.kill(self.agent_leg, "NORMAL_CLEARING")
            except sw.SwitchError as exc:
                logger.debug("worker %s: agent leg kill: %s", self.s.agent, exc)
        try:
            self.client.heartbeat(AgentState.OFFLINE.value, 0)
        except ControllerError:
            pass
        self.group.kill(timeout=timeout)
        self.store.close()

    def _flush(self) -> int:
        """Upload pending results (P10); serialised so two loops never send the same batch."""
        with self._flush_lock:
            return flush(self.store, self.client)

    def _live(self) -> bool:
        return bool(self.core.calls) or self.core.talking_to is not None

    def _drain(self, drain_s: float) -> None:
        deadline = time.monotonic() + drain_s
        while self._live() and time.monotonic() < deadline:
            gevent.sleep(0.1)
        if not self._live() or not self.switch.connected:
            return
        uuids = list(self.core.calls) + ([self.core.talking_to] if self.core.talking_to else [])
        logger.info("worker %s: hanging up %d live call(s) to stop", self.s.agent, len(uuids))
        for uuid in uuids:
            try:
                self.switch.kill(uuid, "MANAGER_REQUEST")
            except sw.SwitchError as exc:
                logger.info("worker %s: kill %s on stop: %s", self.s.agent, uuid, exc)
        deadline = time.monotonic() + 3.0
        while self._live() and time.monotonic() < deadline:
            gevent.sleep(0.05)

    def _release_pending(self) -> None:
        """A result waiting for its disposition is stored as it is (stopping)."""
        self._do(self.core.release_pending())

    # -- actions -----------------------------------------------------------------------

    def _do(self, actions: list[Action]) -> None:
        # Screen pops first: they cost nothing and the console should not wait
        # for the bridge/greeting round trips to the switch (D5: within 200 ms).
        for a in sorted(actions, key=lambda x: not isinstance(x, ScreenPop)):
            try:
                self._HANDLERS[type(a)](self, a)
            except (sw.SwitchError, ControllerError, ContingencyError) as exc:
                logger.warning("worker %s: action %s failed: %s", self.s.agent, a, exc)

    def _bridge_to_agent(self, a: BridgeToAgent) -> None:
        """D3/D4: party to our waiting leg, then the greeting to both legs.

        In its own greenlet: the inbox must not wait for switch round trips
        (the next answer's screen pop would wait behind them).
        """
        self._talk_started[a.call_uuid] = self.clock()
        self._spawn(self._bridge_job, a.call_uuid, name=f"bridge-{a.call_uuid[:8]}")

    def _bridge_job(self, uuid: str) -> None:
        leg = self.agent_leg
        try:
            if not leg:
                raise sw.SwitchError("no agent leg")
            try:
                # FreeSWITCH replies to uuid_bridge before the legs are joined; a greeting sent
                # before CHANNEL_BRIDGE fails (PLAYBACK ERROR), so wait for it (bounded).
                self.switch.bridge(uuid, leg, wait_s=self.s.bridge_wait_s)
            except sw.SwitchTimeout:
                logger.warning("worker %s: no CHANNEL_BRIDGE for call %s and agent leg %s within %.1f s: "
                               "greeting not played", self.s.agent, uuid, leg, self.s.bridge_wait_s)
                self.stats.greeting_skipped += 1
                return
            # uuid_broadcast <uuid> <path> both: the party and the leg bridged to it hear it (mod_commands)
            self.switch.broadcast(uuid, self.s.greeting_path, "both")
            logger.info("worker %s: call %s bridged to agent leg %s with greeting", self.s.agent, uuid, leg)
        except sw.SwitchError as exc:
            logger.warning("worker %s: bridge of %s to the agent failed: %s", self.s.agent, uuid, exc)
            try:
                gone = not self.switch.exists(uuid)
            except sw.SwitchError:
                gone = False
            if gone:  # e.g. an overflow party that hung up before we subscribed to it
                self.inbox.put(("gone", uuid, None))

    def _claim(self, a: ClaimAgent) -> None:
        self.stats.overflow_sent += 1
        self._spawn(self._claim_loop, a, name=f"claim-{a.call_uuid[:8]}")

    def _claim_loop(self, a: ClaimAgent) -> None:
        """D7: ask for an idle agent until the 2-s deadline; the claimed agent's worker bridges."""
        agent = None
        while self.clock() < a.deadline and not self.stopping.is_set():
            try:
                agent = self.fast.claim(call_uuid=a.call_uuid, record_id=int(a.record["id"]),
                                        min_skill=int(a.record.get("difficulty") or 0), exclude=[self.s.agent])
            except ControllerError as exc:
                logger.info("worker %s: claim for %s failed: %s", self.s.agent, a.call_uuid, exc)
                agent = None
            if agent is not None:
                break
            gevent.sleep(min(CLAIM_RETRY_S, max(0.0, a.deadline - self.clock())))
        self.inbox.put(("claim", a.call_uuid, agent))
        if agent is not None:
            gevent.sleep(self.s.overflow_bridge_s)
            self.inbox.put(("overflow_timeout", a.call_uuid, None))

    def _abandon(self, a: Abandon) -> None:
        self.stats.abandoned += 1
        self._spawn(self._abandon_call, a.call_uuid, name=f"abandon-{a.call_uuid[:8]}")

    def _abandon_call(self, uuid: str) -> None:
        """X1: the abandon message to the party, then hang up."""
        since = self.switch.seq
        try:
            self.switch.broadcast(uuid, self.s.abandon_message, "aleg")
            self.switch.wait_for(uuid, "PLAYBACK_STOP", timeout=self.s.abandon_max_s, since=since)
        except sw.ChannelHangup:
            return
        except sw.SwitchError as exc:
            logger.info("worker %s: abandon message on %s: %s", self.s.agent, uuid, exc)
        try:
            self.switch.kill(uuid, "NORMAL_CLEARING")
        except sw.SwitchError as exc:
            logger.info("worker %s: hang-up of abandoned %s: %s", self.s.agent, uuid, exc)

    def _report(self, a: ReportState) -> None:
        self.kick_report.set()
        self.kick_dial.set()
        if self.on_state is not None:
            self.on_state(self.s.agent, a.state)

    def _store(self, a: StoreResult) -> None:
        call = a.call
        self.store.record_result(call.result_payload(worker_agent=self.s.agent, iso=iso))
        self.stats.results_stored += 1
        self.kick_flush.set()
        res = call.result()
        if call.answered_at is not None and call.originated_at is not None:
            if res is AttemptResult.ABANDONED:
                self.pacer.call_abandoned(0.0)
        elif call.originated_at is not None and call.ended_at is not None:
            self.pacer.call_no_answer(call.ended_at - call.originated_at)

    def _screen_pop(self, a: ScreenPop) -> None:
        rx = self._rx.pop(a.call_uuid, None)
        if rx:
            self.stats.pop_latency_ms.append(round((time.monotonic() - rx) * 1000.0, 3))
        self.screen_pops.append(a.payload)
        if self.on_screen_pop is not None:
            self.on_screen_pop(a.payload)

    _HANDLERS: dict = {
        BridgeToAgent: _bridge_to_agent,
        ClaimAgent: _claim,
        Abandon: _abandon,
        ReportState: _report,
        StoreResult: _store,
        ScreenPop: _screen_pop,
    }

    # -- inbox: switch and controller events, applied in order --------------------------

    def _on_switch_event(self, ev) -> None:
        """Runs in the switch's dispatcher: never block, just queue."""
        self.inbox.put(("switch", ev.uuid, ev))

    def _inbox_loop(self) -> None:
        while not self.stopping.is_set():
            try:
                kind, uuid, payload = self.inbox.get(timeout=1.0)
            except gevent.queue.Empty:
                continue
            try:
                self._apply(kind, uuid, payload)
            except UnknownCall:
                logger.debug("worker %s: event %s for a finished call %s", self.s.agent, kind, uuid)
            except (IllegalCallTransition, IllegalAgentTransition) as exc:
                logger.error("worker %s: call %s: %s (event %s ignored)", self.s.agent, uuid, exc, kind)
            except Exception:  # the inbox must outlive any single bad event
                logger.exception("worker %s: call %s: handling %s failed", self.s.agent, uuid, kind)

    def _apply(self, kind: str, uuid: str, payload: Any) -> None:
        now = self.clock()
        core = self.core
        if kind == "switch":
            name = payload.name
            if name in ("CHANNEL_PROGRESS", "CHANNEL_PROGRESS_MEDIA"):
                if uuid in core.calls:
                    self._do(core.progress(uuid, now))
            elif name == "CHANNEL_ANSWER":
                if uuid in core.calls:
                    self._rx[uuid] = getattr(payload, "received_at", 0.0) or time.monotonic()
                    call = core.calls[uuid]
                    if call.ringing and call.originated_at is not None:
                        self.pacer.call_answered(now - call.originated_at)
                    self._do(core.answered(uuid, now))
            elif name == "CHANNEL_BRIDGE":
                call = core.calls.get(uuid)
                if call is not None and call.state is CallState.CLAIMING:
                    other = payload.get("Other-Leg-Unique-ID") or payload.get("Bridge-B-Unique-ID")
                    self._do(core.bridged_elsewhere(uuid, None, now))
                    logger.info("worker %s: overflow call %s bridged (other leg %s)", self.s.agent, uuid, other)
            elif name == "CHANNEL_HANGUP_COMPLETE":
                cause = payload.get("Hangup-Cause") or payload.variable("hangup_cause")
                if uuid == core.talking_to and uuid in self._talk_started:
                    self.pacer.talk_finished(now - self._talk_started.pop(uuid))
                self._foreign.pop(uuid, None)
                self._rx.pop(uuid, None)
                self._do(core.hangup(uuid, cause, now))
        elif kind == "originate_failed":
            self._do(core.originate_failed(uuid, payload, now))
        elif kind == "claim":
            self._do(core.claim_result(uuid, payload, now))
        elif kind == "gone":
            if uuid == core.talking_to or uuid in core.calls:
                self._foreign.pop(uuid, None)
                self._do(core.hangup(uuid, "NORMAL_CLEARING", now))
        elif kind == "overflow_timeout":
            self._do(core.overflow_timeout(uuid, now))
        elif kind == "overflow":
            self._take_overflow(uuid, payload, now)
        elif kind == "agent_leg":
            self._do(payload(now))
        self.kick_dial.set()

    def _take_overflow(self, uuid: str, record: dict, now: float) -> None:
        """D7 receiving side: the controller claimed our agent for another worker's call."""
        actions = self.core.take_overflow(uuid, record, now)
        if not actions:
            logger.warning("worker %s: overflow %s refused, agent is %s", self.s.agent, uuid, self.core.state.value)
            return
        self.stats.overflow_taken += 1
        self._foreign[uuid] = record
        self.switch.on_channel(uuid, self._on_switch_event)
        self._do(actions)  # the bridge job reports the call "gone" if it ended before we subscribed

    # -- agent leg -----------------------------------------------------------------------

    def _agent_leg_loop(self) -> None:
        """Keep the agent on a parked waiting leg; log in when it is up, out when it drops."""
        delay = 1.0
        while not self.stopping.is_set():
            if not self.switch.wait_connected(timeout=5.0):
                continue
            self.agent_leg_down.clear()
            try:
                reused = self._predecessor_leg()
            except sw.SwitchError as exc:
                logger.warning("worker %s: could not look for legs left on the switch (%s); retrying",
                               self.s.agent, exc)
                self.stopping.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            if self.stopping.is_set():
                return
            if reused is not None:
                self._hold_agent_leg(reused, "reused")
                self.stopping.wait(delay)
                continue
            uuid = new_uuid()
            self.switch.on_channel(uuid, self._on_agent_leg_event)
            try:
                res = self.switch.originate(
                    self.s.endpoint, app="park", uuid=uuid,
                    variables={
                        # keep the agent parked when the party hangs up (mod_dptools park_after_bridge)
                        "park_after_bridge": "true",
                        "hangup_after_bridge": "false",
                        "ignore_early_media": "true",
                        worker_legs.ROLE_VAR: worker_legs.ROLE_AGENT,
                        worker_legs.AGENT_VAR: self.s.agent,
                        worker_legs.OWNER_VAR: self.s.owner,
                    },
                    originate_timeout=self.s.agent_answer_timeout_s,
                )
            except sw.SwitchError as exc:
                res = None
                logger.warning("worker %s: agent leg originate failed: %s", self.s.agent, exc)
            if res is None or not res.ok:
                self.switch.off_channel(uuid)
                logger.warning("worker %s: agent %s did not answer (%s); retrying", self.s.agent, self.s.endpoint,
                               getattr(res, "cause", None))
                self.stopping.wait(delay)
                delay = min(delay * 2, 30.0)
                continue
            delay = 1.0
            self._hold_agent_leg(uuid, "up")
            if not self.stopping.is_set():
                self.stopping.wait(delay)

    def _hold_agent_leg(self, uuid: str, how: str) -> None:
        """The agent is logged in on leg ``uuid`` until it hangs up (or the worker stops)."""
        self.agent_leg = uuid
        logger.info("worker %s: agent leg %s %s on %s", self.s.agent, uuid, how, self.s.endpoint)
        self.inbox.put(("agent_leg", uuid, self.core.login))
        while not self.stopping.is_set() and not self.agent_leg_down.wait(1.0):
            pass
        self.agent_leg = None
        if not self.stopping.is_set():
            logger.warning("worker %s: agent leg %s hung up; logging the agent out", self.s.agent, uuid)
            self.inbox.put(("agent_leg", uuid, self.core.logout))

    def _predecessor_leg(self) -> Optional[str]:
        """Legs a killed predecessor left (issue 15 point 5, :mod:`esl_dialer.worker_legs`).

        Hangs up the ones nobody may use, waits while the agent's leg is
        still in a conversation the predecessor put through, and returns the
        parked waiting leg to reuse (subscribed, known to be alive) or None.
        """
        while not self.stopping.is_set():
            legs = worker_legs.survey(self.switch, self.s.owner)
            live = set(self.core.calls) | set(self._foreign) | {self.core.talking_to or ""}
            decision = worker_legs.plan(legs, self.s.owner, self.s.agent, live)
            for uuid in decision.hangup:
                logger.warning("worker %s: hanging up leg %s left by a previous worker", self.s.agent, uuid)
                self.switch.kill(uuid, "NORMAL_CLEARING")
            if decision.wait:
                logger.info("worker %s: agent leg %s left by a previous worker is in a call; waiting for its end",
                            self.s.agent, ", ".join(decision.wait))
                self.stopping.wait(1.0)
                continue
            uuid = decision.reuse
            if uuid is None:
                return None
            self.switch.on_channel(uuid, self._on_agent_leg_event)
            if self.switch.exists(uuid):  # subscribed first: a hang-up from now on is seen
                return uuid
            self.switch.off_channel(uuid)
        return None

    def _on_agent_leg_event(self, ev) -> None:
        if ev.name == "CHANNEL_HANGUP_COMPLETE":
            self.agent_leg_down.set()

    # -- dialing ---------------------------------------------------------------------------

    def agent_view(self) -> AgentView:
        core = self.core
        state = core.state
        if core.talking_to is not None and state in (AgentState.IDLE, AgentState.DIALING):
            state = AgentState.TALKING
        return AgentView(self.s.agent, state, core.machine.since)

    def ringing_and_waiting(self, now: float) -> tuple[list[float], list[float]]:
        calls = self.core.calls.values()
        return ([c.originated_at or now for c in calls if c.ringing],
                [c.answered_at or now for c in calls if c.state is CallState.CLAIMING])

    def _team(self, now: float) -> TeamSnapshot:
        ringing, waiting = self.ringing_and_waiting(now)
        return TeamSnapshot(now, (self.agent_view(),), tuple(ringing), tuple(waiting))

    def _lines(self, now: float) -> int:
        """New lines for this worker now: its share of the team's, or its own pacing alone."""
        if self.team is not None:
            return self.team.lines_for(self.s.agent, now)
        return self.pacer.lines_to_place(self._team(now))

    def _dial_loop(self) -> None:
        if self.s.overrides is not None:
            # dial with the campaign's settings from the first call; a controller that
            # does not answer at start costs CAMPAIGN_WAIT_S, then the worker's own apply
            self.campaign_seen.wait(timeout=CAMPAIGN_WAIT_S)
        while not self.stopping.is_set():
            self.kick_dial.wait(self.s.dial_interval_s)
            self.kick_dial.clear()
            if self.stopping.is_set():
                return
            now = self.clock()
            self._do(self.core.tick(now))
            if self.draining.is_set() or not (self.campaign_active and self.switch.connected and self.core.may_dial()):
                continue
            n = self._lines(now)
            if n <= 0:
                continue
            records = self.store.dialable(n)
            if not records:
                continue
            records = self._dial_check(records)
            for rec in records:
                self._place(rec)

    def _controller_suspect(self) -> bool:
        down = self.controller_down_since
        return down is not None and self.clock() - down < CONTROLLER_RECHECK_S

    def _dial_check(self, records: list[dict]) -> list[dict]:
        """D9/X1 right before dialing; with the controller down, the local window check (P10)."""
        now = self.clock()
        ok_ids: set[int] | None = None
        if not self._controller_suspect():
            try:
                ok, refused = self.fast.dial_check([int(r["id"]) for r in records])
                ok_ids = set(ok)
                self.controller_down_since = None
                for rid, reason in refused.items():
                    self._refused(rid, reason, now)
            except ControllerUnavailable:
                self.controller_down_since = self.clock()
            except ApiError as exc:
                logger.warning("worker %s: dial-check refused the request: %s", self.s.agent, exc)
                return []
        out = []
        for rec in records:
            if ok_ids is not None and int(rec["id"]) not in ok_ids:
                continue
            if not within_window(rec, now):
                self.stats.refused["local_window"] = self.stats.refused.get("local_window", 0) + 1
                continue  # held; dialed later if its lease lasts
            out.append(rec)
        return out

    def _refused(self, rid: int, reason: str, now: float) -> None:
        self.stats.refused[reason] = self.stats.refused.get(reason, 0) + 1
        if reason in ("dnc", "outside_hours"):
            result = AttemptResult.DNC if reason == "dnc" else AttemptResult.OUTSIDE_HOURS
            self.store.record_result({
                "client_id": new_client_id(), "record_id": rid, "result": result.value, "call_uuid": None,
                "agent": self.s.agent, "started_at": iso(now), "answered_at": None, "connected_at": None,
                "ended_at": iso(now), "hangup_cause": None, "disposition": None, "abandoned": False,
            })
            self.kick_flush.set()
        else:
            self.store.drop(rid)

    def _place(self, rec: dict) -> None:
        # D6: re-check right before the originate (the dial-check yielded to other greenlets)
        if not (self.core.may_dial() and self.campaign_active and not self.draining.is_set()):
            return
        uuid = new_uuid()
        try:
            client_id = self.store.mark_dialing(int(rec["id"]), uuid, agent=self.s.agent)
        except ContingencyError as exc:
            logger.info("worker %s: record %s not dialable: %s", self.s.agent, rec.get("id"), exc)
            return
        call = Call(uuid, rec, client_id)
        self._do(self.core.placed(call, self.clock()))
        self.stats.dialed_while_talking = self.core.dialed_while_talking
        self.stats.placed += 1
        self.pacer.call_placed()
        self.switch.on_channel(uuid, self._on_switch_event)
        self._spawn(self._originate, call, name=f"orig-{uuid[:8]}")

    def _originate(self, call: Call) -> None:
        rec = call.record
        variables = {
            "ignore_early_media": "true",
            "dialer_record_id": rec["id"],
            "dialer_worker": self.s.agent,
            "dialer_agent": self.s.agent,
            "dialer_client_id": call.client_id,
            worker_legs.ROLE_VAR: worker_legs.ROLE_CALL,
            worker_legs.OWNER_VAR: self.s.owner,
        }
        if self.s.campaign:
            variables["dialer_campaign"] = self.s.campaign
        try:
            res = self.switch.originate(
                dial_string(self.s.dial_template, number=rec["number"]), app="park", uuid=call.call_uuid,
                variables=variables, cid_name=self.s.caller_id_name, cid_num=self.s.caller_id_number,
                originate_timeout=self.s.originate_timeout_s,
            )
        except sw.SwitchError as exc:
            logger.warning("worker %s: originate %s for record %s failed: %s", self.s.agent, call.call_uuid, rec["id"], exc)
            self.inbox.put(("originate_failed", call.call_uuid, "NORMAL_TEMPORARY_FAILURE"))
            return
        except ValueError as exc:  # the command builder refused the number or a variable
            logger.warning("worker %s: record %s not dialable: %s", self.s.agent, rec["id"], exc)
            self.inbox.put(("originate_failed", call.call_uuid, "INVALID_NUMBER_FORMAT"))
            return
        if not res.ok:
            self.inbox.put(("originate_failed", call.call_uuid, res.cause or "UNKNOWN"))

    # -- controller ------------------------------------------------------------------------

    def _lease_loop(self) -> None:
        delay = 0.5
        while not self.stopping.is_set():
            try:
                self.store.expire()
                if self.store.held_count() < self.s.low_water and self.campaign_active and not self.draining.is_set():
                    self._flush()  # results first: never re-lease what we just dialed
                    got = self.client.lease(self.s.lease_batch)
                    n = self.store.add_leased(got.get("records") or [], got.get("lease_seconds"))
                    delay = 0.5
                    if n:
                        self.kick_dial.set()
                        continue
                    self.stopping.wait(2.0)  # nothing to lease now
                    continue
            except ControllerError as exc:
                logger.info("worker %s: lease failed: %s", self.s.agent, exc)
                self.stopping.wait(delay)
                delay = min(delay * 2, 5.0)
                continue
            self.stopping.wait(0.5)

    def _flush_loop(self) -> None:
        delay = 0.5
        next_prune = time.monotonic() + PRUNE_EVERY_S
        while not self.stopping.is_set():
            self.kick_flush.wait(1.0)
            self.kick_flush.clear()
            try:
                self._flush()
                delay = 0.5
                if time.monotonic() >= next_prune:
                    next_prune = time.monotonic() + PRUNE_EVERY_S
                    n = self.store.prune(PRUNE_AFTER_S)  # acknowledged results and closed records only
                    if n:
                        logger.info("worker %s: pruned %d old rows from the contingency file", self.s.agent, n)
            except ControllerError as exc:
                logger.info("worker %s: results kept locally (%s)", self.s.agent, exc)
                self.stopping.wait(delay)
                delay = min(delay * 2, 5.0)

    def _heartbeat_loop(self) -> None:
        while not self.stopping.is_set():
            self.kick_report.wait(self.s.heartbeat_s)
            self.kick_report.clear()
            if self.stopping.is_set():
                return
            state = self.core.state
            try:
                sent_at = self.store.clock()
                reply = self.client.heartbeat(state.value, self.core.active_calls)
                self.reported_state = state
                if (reply or {}).get("lease_seconds"):
                    # the controller renewed this worker's leases (D1): so do we
                    self.store.renew_held(sent_at, float(reply["lease_seconds"]))
                if isinstance((reply or {}).get("campaign"), dict):
                    self._apply_campaign(reply["campaign"])
                status = (reply or {}).get("campaign_status")
                if status:
                    self._campaign_status(status)
            except ControllerError as exc:
                logger.info("worker %s: heartbeat failed: %s", self.s.agent, exc)
                self.kick_report.set()  # report again as soon as possible
                self.stopping.wait(1.0)

    def set_disposition(self, value: str) -> None:
        """The agent's disposition for the call they are on or just finished (P6).

        Runs the core directly: its methods never yield, so this cannot
        interleave with the inbox.  Raises ValueError when there is no call.
        """
        self._do(self.core.set_disposition(value, self.clock()))

    def preview_dial(self) -> bool:
        """Preview mode (D2): the agent clicked "dial next"; one line when the agent is free."""
        if self.s.mode is not DialMode.PREVIEW or not self.core.may_dial():
            return False
        self.pacer.preview_dial(self.s.agent)
        self.kick_dial.set()
        return True

    def _campaign_status(self, status: str) -> None:
        active = status == "active"
        if active != self.campaign_active:
            logger.info("worker %s: campaign is %s", self.s.agent, status)
        self.campaign_active = active
        if active:
            self.kick_dial.set()
        elif status == "finished" and not self.draining.is_set():
            self._release_held()

    def _release_held(self) -> None:
        """Campaign finished: hand back every record not being dialed (calls in progress end normally)."""
        held = self.store.held_ids()
        if not held:
            return
        try:
            self.client.release(held)
        except ControllerError as exc:
            logger.info("worker %s: release after finish failed (%s); leases will expire", self.s.agent, exc)
            return
        for rid in held:
            self.store.drop(rid, "released")
        logger.info("worker %s: campaign finished, %d record(s) released", self.s.agent, len(held))

    def _apply_campaign(self, campaign: dict) -> None:
        """Dialing settings from the controller (heartbeat reply / ``campaign`` event; P14, D2, X1).

        A setting named in ``WorkerSettings.overrides`` (given on the worker's
        own command line or config) wins; ``overrides=None`` keeps them all.
        """
        if self.s.overrides is None:
            return
        changes = campaign_changes(self.s, campaign)
        self.campaign_seen.set()
        if not changes:
            return
        old = self.s
        self.s = replace(self.s, **changes)
        logger.info("worker %s: campaign settings applied: %s", self.s.agent,
                    ", ".join(f"{k}={getattr(self.s, k)}" for k in sorted(changes)))
        if (old.mode, old.ratio, old.abandon_target) != (self.s.mode, self.s.ratio, self.s.abandon_target):
            config = PacingConfig(mode=self.s.mode, ratio=self.s.ratio, abandon_target=self.s.abandon_target)
            if self.team is not None and self.s.mode is DialMode.PREVIEW:
                # preview clicks are per agent: leave the shared team pacer
                self.team.workers.pop(self.s.agent, None)
                self.team = None
            if self.team is not None:
                self.team.reconfigure(config)
                self.pacer = self.team.pacer
            else:
                self.pacer = make_pacer(config, self.clock)
            self.kick_dial.set()

    def _events_loop(self) -> None:
        self.client.listen_events(self._on_controller_event, stop=self.stopping)

    def _on_controller_event(self, ev: SseEvent) -> None:
        data = ev.data if isinstance(ev.data, dict) else {}
        if ev.event == "overflow" and data.get("call_uuid"):
            self._rx[str(data["call_uuid"])] = time.monotonic()
            self.inbox.put(("overflow", str(data["call_uuid"]), data.get("record") or {}))
        elif ev.event == "campaign" and data.get("status"):
            if "dial_mode" in data:
                self._apply_campaign(data)
            self._campaign_status(str(data["status"]))


#: at start, how long the dial loop waits for the campaign's settings (first heartbeat reply)
CAMPAIGN_WAIT_S = 3.0

#: campaign setting (controller name) -> WorkerSettings field
CAMPAIGN_SETTINGS = {
    "dial_mode": "mode",
    "dial_ratio": "ratio",
    "abandon_target": "abandon_target",
    "caller_id_number": "caller_id_number",
    "caller_id_name": "caller_id_name",
    "abandon_message": "abandon_message",
}


def campaign_changes(settings: WorkerSettings, campaign: dict) -> dict:
    """WorkerSettings fields to change for a campaign payload (pure).

    Skips fields in ``settings.overrides``, missing/None values (an unset
    abandon message keeps the worker's file) and values that do not parse.
    """
    overrides = settings.overrides or frozenset()
    out: dict = {}
    for key, attr in CAMPAIGN_SETTINGS.items():
        if attr in overrides or campaign.get(key) is None:
            continue
        raw = campaign[key]
        try:
            if attr == "mode":
                value: Any = DialMode(str(raw))
            elif attr in ("ratio", "abandon_target"):
                value = float(raw)
                if not 0 < value <= (10 if attr == "ratio" else 1):
                    raise ValueError(raw)
            else:
                value = str(raw)
        except (TypeError, ValueError):
            logger.warning("worker %s: campaign setting %s=%r ignored", settings.agent, key, raw)
            continue
        if value != getattr(settings, attr):
            out[attr] = value
    return out


def __getattr__(name: str):
    """``WorkerHost`` / ``HostTeam`` live in :mod:`esl_dialer.worker_host` (imported lazily: no cycle)."""
    if name in ("WorkerHost", "HostTeam"):
        from . import worker_host

        return getattr(worker_host, name)
    raise AttributeError(name)

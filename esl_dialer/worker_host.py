"""Many agent workers in one process (D11): shared Switch, team pacing, agent console.

``dialer worker --agents 1001,1002,...`` runs one :class:`WorkerHost`.  The
agents it hosts are paced as one team (:class:`HostTeam`) since D7 overflow
makes them one pool, and their screen pops go to the console it serves (D5).
"""
from __future__ import annotations

import logging
import time
from typing import Any, Callable

import gevent.pool

from . import switch as sw
from .messages import DialMode
from .pacing import PacingConfig, make_pacer
from .team import TeamSnapshot
from .team import agent_share as team_agent_share
from .worker import AgentWorker, WorkerSettings

logger = logging.getLogger(__name__)


class HostTeam:
    """The agents of one process paced as one team (D7 overflow makes them one pool).

    One pacer learns from every worker's outcomes; each worker asks for its
    share of the team's lines (``pacing.Pacer.agent_share``) computed from a
    snapshot of all the agents and all their ringing and waiting calls.
    Agents in other processes are not part of this team (their ringing calls
    are not known here); they still take this team's overflow.
    """

    def __init__(self, config: PacingConfig, clock: Callable[[], float] = time.time) -> None:
        self.pacer = make_pacer(config, clock)
        self.clock = clock
        self.workers: dict[str, AgentWorker] = {}

    def add(self, worker: AgentWorker) -> None:
        self.workers[worker.s.agent] = worker

    def reconfigure(self, config: PacingConfig) -> None:
        """New pacing settings from the campaign (idempotent: every worker of the team calls it)."""
        if config != self.pacer.config:
            self.pacer = make_pacer(config, self.clock)

    def snapshot(self, now: float) -> TeamSnapshot:
        agents, ringing, waiting = [], [], []
        for w in self.workers.values():
            agents.append(w.agent_view())
            r, q = w.ringing_and_waiting(now)
            ringing += r
            waiting += q
        return TeamSnapshot(now, tuple(agents), tuple(ringing), tuple(waiting))

    def lines_for(self, agent: str, now: float) -> int:
        """This worker's share of the team's new lines.

        The team's number comes from every agent (a free agent takes overflow
        even when its own worker has nothing left to dial); the split goes
        only to workers that can dial now (agent free, records held), else
        lines handed to a worker with an empty file would be lost.
        """
        snap = self.snapshot(now)
        total = self.pacer.lines_to_place(snap)
        if total <= 0:
            return 0
        able = {a for a, w in self.workers.items() if w.core.may_dial() and w.store.held_count() > 0}
        if agent not in able:
            return 0
        dialers = TeamSnapshot(now, tuple(v for v in snap.agents if v.agent_id in able), snap.ringing, snap.waiting)
        return team_agent_share(total, dialers, agent)


class WorkerHost:
    """Many agent workers in one process, sharing one Switch (D11), and their agent console (D5).

    With ``team_pacing`` (default) and one dial mode for all, the process's
    agents are paced as one team (:class:`HostTeam`).
    """

    def __init__(self, settings: list[WorkerSettings], switch: "sw.Switch", *,
                 console: tuple[str, int] | None = None, team_pacing: bool = True, **kw: Any) -> None:
        from .console import PopHub

        self.switch = switch
        self.hub = PopHub()
        self.team: HostTeam | None = None
        modes = {(s.mode, s.ratio, s.abandon_target) for s in settings}
        # preview clicks are per agent: a shared pacer would hand one agent's click to another
        if team_pacing and len(settings) > 1 and len(modes) == 1 and settings[0].mode is not DialMode.PREVIEW:
            mode, ratio, target = modes.pop()
            self.team = HostTeam(PacingConfig(mode=mode, ratio=ratio, abandon_target=target), kw.get("clock", time.time))
        self.workers = [
            AgentWorker(s, switch, on_screen_pop=lambda p, a=s.agent: self.hub.publish(a, "pop", p),
                        on_state=lambda a, st: self.hub.publish(a, "state", {"state": st.value}),
                        team=self.team, **kw)
            for s in settings
        ]
        if self.team is not None:
            for w in self.workers:
                self.team.add(w)
        self.by_agent = {w.s.agent: w for w in self.workers}
        self.console_addr = console
        self.console_server = None

    def start(self) -> "WorkerHost":
        for w in self.workers:
            w.start()
        if self.console_addr is not None:
            self._start_console()
        return self

    def _start_console(self) -> None:
        from gevent.pywsgi import WSGIServer
        from werkzeug.security import generate_password_hash

        from .console import create_console_app

        passwords = {s.agent: generate_password_hash(s.console_password)
                     for s in (w.s for w in self.workers) if s.console_password}
        if not passwords:
            logger.warning("agent console: no agent has a console_password; nobody can log in")
        app = create_console_app(self.hub, passwords,
                                 lambda a: (w.core.state.value if (w := self.by_agent.get(a)) else None),
                                 on_dial=lambda a: bool((w := self.by_agent.get(a)) and w.preview_dial()),
                                 on_disposition=self._disposition,
                                 greetings_dir_of=lambda a: (w.s.greetings_dir if (w := self.by_agent.get(a)) else None))
        self.console_server = WSGIServer(self.console_addr, app, log=None)
        self.console_server.start()
        logger.info("agent console on http://%s:%s/", self.console_addr[0], self.console_server.server_port)

    def _disposition(self, agent: str, value: str) -> None:
        w = self.by_agent.get(agent)
        if w is None:
            raise ValueError(f"no worker for agent {agent}")
        w.set_disposition(value)

    def stop(self, timeout: float = 5.0) -> None:
        if self.console_server is not None:
            self.console_server.stop(timeout=1)
        group = gevent.pool.Group()
        for w in self.workers:
            group.spawn(w.stop, timeout)
        group.join(timeout=timeout * 2)

"""The whole system on simulated switches, in one process (`dialer demo`, `make demo`).

What runs, all as greenlets of this one gevent process:

* the controller (worker API + dashboard) on gevent's WSGI server, with its
  housekeeping greenlet (:func:`controller.serve.housekeeping`);
* the outbound center's simulated FreeSWITCH (``samples/demo_sim.toml``);
* five agent workers (1001-1005) in one :class:`esl_dialer.worker.WorkerHost`
  sharing one event-socket connection, with the agent console;
* unless ``--no-ivr``: a second simulated switch for the inbound/IVR side,
  the local IVR, the remote center's leg acceptor and simulated callers and
  operators (:func:`controller.ivr_demo.start_ivr_demo`); the controller is
  also the remote center's ACD, so the dashboard's Proxies page shows the
  remote queue;
* a progress reporter and, when the campaign runs dry, a re-armer that puts
  the sample records back in their pool so the demo keeps dialing.

The process must be monkey-patched before anything else is imported (the
controller's SSE hub waits on threading primitives, psycopg picks its wait
function at import); ``dialer demo`` therefore runs :data:`BOOTSTRAP` in a
fresh interpreter (see :func:`exec_demo`).
"""
from __future__ import annotations

import contextlib
import dataclasses
import datetime as dt
import errno
import gc
import logging
import os
import secrets
import signal
import sys
import time
from pathlib import Path
from typing import Any, Callable, Optional

logger = logging.getLogger(__name__)

ROOT = Path(__file__).resolve().parent.parent
DEMO_SIM_CONFIG = ROOT / "samples" / "demo_sim.toml"
AGENTS = ("1001", "1002", "1003", "1004", "1005")
DEMO_USER = "demo"
IVR_OPERATORS = 2
PROGRESS_EVERY_S = 5.0
REARM_CHECK_S = 10.0
#: the demo's calling window: every hour, so the demo dials whenever it is run (X1 still applies per record)
DEMO_WINDOW = ("00:00", "23:59")

BOOTSTRAP = (
    "from gevent import monkey; monkey.patch_all()\n"
    "import sys\n"
    "from controller.demo_stack import main\n"
    "sys.exit(main(sys.argv[1:]))\n"
)


@dataclasses.dataclass(frozen=True)
class DemoOptions:
    database_file: Path
    host: str = "127.0.0.1"
    port: int = 5000  # dashboard / controller
    sim_port: int = 8021  # outbound simulated switch; the IVR switch takes sim_port + 1
    console_port: int = 8090  # agent console
    auto_ports: bool = False  # every listener on an ephemeral port (tests)
    duration: Optional[float] = None  # seconds; None = until Ctrl-C
    ivr: bool = True
    password: Optional[str] = None  # dashboard and agent-console password; random when None
    sim_config: Path = DEMO_SIM_CONFIG
    verbose: int = 0

    def to_argv(self) -> list[str]:
        argv = ["--database-file", str(self.database_file), "--host", self.host, "--port", str(self.port),
                "--sim-port", str(self.sim_port), "--console-port", str(self.console_port),
                "--sim-config", str(self.sim_config)]
        if self.auto_ports:
            argv.append("--auto-ports")
        if self.duration is not None:
            argv += ["--duration", repr(self.duration)]
        if not self.ivr:
            argv.append("--no-ivr")
        if self.verbose:
            argv += ["--verbose", str(self.verbose)]
        return argv

    @classmethod
    def from_argv(cls, argv: list[str]) -> "DemoOptions":
        import argparse

        p = argparse.ArgumentParser(prog="controller.demo_stack")
        p.add_argument("--database-file", type=Path, required=True)
        p.add_argument("--host", default="127.0.0.1")
        p.add_argument("--port", type=int, default=5000)
        p.add_argument("--sim-port", type=int, default=8021)
        p.add_argument("--console-port", type=int, default=8090)
        p.add_argument("--sim-config", type=Path, default=DEMO_SIM_CONFIG)
        p.add_argument("--auto-ports", action="store_true")
        p.add_argument("--duration", type=float)
        p.add_argument("--no-ivr", action="store_true")
        p.add_argument("--verbose", type=int, default=0)
        a = p.parse_args(argv)
        return cls(database_file=a.database_file, host=a.host, port=a.port, sim_port=a.sim_port,
                   console_port=a.console_port, auto_ports=a.auto_ports, duration=a.duration,
                   ivr=not a.no_ivr, password=os.environ.get("DIALER_DEMO_PASSWORD") or None,
                   sim_config=a.sim_config, verbose=a.verbose)

    def listen_port(self, port: int) -> int:
        return 0 if self.auto_ports else port


def exec_demo(options: DemoOptions) -> None:
    """Replace this process with a monkey-patched interpreter running the demo (never returns).

    Refuses when stdout is not a real file (click's CliRunner in a test): the
    exec would replace the test runner itself.
    """
    import io

    try:
        sys.stdout.fileno()
    except (AttributeError, io.UnsupportedOperation, ValueError):
        raise RuntimeError("`dialer demo` runs in a fresh process and needs a real stdout; "
                           "in tests use --load-only or run it as a subprocess") from None
    sys.stdout.flush()
    sys.stderr.flush()
    os.execv(sys.executable, [sys.executable, "-c", BOOTSTRAP, *options.to_argv()])


def say(msg: str = "") -> None:
    print(msg, flush=True)


# --- set-up on the database (idempotent) ---------------------------------------------------


def activate_campaign(db, name: str) -> int:
    """Campaign ``name`` active with the demo's all-day window; returns its id."""
    import sqlalchemy as sa

    from esl_dialer.messages import CampaignStatus

    from .models import Campaign

    with db.session() as s:
        c = s.scalar(sa.select(Campaign).where(Campaign.name == name))
        c.status = CampaignStatus.ACTIVE
        c.window_start, c.window_end = DEMO_WINDOW
        return c.id


def ensure_dashboard_user(db, username: str, password: str) -> None:
    from .errors import Conflict
    from .services import users

    try:
        users.add_user(db, username, password, role="admin")
    except Conflict:
        users.set_password(db, username, password)


def ensure_workers(db, campaign_id: int, agents: tuple[str, ...]) -> dict[str, str]:
    """One worker per agent (``demo-<ext>``); a re-run gives existing workers a fresh token.

    Tokens are stored hashed and shown once, so the only way to reuse a worker
    is a new token; the worker, its agent and its queue stay as they were.
    """
    import sqlalchemy as sa

    from .models import Worker
    from .services import workers

    tokens: dict[str, str] = {}
    for ext in agents:
        name = f"demo-{ext}"
        with db.session() as s:
            w = s.scalar(sa.select(Worker).where(Worker.name == name))
            if w is not None:
                token = secrets.token_urlsafe(32)
                w.token_hash = workers.hash_token(token)
                tokens[ext] = token
                continue
        tokens[ext] = workers.add_worker(db, name, agent=ext, campaign_id=campaign_id).token
    return tokens


def rearm_records(db, campaign_id: int, *, min_ready: int = 1) -> int:
    """Put the campaign's finished records back in their pools when fewer than
    ``min_ready`` can be dialed now (a demo that keeps going, and re-runs that dial).

    Records on the do-not-call list stay out; attempts stay recorded.  Also
    returns records a crashed earlier run left leased.  Returns how many came back.
    """
    import sqlalchemy as sa

    from esl_dialer.messages import RecordStatus as S

    from . import record_status
    from .models import CallRecord

    now = dt.datetime.now(dt.timezone.utc).replace(tzinfo=None)
    with db.session() as s:
        ready = s.scalar(sa.select(sa.func.count()).select_from(CallRecord).where(
            CallRecord.campaign_id == campaign_id, CallRecord.status == S.READY,
            sa.or_(CallRecord.next_attempt_at.is_(None), CallRecord.next_attempt_at <= now)))
        live = s.scalar(sa.select(sa.func.count()).select_from(CallRecord).where(
            CallRecord.campaign_id == campaign_id, CallRecord.status.in_([S.QUEUED, S.LEASED])))
        if ready >= min_ready or live:
            return 0
        n = record_status.bulk_set_status(
            s, S.READY, where=[CallRecord.campaign_id == campaign_id], from_statuses=[S.DONE, S.EXHAUSTED],
            attempts=0, next_attempt_at=None)
        n += s.execute(sa.update(CallRecord).where(
            CallRecord.campaign_id == campaign_id, CallRecord.status == S.READY,
            CallRecord.next_attempt_at > now).values(next_attempt_at=None)
            .execution_options(synchronize_session=False)).rowcount
        return n


def release_stale_leases(db, campaign_id: int) -> int:
    """Records an earlier run left queued or leased (killed without a clean stop) go back."""
    from esl_dialer.messages import RecordStatus as S

    from . import record_status
    from .models import CallRecord

    with db.session() as s:
        return record_status.bulk_set_status(s, S.READY, where=[CallRecord.campaign_id == campaign_id],
                                             from_statuses=[S.LEASED, S.QUEUED], queue_seq=None)


# --- the running stack ----------------------------------------------------------------------


class DemoStack:
    """Starts, reports on and stops every part (see module docs)."""

    def __init__(self, options: DemoOptions) -> None:
        self.o = options
        self.password = options.password or secrets.token_urlsafe(9)
        self.db = None
        self.campaign_id = 0
        self.app = None
        self.http = None
        self.sim = None
        self.ivr_sim = None
        self.switch = None
        self.host = None
        self.ivr = None
        self.group = None
        self.stop_event = None
        self.rearmed = 0
        self.data_dir = None
        self.tokens: dict[str, str] = {}
        self.url = ""
        self.console_url = ""
        self.t0 = time.monotonic()

    # life
    def prepare(self) -> None:
        from .commands.demo import DEMO_CAMPAIGN, prepare_demo_database

        say("== esl-dialer demo: setting up ==")
        self.db, summary = prepare_demo_database(self.o.database_file, echo=lambda m: say(f"  {m}"))
        for line in summary.lines():
            say(f"  {line}")
        self.campaign_id = activate_campaign(self.db, DEMO_CAMPAIGN)
        say(f"  campaign {DEMO_CAMPAIGN!r} active, calling window {DEMO_WINDOW[0]}-{DEMO_WINDOW[1]} "
            "(all day, so the demo dials whenever you run it)")
        stale = release_stale_leases(self.db, self.campaign_id)
        if stale:
            say(f"  {stale} record(s) still queued or leased from an earlier run returned to their pool")
        back = rearm_records(self.db, self.campaign_id)
        if back:
            say(f"  {back} sample record(s) dialed in an earlier run put back in their pool")
        ensure_dashboard_user(self.db, DEMO_USER, self.password)
        self.tokens = ensure_workers(self.db, self.campaign_id, AGENTS)
        say(f"  dashboard user {DEMO_USER!r}; workers demo-{AGENTS[0]}..demo-{AGENTS[-1]} registered")

    def start(self) -> None:
        import gevent.event
        import gevent.pool
        from gevent.pywsgi import WSGIServer

        from esl_dialer import switch as sw
        from esl_dialer.messages import DialMode
        from esl_dialer.sim import SimConfig, SimSwitch, load_sim_config
        from esl_dialer.worker import WorkerSettings
        from esl_dialer.worker_host import WorkerHost

        from . import create_app
        from .config import Config
        from .serve import housekeeping

        o = self.o
        self.stop_event = gevent.event.Event()
        self.group = gevent.pool.Group()
        # controller
        cfg = Config()
        cfg.DATABASE_URL = f"sqlite:///{Path(o.database_file).resolve()}"
        self.app = create_app(cfg)
        # a pool, so that stop() ends the long-lived requests too (workers' event streams, live pages)
        self.http = WSGIServer((o.host, o.listen_port(o.port)), self.app, log=None,
                               error_log=logging.getLogger("controller.wsgi"), spawn=gevent.pool.Pool(1000))
        self.http.start()
        self._spawn(housekeeping, self.app, self.stop_event)
        self.url = f"http://{o.host}:{self.http.server_port}"
        # outbound switch
        sim_cfg = load_sim_config(o.sim_config)
        self.sim = SimSwitch(sim_cfg, host=o.host, port=o.listen_port(o.sim_port)).start()
        for ext in AGENTS:
            if ext not in self.sim.users:
                self.sim.add_user(ext, answer_after_s=0.5)
        # workers, one process, one event-socket connection
        self.switch = sw.Switch(o.host, self.sim.port, self.sim.password, name="demo switch").start()
        # contingency files belong to one controller URL: fixed ports reuse them run after run (results
        # of a killed run are flushed at the next start); ephemeral ports get a directory of their own
        data_dir = Path(o.database_file).resolve().parent / "worker" / (
            f"{'auto' if o.auto_ports else 'port'}-{self.http.server_port}")
        self.data_dir = data_dir
        settings = [WorkerSettings(
            agent=ext, controller=self.url, token=self.tokens[ext], data_dir=data_dir,
            dial_template="sofia/gateway/demo/{number}", greetings_dir="/sounds/esl-dialer/greetings",
            abandon_message="/sounds/esl-dialer/abandon.wav", campaign="demo",
            mode=DialMode.PREDICTIVE, abandon_target=0.03, lease_batch=10, low_water=4,
            heartbeat_s=2.0, wrapup_s=3.0, originate_timeout_s=25, console_password=self.password,
        ) for ext in AGENTS]
        self.host = WorkerHost(settings, self.switch, console=(o.host, o.listen_port(o.console_port))).start()
        self.console_url = f"http://{o.host}:{self.host.console_server.server_port}"
        # inbound: IVR to the remote center
        if o.ivr:
            from .ivr_demo import start_ivr_demo

            ivr_port = 0 if o.auto_ports else o.sim_port + 1
            self.ivr_sim = SimSwitch(SimConfig(time_scale=sim_cfg.time_scale, seed=7, hostname="demo-ivr-sim",
                                               playback_default_s=3.0), host=o.host, port=ivr_port).start()
            self.ivr = start_ivr_demo(self.ivr_sim, self.db, self.url, operators=IVR_OPERATORS, callers_per_minute=10.0,
                                      talk_s=(30.0, 90.0))
        self.t0 = time.monotonic()  # progress lines count from here
        self._spawn(self._progress_loop)
        self._spawn(self._rearm_loop)
        self.banner()

    def _spawn(self, fn: Callable, *args: Any):
        g = self.group.spawn(fn, *args)
        g.link_exception(lambda g: logger.error("demo greenlet %s died: %r", fn.__name__, g.exception))
        return g

    def banner(self) -> None:
        o = self.o
        say("")
        say("=" * 72)
        say("esl-dialer demo is running")
        say(f"  Dashboard      {self.url}/   login: {DEMO_USER} / {self.password}")
        say(f"                 {self.url}/campaigns (abandon rate), {self.url}/agents (live states)")
        if o.ivr:
            say(f"                 {self.url}/proxies (remote queue: callers held by the IVR, bridged calls)")
        say(f"  Agent console  {self.console_url}/   login: agent extension {', '.join(AGENTS)} / {self.password}")
        say(f"  Outbound sim   FreeSWITCH event socket {o.host}:{self.sim.port} (password {self.sim.password}), "
            f"time x{1 / self.sim.config.time_scale:g}")
        if o.ivr:
            say(f"  IVR sim        {o.host}:{self.ivr_sim.port}: callers dial 7000, press 1 for the remote "
                f"queue 'support' ({IVR_OPERATORS} operators, 2001-{2000 + IVR_OPERATORS})")
        say(f"  Agents         {', '.join(AGENTS)} (predictive dialing, 3% abandon target)")
        stop = f"for {o.duration:g} s" if o.duration else "until Ctrl-C"
        say(f"  Running {stop}; progress every {PROGRESS_EVERY_S:g} s.")
        say("=" * 72)

    def run(self) -> None:
        import gevent

        for sig in (signal.SIGINT, signal.SIGTERM):
            gevent.signal_handler(sig, self.stop_event.set)
        deadline = None if self.o.duration is None else time.monotonic() + self.o.duration
        while not self.stop_event.is_set():
            wait = 3600.0 if deadline is None else deadline - time.monotonic()
            if wait <= 0 or self.stop_event.wait(timeout=min(wait, 3600.0)):
                break

    def stop(self) -> list[str]:
        """Stop everything, innermost first; returns the names of greenlets still alive (should be none)."""
        import gevent
        import gevent.pool

        say("== stopping: callers, workers (live calls end, unused records go back), switches, controller ==")
        t0 = time.monotonic()
        if self.stop_event is not None:
            self.stop_event.set()

        def stop_callers_and_workers() -> None:
            # the two sides are independent: stop them side by side
            stoppers = gevent.pool.Group()
            if self.ivr is not None:
                stoppers.spawn(self.ivr.stop, 3)
            if self.host is not None:
                if self.host.console_server is not None:
                    self.host.console_server.stop(timeout=1)
                for w in self.host.workers:
                    stoppers.spawn(w.stop, 3.0, drain_s=3.0)
            stoppers.join(timeout=15)

        steps = [
            ("IVR, callers and workers", True, stop_callers_and_workers),
            ("switch connection", self.switch is not None, lambda: self.switch.close()),
            ("IVR switch", self.ivr_sim is not None, lambda: self.ivr_sim.stop(timeout=3)),
            ("outbound switch", self.sim is not None, lambda: self.sim.stop(timeout=3)),
            ("reporters", self.group is not None, lambda: self.group.kill(timeout=5)),
            ("controller", self.http is not None, lambda: self.http.stop(timeout=1)),
            ("controller database", self.app is not None, lambda: self.app.extensions["dialer_db"].dispose()),
        ]
        for label, present, fn in steps:
            if present:
                t = time.monotonic()
                fn()
                logger.info("demo: %s stopped in %.1f s", label, time.monotonic() - t)
        gevent.sleep(0.2)
        left = leftover_greenlets()
        if left:
            # e.g. a browser tab still streaming from the agent console, whose server has no pool
            logger.info("ending %d request greenlet(s) still running: %s", len(left), ", ".join(left))
            gevent.killall([g for g in gc.get_objects() if _running_greenlet(g)], timeout=3)
            left = leftover_greenlets()
        self.final_report()
        say(f"stopped in {time.monotonic() - t0:.1f} s")
        if self.db is not None:
            self.db.dispose()
        return left

    def remove_auto_data_dir(self) -> None:
        """After a clean stop with ephemeral ports: the contingency files (all flushed) go too."""
        import shutil

        if self.data_dir is None or not self.data_dir.name.startswith("auto-"):
            return
        import sqlite3

        pending = 0
        for path in self.data_dir.glob("contingency-*.sqlite"):
            try:
                with contextlib.closing(sqlite3.connect(path)) as con:
                    pending += con.execute("SELECT COUNT(*) FROM result WHERE acked_at IS NULL").fetchone()[0]
            except sqlite3.Error as exc:
                logger.warning("demo: cannot read %s (%s); keeping it", path, exc)
                return
        if pending:
            say(f"  {pending} result(s) not uploaded stay in {self.data_dir}")
            return
        shutil.rmtree(self.data_dir, ignore_errors=True)

    # reporting
    def _progress_loop(self) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        while not self.stop_event.wait(timeout=PROGRESS_EVERY_S):
            try:
                say(self.progress_line())
            except SQLAlchemyError as exc:
                logger.warning("progress: database busy (%s)", exc.__class__.__name__)

    def progress_line(self) -> str:
        from .services import acd, reporting

        c = next((c for c in reporting.campaigns(self.db) if c.id == self.campaign_id), None)
        placed = sum(w.stats.placed for w in self.host.workers)
        states = " ".join(f"{w.s.agent}:{w.core.state.value}" for w in self.host.workers)
        rate = "-" if c is None or c.abandonment_rate is None else f"{c.abandonment_rate:.1%}"
        line = (f"[{time.monotonic() - self.t0:5.0f}s] placed {placed}, attempts {c.attempts if c else 0}, "
                f"answered {c.answered if c else 0}, abandoned {c.abandoned if c else 0} (rate {rate}) | {states}")
        if self.ivr is not None:
            proxies = acd.list_proxies(self.db, live_only=False, limit=500)
            by: dict[str, int] = {}
            for p in proxies:
                by[p.state] = by.get(p.state, 0) + 1
            line += " | IVR proxies " + (", ".join(f"{k} {v}" for k, v in sorted(by.items())) or "none yet")
        return line

    def _rearm_loop(self) -> None:
        from sqlalchemy.exc import SQLAlchemyError

        while not self.stop_event.wait(timeout=REARM_CHECK_S):
            try:
                n = rearm_records(self.db, self.campaign_id)
            except SQLAlchemyError as exc:
                logger.warning("re-arm: database busy (%s)", exc.__class__.__name__)
                continue
            if n:
                self.rearmed += n
                say(f"  campaign ran dry: {n} sample records put back in their pool so the demo keeps dialing")

    def final_report(self) -> None:
        from .services import reporting

        c = next((c for c in reporting.campaigns(self.db) if c.id == self.campaign_id), None)
        placed = sum(w.stats.placed for w in self.host.workers) if self.host else 0
        say(f"demo summary: calls placed {placed}, attempts recorded {c.attempts if c else 0}, "
            f"answered {c.answered if c else 0}, abandoned {c.abandoned if c else 0}"
            + (f", IVR calls ended {len(self.ivr.reports)}" if self.ivr is not None else ""))


def _running_greenlet(obj: Any) -> bool:
    import gevent

    return isinstance(obj, gevent.Greenlet) and obj is not gevent.getcurrent() and not obj.dead


def leftover_greenlets() -> list[str]:
    """Names of greenlets still running apart from the current one (a clean stop leaves none)."""
    out = []
    for obj in gc.get_objects():
        if _running_greenlet(obj):
            fn = getattr(obj, "_run", None)
            out.append(f"{getattr(obj, 'name', None) or obj!r} ({getattr(fn, '__qualname__', fn)})")
    return out


def configure_logging(verbose: int) -> None:
    level = {0: logging.WARNING, 1: logging.INFO}.get(verbose, logging.DEBUG)
    logging.basicConfig(level=level, format="%(asctime)s %(levelname)s %(name)s: %(message)s", stream=sys.stdout)


def main(argv: list[str]) -> int:
    from esl_dialer.contingency import ContingencyError
    from esl_dialer.esl.inbound import SwitchError
    from esl_dialer.sim import SimConfigError

    from .errors import DialerError

    options = DemoOptions.from_argv(argv)
    configure_logging(options.verbose)
    stack = DemoStack(options)
    try:
        stack.prepare()
        stack.start()
        stack.run()
    except KeyboardInterrupt:
        pass
    except (OSError, DialerError, ContingencyError, SwitchError, SimConfigError) as exc:
        # a port in use, most likely; everything started so far is stopped
        say(f"demo: cannot start: {exc}")
        if isinstance(exc, OSError) and exc.errno == errno.EADDRINUSE:
            say("demo: a port is taken (another demo running?); choose others with --port/--sim-port/"
                "--console-port, or --ports auto")
        stack.stop()
        return 1
    left = stack.stop()
    if options.auto_ports and not left:
        stack.remove_auto_data_dir()
    if left:
        say(f"demo stopped; greenlets still running: {', '.join(left)}")
        return 1
    say("demo stopped cleanly: controller, switches, workers and callers all ended")
    return 0


if __name__ == "__main__":  # pragma: no cover - use `dialer demo`
    sys.exit(main(sys.argv[1:]))

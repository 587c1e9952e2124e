"""IVR benchmark (SPEC R1-R9) -> bench/results/ivr.json.

Part A, capacity: how many concurrent IVR calls one `dialer ivr` process holds
on the simulated switch.  The simulated switch runs in a child process (so the
IVR process's memory is its own), the remote center's controller in another.
N callers dial 7000, press 1 and end up waiting for a remote operator (none is
logged in): each holds an outbound-socket session, a proxy in the remote queue,
music on hold and periodic announcements.  Reported: calls held, RSS per call,
greenlets per call, time to set all calls up, and that hanging everyone up
cancels every proxy and leaves no session behind.

Part B, long-distance minutes: 50 callers need the remote center, whose 5
operators serve calls of exponential length; the service time is chosen so the
average remote wait is about 5 minutes.  The same scenario runs twice on the
simulated switch with time_scale (simulated minutes pass quickly): once with
this IVR's rule (bridge at the head of the queue, R6/R7) and once bridging at
once (a local bridge_position so large that every caller is bridged
immediately and waits on the remote leg).  Remote-leg minutes are measured per
call from the IVR's own timestamps (bridge start to call end) and converted
back to simulated minutes; both runs are real runs, nothing is computed from
a formula.

Run: .venv/bin/python bench/ivr.py [--calls 1000] [--quick]
"""
from __future__ import annotations

import argparse
import gc
import json
import os
import random
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

import gevent
import gevent.socket

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT / "tests"))  # the remote-controller subprocess helper is shared with the tests

from controller.db import Database, upgrade  # noqa: E402
from controller.services import acd  # noqa: E402
from esl_dialer.ivr.acceptor import AcceptorSettings, LegAcceptor  # noqa: E402
from esl_dialer.ivr.app import IvrCall, IvrSettings  # noqa: E402
from esl_dialer.ivr.menu import Menu  # noqa: E402
from esl_dialer.ivr.remote_client import AcdSwitchClient, ProgressHub, RemoteCenter  # noqa: E402
from esl_dialer.ivr.server import IvrServer  # noqa: E402
from ivr_support import RemoteControllerProcess  # noqa: E402

RESULTS = ROOT / "bench" / "results" / "ivr.json"
# The simulated switch ends a local_stream:// playback after its default
# playback length (a real one plays until broken); an hour of silence_stream
# behaves like endless music on both, so the IVR does not restart it every second.
BENCH_MOH = "silence_stream://3600000"
# Every caller hears its position when it starts waiting, then every ANNOUNCE_S.
ANNOUNCE_S = 120.0
MENU = {
    "name": "bench", "start": "welcome", "defaults": {"tries": 1, "timeout_ms": 3000},
    "nodes": {
        "welcome": {"type": "menu", "prompt": "ivr/welcome.wav", "branches": {"1": "support"}, "on_fail": "bye"},
        "support": {"type": "remote", "center": "remote", "skill": "support", "next": "bye"},
        "bye": {"type": "hangup"},
    },
}


def rss_kb() -> int:
    with open("/proc/self/status") as f:
        for line in f:
            if line.startswith("VmRSS:"):
                return int(line.split()[1])
    return 0


def count_greenlets() -> int:
    import greenlet

    return sum(1 for o in gc.get_objects() if isinstance(o, greenlet.greenlet))


def remote_center(tmp: Path, operators: int, operators_state: str = "available", bridge_position: int = 1):
    url = f"sqlite:///{tmp / 'remote.db'}"
    upgrade(url)
    db = Database(url)
    acd.ensure_queue(db, "support", bridge_position=bridge_position, bridge_setup_s=0.0, default_service_s=60.0,
                     offer_timeout_s=120.0)
    for i in range(operators):
        acd.add_operator(db, f"op{i}", f"user/{2001 + i}", ["support"], state=operators_state)
    key = acd.create_peer(db, "local")
    switch_key = acd.create_peer(db, "switch", role="switch")
    return url, db, key, switch_key


# ---------------------------------------------------------------- part A


def sim_child(ivr_port: int, calls: int, rate: float) -> None:
    """Child process: a simulated switch that sends ``calls`` callers to the IVR."""
    from esl_dialer.sim import SimConfig, SimSwitch

    sim = SimSwitch(SimConfig(time_scale=1.0, playback_default_s=1.0, max_sessions=calls * 2 + 100,
                              sessions_per_second=max(30, int(rate) * 2)), host="127.0.0.1", port=0)
    sim.start()
    sim.dialplan = {"7000": ("socket", f"127.0.0.1:{ivr_port} async full")}
    print(f"READY {sim.port}", flush=True)
    cmd = _stdin_line()
    if cmd == "go":
        for i in range(calls):
            sim.inbound_call("7000", f"1555{i:07d}", dtmf="1", patience_s=7200, talk_s=60)
            gevent.sleep(1.0 / rate)
        print("PLACED", flush=True)
    cmd = _stdin_line()
    if cmd == "hangup":
        for ch in list(sim.channels.values()):
            sim.hangup(ch, "NORMAL_CLEARING")
        print("HUNG", flush=True)
    _stdin_line()  # the parent says when it has measured the drain
    sim.stop()


def _stdin_line() -> str:
    """Read a command line without freezing the simulated switch's greenlets."""
    gevent.socket.wait_read(sys.stdin.fileno())
    return sys.stdin.readline().strip()


def part_a(calls: int, rate: float) -> dict:
    with tempfile.TemporaryDirectory() as tmp:
        url, db, key, _ = remote_center(Path(tmp), operators=0, bridge_position=0)
        with RemoteControllerProcess(url, sse_interval_s=0.5) as ctl:
            center = RemoteCenter("remote", ctl.url, key, dial_string="loopback/8000", timeout_s=20.0, retries=2)
            hub = ProgressHub(center, poll_s=2.0, read_timeout_s=120)
            hub.start()
            reports = []
            # Nobody is served in this part: no caller is ever near the head (bridge_position 0).
            settings = IvrSettings(menu_provider=lambda: Menu.from_dict(MENU), centers={"remote": center},
                                   hubs={"remote": hub}, announce_every_s=ANNOUNCE_S, linger_s=1, bridge_position=0,
                                   moh=BENCH_MOH,
                                   on_call_end=reports.append, command_timeout_s=30.0)
            server = IvrServer(lambda s: IvrCall(s, settings), port=0, max_connections=calls + 100,
                               command_timeout_s=30.0)
            server.start()
            gc.collect()
            base_rss, base_greenlets = rss_kb(), count_greenlets()
            child = subprocess.Popen([sys.executable, __file__, "--sim-child", str(server.port), str(calls),
                                      str(rate)], stdin=subprocess.PIPE, stdout=subprocess.PIPE, text=True,
                                     cwd=str(ROOT))
            try:
                line = _readline(child, 30)
                assert line.startswith("READY"), line
                t0 = time.monotonic()
                child.stdin.write("go\n")
                child.stdin.flush()
                waiting = 0
                deadline = t0 + max(120.0, calls / rate * 3)
                while time.monotonic() < deadline:
                    gevent.sleep(0.5)
                    waiting = sum(1 for p in acd.list_proxies(db) if p.state == "waiting")
                    if waiting >= calls:
                        break
                setup_s = time.monotonic() - t0
                gevent.sleep(2.0)  # steady state: music, announcements, progress stream
                gc.collect()
                held = server.connection_count
                peak_rss, peak_greenlets = rss_kb(), count_greenlets()
                t1 = time.monotonic()
                child.stdin.write("hangup\n")
                child.stdin.flush()
                while time.monotonic() - t1 < 60 and (server.connection_count or len(server.calls)):
                    gevent.sleep(0.2)
                drain_s = time.monotonic() - t1
                gevent.sleep(1.0)
                live = sum(1 for p in acd.list_proxies(db) if p.state in ("waiting", "offered"))
                gc.collect()
                after_greenlets = count_greenlets()
            finally:
                try:
                    child.stdin.close()
                except OSError:
                    pass
                child.wait(timeout=30)
            server.stop(timeout=5)
            hub.stop()
        db.dispose()
    outcomes: dict[str, int] = {}
    for r in reports:
        outcomes[r.outcome] = outcomes.get(r.outcome, 0) + 1
    return {
        "calls_offered": calls,
        "calls_held_concurrently": held,
        "proxies_waiting_at_peak": waiting,
        "setup_seconds": round(setup_s, 2),
        "arrival_rate_per_s": rate,
        "rss_baseline_mb": round(base_rss / 1024, 1),
        "rss_peak_mb": round(peak_rss / 1024, 1),
        "rss_per_call_kb": round((peak_rss - base_rss) / max(held, 1), 1),
        "greenlets_per_call": round((peak_greenlets - base_greenlets) / max(held, 1), 2),
        "drain_seconds_after_all_hang_up": round(drain_s, 2),
        "proxies_left_live_after_hangup": live,
        "greenlets_left_after_hangup": after_greenlets - base_greenlets,
        "call_outcomes": outcomes,
    }


def _readline(proc: subprocess.Popen, timeout: float) -> str:
    with gevent.Timeout(timeout):
        while True:
            # the child's stdout is a pipe: poll it without blocking the hub
            gevent.socket.wait_read(proc.stdout.fileno(), timeout=timeout)
            return proc.stdout.readline()


# ---------------------------------------------------------------- part B


def part_b(callers: int, operators: int, mean_wait_min: float, time_scale: float, seed: int) -> dict:
    # Every caller arrives at once; k operators with exponential service (mean S)
    # free up at rate k/S, so caller i >= k waits (i-k+1) departures, (i-k+1)*S/k
    # on average: over N callers the mean wait is S/k * (N-k)(N-k+1) / (2N).
    k, n = operators, callers
    service_s = mean_wait_min * 60 * k * 2 * n / ((n - k) * (n - k + 1))
    rng = random.Random(seed)
    talks = [rng.expovariate(1 / service_s) for _ in range(callers)]
    runs = {}
    for mode, position in (("bridge_at_head", 1), ("bridge_at_once", 10**6)):
        runs[mode] = _run_b(callers, operators, talks, time_scale, position)
    head, once = runs["bridge_at_head"], runs["bridge_at_once"]
    return {
        "callers": callers,
        "operators": operators,
        "service_time_mean_s": round(service_s, 1),
        "time_scale": time_scale,
        "runs": runs,
        "remote_minutes_bridge_at_once": once["remote_leg_minutes"],
        "remote_minutes_bridge_at_head": head["remote_leg_minutes"],
        "long_distance_minutes_saved": round(once["remote_leg_minutes"] - head["remote_leg_minutes"], 1),
        "saved_percent": round(100 * (1 - head["remote_leg_minutes"] / once["remote_leg_minutes"]), 1)
        if once["remote_leg_minutes"] else None,
    }


def _run_b(callers: int, operators: int, talks: list[float], time_scale: float, bridge_position: int) -> dict:
    from esl_dialer.sim import SimConfig, SimSwitch

    with tempfile.TemporaryDirectory() as tmp:
        url, db, key, switch_key = remote_center(Path(tmp), operators=operators)
        with RemoteControllerProcess(url, sse_interval_s=0.05) as ctl:
            reports, accepts = [], []
            acceptor = IvrServer(lambda s: LegAcceptor(s, AcceptorSettings(
                controller=AcdSwitchClient(ctl.url, switch_key), poll_s=0.05, linger_s=1,
                max_hold_s=3600, on_call_end=accepts.append)), port=0)
            acceptor.start()
            center = RemoteCenter("remote", ctl.url, key, dial_string="loopback/8000", timeout_s=10.0, retries=2)
            hub = ProgressHub(center, poll_s=0.2)
            hub.start()
            settings = IvrSettings(menu_provider=lambda: Menu.from_dict(MENU), centers={"remote": center},
                                   hubs={"remote": hub}, announce_every_s=3600.0, linger_s=1,
                                   bridge_position=bridge_position, max_wait_s=3600, on_call_end=reports.append,
                                   # a SIP call takes ~2 s to set up; the loopback here takes
                                   # milliseconds of real time, i.e. ~2 simulated seconds at this scale
                                   bridge_setup_s=2.0 * time_scale,
                                   moh=BENCH_MOH, fallback="hangup")
            ivr = IvrServer(lambda s: IvrCall(s, settings), port=0)
            ivr.start()
            sim = SimSwitch(SimConfig(time_scale=time_scale, playback_default_s=0.5, max_sessions=1000,
                                      sessions_per_second=1000), host="127.0.0.1", port=0)
            sim.start()
            sim.dialplan = {"7000": ("socket", f"127.0.0.1:{ivr.port} async full"),
                            "8000": ("socket", f"127.0.0.1:{acceptor.port} async full")}
            for i in range(operators):
                sim.add_user(str(2001 + i), answer_after_s=0.0)
            t0 = time.monotonic()
            for i in range(callers):
                sim.inbound_call("7000", f"1555{i:07d}", dtmf="1", patience_s=10**6, talk_s=10**6)
            # The operators end each conversation after its (scaled) service time.
            pending = list(talks)
            operator_exts = {str(2001 + i) for i in range(operators)}
            scheduled: set[str] = set()

            def operator_hangs_up(uuid: str, after: float) -> None:
                gevent.sleep(after)
                ch = sim.channels.get(uuid)
                if ch is not None:
                    sim.hangup(ch, "NORMAL_CLEARING")

            while len(reports) < callers and time.monotonic() - t0 < 240:
                for ch in list(sim.channels.values()):
                    if ch.destination in operator_exts and ch.bridged_to and ch.uuid not in scheduled and pending:
                        scheduled.add(ch.uuid)
                        gevent.spawn(operator_hangs_up, ch.uuid, pending.pop(0) * time_scale)
                gevent.sleep(0.01)
            wall = time.monotonic() - t0
            ivr.stop(timeout=2)
            acceptor.stop(timeout=2)
            hub.stop()
            sim.stop()
        db.dispose()
    bridged = [r for r in reports if r.bridge_started_at and r.ended_at]
    # real seconds -> simulated seconds: everything that takes time here is the sim's talk, scaled
    leg_s = [(r.ended_at - r.bridge_started_at) / time_scale for r in bridged]
    local_wait_s = [(r.bridge_started_at - r.proxy_created_at) / time_scale for r in bridged]
    op_wait = [(a.connected_at - a.accepted_at) / time_scale for a in accepts if a.connected_at and a.accepted_at]
    return {
        "bridge_position": bridge_position,
        "calls_finished": len(reports),
        "calls_bridged": len(bridged),
        "connected_to_operator": sum(1 for a in accepts if a.outcome == "connected"),
        "remote_leg_minutes": round(sum(leg_s) / 60, 1),
        "mean_local_wait_min": round(statistics.mean(local_wait_s) / 60, 2) if local_wait_s else None,
        "mean_wait_on_remote_leg_min": round(statistics.mean(op_wait) / 60, 2) if op_wait else None,
        "mean_total_wait_min": round(statistics.mean(w + o for w, o in zip(local_wait_s, op_wait)) / 60, 2)
        if op_wait and local_wait_s else None,
        "wall_seconds": round(wall, 1),
    }


def main() -> int:
    if len(sys.argv) > 1 and sys.argv[1] == "--sim-child":
        sim_child(int(sys.argv[2]), int(sys.argv[3]), float(sys.argv[4]))
        return 0
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--calls", type=int, default=1000)
    parser.add_argument("--rate", type=float, default=100.0, help="caller arrivals per second (part A)")
    parser.add_argument("--quick", action="store_true", help="small run (CI smoke): 100 calls, 10 callers")
    parser.add_argument("--part", choices=["a", "b", "both"], default="both")
    args = parser.parse_args()
    calls = 100 if args.quick else args.calls
    started = time.monotonic()
    a = part_a(calls, args.rate) if args.part in ("a", "both") else None
    print(json.dumps(a, indent=2), flush=True)
    b = part_b(callers=10 if args.quick else 50, operators=5, mean_wait_min=5.0, time_scale=0.05, seed=7) \
        if args.part in ("b", "both") else None
    print(json.dumps(b, indent=2), flush=True)
    result = {"benchmark": "ivr", "quick": args.quick, "capacity": a, "long_distance": b,
              "total_seconds": round(time.monotonic() - started, 1),
              "machine": {"cpus": os.cpu_count(), "python": sys.version.split()[0]}}
    if not args.quick and args.part == "both":
        RESULTS.parent.mkdir(parents=True, exist_ok=True)
        RESULTS.write_text(json.dumps(result, indent=2) + "\n")
        print(f"wrote {RESULTS}")
    return 0


if __name__ == "__main__":
    sys.exit(main())

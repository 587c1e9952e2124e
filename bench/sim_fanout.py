"""Event fan-out of the simulated switch under slow subscribers. Writes bench/results/sim_fanout.json.

Run: ``python bench/sim_fanout.py`` (200 subscribers, 10 of them never read,
100 originates/s for 60 s, once with the subscriber processes at nice 0 and
once at nice 19; about 2.5 minutes) or ``--seconds 10 --subscribers 50`` for a
quick look.  Every process is separate:

- the simulator (``SimSwitch`` of this checkout) in its own process;
- ``--reader-procs`` subscriber processes holding the ``event plain ALL``
  connections between them; a reader scans the raw byte stream for
  ``Event-Sequence`` (C-speed regex, no frame parsing) and checks that the
  numbers only go up, counting gaps; a *stalled* connection subscribes and
  then never reads again;
- this process, the load driver: ``bgapi originate`` at ``--rate`` per second
  (short answered calls) and ``api status`` ten times a second, measuring the
  time from sending each command to its reply frame.

The issue's target: ``api``/``bgapi`` reply p99 <= 100 ms while 10 of 200
subscribers never read, and events delivered to readers in order.
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import re
import resource
import selectors
import socket
import subprocess
import sys
import tempfile
import time
from collections import deque
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
RESULTS = ROOT / "bench" / "results" / "sim_fanout.json"

SIM_TOML = """
# sim_fanout bench: every call rings 0.5 s, answers, parks, the far end hangs up after 2 s.
[sim]
seed = 1
sessions_per_second = 100000
max_sessions = 100000
heartbeat_s = 20
history_limit = 1000

[calls]
answer = 1.0
ring = 0.5
talk = 2.0
"""

SIM_RUNNER = (
    "import sys, logging; logging.basicConfig(level=logging.WARNING, format='%(asctime)s %(message)s');"
    "from esl_dialer.sim import SimSwitch, load_sim_config, wire_listener;"
    "wire_listener.MAX_QUEUE = int(sys.argv[2]);"
    "s = SimSwitch(load_sim_config(sys.argv[1]), host='127.0.0.1', port=0).start();"
    "print(s.port, flush=True);"
    "s.serve_forever()"
)

SEQ_RE = re.compile(rb"\nEvent-Sequence: (\d+)\n")
TAIL = 64  # longer than any Event-Sequence line: a line split between two reads is seen whole once
KILL_TEXT = b"killed listener because of lost events"


# ---------------------------------------------------------------- helpers
def _proc_cpu(pid: int, part: str = "both") -> float:
    fields = Path(f"/proc/{pid}/stat").read_text().rsplit(")", 1)[1].split()
    ticks = os.sysconf(os.sysconf_names["SC_CLK_TCK"])
    user, system = int(fields[11]), int(fields[12])
    return {"user": user, "system": system, "both": user + system}[part] / ticks


def _schedstat(pid: int) -> tuple[float, float]:
    """(seconds on a CPU, seconds runnable but waiting for one) of the process's main thread."""
    run_ns, wait_ns, _ = Path(f"/proc/{pid}/schedstat").read_text().split()
    return int(run_ns) / 1e9, int(wait_ns) / 1e9


def _proc_hwm_mb(pid: int) -> float | None:
    try:
        for line in Path(f"/proc/{pid}/status").read_text().splitlines():
            if line.startswith("VmHWM:"):
                return round(int(line.split()[1]) / 1024, 1)
    except OSError:
        return None
    return None


def _pct(values: list[float], q: float) -> float | None:
    if not values:
        return None
    values = sorted(values)
    return values[min(len(values) - 1, int(len(values) * q))]


def _ms(v: float | None) -> float | None:
    return None if v is None else round(v * 1000, 2)


def _recv_until(sock: socket.socket, buf: bytes, marker: bytes, timeout: float = 30.0) -> tuple[bytes, bytes]:
    """Read until ``marker`` is in the stream; return (everything up to and incl. the frame end, rest)."""
    deadline = time.monotonic() + timeout
    while True:
        at = buf.find(marker)
        if at >= 0:
            end = buf.find(b"\n\n", at)
            if end >= 0:
                return buf[:end + 2], buf[end + 2:]
        if time.monotonic() > deadline:
            raise TimeoutError(f"no {marker!r} within {timeout} s")
        sock.settimeout(max(0.01, deadline - time.monotonic()))
        data = sock.recv(65536)
        if not data:
            raise ConnectionError("closed during handshake")
        buf += data


def _subscribe(port: int, password: str = "ClueCon") -> tuple[socket.socket, bytes]:
    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    _, rest = _recv_until(sock, b"", b"auth/request")
    sock.sendall(f"auth {password}\n\n".encode())
    _, rest = _recv_until(sock, rest, b"+OK accepted")
    sock.sendall(b"event plain ALL\n\n")
    _, rest = _recv_until(sock, rest, b"+OK event listener enabled")
    return sock, rest


# ---------------------------------------------------------------- subscriber process
class Reader:
    """One reading subscriber: scans the byte stream for Event-Sequence numbers."""

    def __init__(self, sock: socket.socket, first: bytes) -> None:
        self.sock = sock
        self.tail = b""
        self.last = None
        self.first = None
        self.events = 0
        self.out_of_order = 0
        self.gaps = 0
        self.missing = 0
        self.bytes = 0
        self.closed = False
        self.killed_notice = False
        if first:
            self.feed(first)

    def feed(self, chunk: bytes) -> None:
        self.bytes += len(chunk)
        data = self.tail + chunk
        skip = len(self.tail)
        for m in SEQ_RE.finditer(data):
            if m.end() <= skip:
                continue  # seen whole in the previous read
            seq = int(m.group(1))
            if self.last is None:
                self.first = seq
            elif seq <= self.last:
                self.out_of_order += 1
            elif seq != self.last + 1:
                self.gaps += 1
                self.missing += seq - self.last - 1
            self.last = seq
            self.events += 1
        if KILL_TEXT in data:
            self.killed_notice = True
        self.tail = data[-TAIL:]

    def summary(self) -> dict:
        return {"events": self.events, "first_seq": self.first, "last_seq": self.last,
                "out_of_order": self.out_of_order, "gaps": self.gaps, "missing": self.missing,
                "bytes": self.bytes, "closed_by_switch": self.closed, "kill_notice": self.killed_notice}


def subscriber_main(port: int, readers: int, stalled: int) -> None:
    """Child: hold ``readers`` reading and ``stalled`` never-reading subscriptions until stdin says stop."""
    t0 = time.monotonic()
    rs: list[Reader] = []
    stuck: list[socket.socket] = []
    for i in range(readers + stalled):
        sock, rest = _subscribe(port)
        if i < stalled:
            stuck.append(sock)  # default buffers: the kernel holds a few MB, then the switch's queue fills
        else:
            rs.append(Reader(sock, rest))
    print(json.dumps({"ready": round(time.monotonic() - t0, 2)}), flush=True)
    sel = selectors.DefaultSelector()
    for r in rs:
        r.sock.setblocking(False)
        sel.register(r.sock, selectors.EVENT_READ, r)
    sel.register(sys.stdin.fileno(), selectors.EVENT_READ, None)
    buf = bytearray(1 << 18)
    view = memoryview(buf)
    running = True
    while running:
        for key, _ in sel.select(timeout=1.0):
            r = key.data
            if r is None:
                running = False
                break
            try:
                n = r.sock.recv_into(buf)
            except BlockingIOError:
                continue
            except OSError:
                n = 0
            if n == 0:
                r.closed = True
                sel.unregister(r.sock)
                continue
            r.feed(bytes(view[:n]))
    # The stalled connections: was the switch still holding them, or did it drop them (and say so)?
    stalled_out = []
    for sock in stuck:
        sock.settimeout(2.0)  # what the switch still sends comes as fast as we read; then EOF or silence
        got, eof, notice = 0, False, False
        tail = b""
        deadline = time.monotonic() + 20
        while time.monotonic() < deadline:
            try:
                data = sock.recv(1 << 18)
            except socket.timeout:
                break
            except OSError:
                eof = True
                break
            if not data:
                eof = True
                break
            got += len(data)
            if KILL_TEXT in tail + data:
                notice = True
            tail = data[-64:]
        stalled_out.append({"buffered_bytes_read_at_end": got, "closed_by_switch": eof, "kill_notice": notice})
    ru = resource.getrusage(resource.RUSAGE_SELF)
    print(json.dumps({"readers": [r.summary() for r in rs], "stalled": stalled_out,
                      "cpu_s": round(ru.ru_utime + ru.ru_stime, 2)}), flush=True)


# ---------------------------------------------------------------- load driver (this process)
def drive(port: int, seconds: float, rate: float, api_rate: float) -> dict:
    sys.path.insert(0, str(ROOT))
    from esl_dialer.esl import NEED_DATA, FrameParser

    sock = socket.create_connection(("127.0.0.1", port), timeout=30)
    sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
    _, rest = _recv_until(sock, b"", b"auth/request")
    sock.sendall(b"auth ClueCon\n\n")
    _, rest = _recv_until(sock, rest, b"+OK accepted")
    sock.sendall(b"event plain BACKGROUND_JOB\n\n")
    _, rest = _recv_until(sock, rest, b"+OK event listener enabled")
    parser = FrameParser()
    if rest:
        parser.receive_data(rest)
    sock.setblocking(False)
    pending: deque[tuple[str, float]] = deque()
    lat = {"api": [], "bgapi": []}
    jobs = {"ok": 0, "err": 0}
    sent = {"api": 0, "bgapi": 0}
    late_sends = 0
    slow: list[tuple[float, str, float]] = []
    worst_at = {"api": (0.0, 0.0), "bgapi": (0.0, 0.0)}

    def handle(now: float) -> None:
        while True:
            frame = parser.next_frame()
            if frame is NEED_DATA:
                return
            ctype = frame.content_type
            if ctype in ("command/reply", "api/response"):
                kind, t_sent = pending.popleft()
                d = now - t_sent
                lat[kind].append(d)
                if d > 0.05:
                    slow.append((round(t_sent - t_start, 3), kind, round(d * 1000, 1)))
                if d > worst_at[kind][0]:
                    worst_at[kind] = (d, t_sent - t_start)
            elif ctype == "text/event-plain":
                body = frame.body
                if b"\n\n+OK" in body:
                    jobs["ok"] += 1
                else:
                    jobs["err"] += 1

    t_start = time.monotonic()
    end = t_start + seconds
    next_bg = t_start
    next_api = t_start
    i = 0
    while True:
        now = time.monotonic()
        if now >= end and not pending:
            break
        if now >= end + 30:
            break  # replies that never came are reported as missing
        if now < end:
            if now >= next_bg:
                if now - next_bg > 0.05:
                    late_sends += 1
                i += 1
                num = f"1555000{i % 10000:04d}"
                line = (f"bgapi originate {{origination_caller_id_number=1999{i % 1000:03d}}}"
                        f"sofia/gateway/bench/{num} &park()\n\n")
                pending.append(("bgapi", time.monotonic()))
                sock.setblocking(True)
                sock.sendall(line.encode())
                sock.setblocking(False)
                sent["bgapi"] += 1
                next_bg += 1.0 / rate
                continue
            if now >= next_api:
                pending.append(("api", time.monotonic()))
                sock.setblocking(True)
                sock.sendall(b"api status\n\n")
                sock.setblocking(False)
                sent["api"] += 1
                next_api += 1.0 / api_rate
                continue
            wait = max(0.0, min(next_bg, next_api) - now)
        else:
            wait = 0.05
        import select
        readable, _, _ = select.select([sock], [], [], wait)
        if readable:
            try:
                data = sock.recv(1 << 18)
            except BlockingIOError:
                continue
            if not data:
                break
            parser.receive_data(data)
            handle(time.monotonic())
    # let the last BACKGROUND_JOBs arrive (bounded)
    sock.close()
    out = {}
    for kind in ("api", "bgapi"):
        values = lat[kind]
        out[kind] = {"sent": sent[kind], "replies": len(values), "p50_ms": _ms(_pct(values, 0.5)),
                     "p90_ms": _ms(_pct(values, 0.9)), "p99_ms": _ms(_pct(values, 0.99)),
                     "max_ms": _ms(max(values) if values else None),
                     "worst_at_s": round(worst_at[kind][1], 2)}
    out["background_jobs"] = jobs
    out["bgapi_sent_late_over_50ms"] = late_sends
    out["elapsed_s"] = round(time.monotonic() - t_start, 2)
    out["replies_over_50ms"] = len(slow)
    out["slowest_replies"] = sorted(slow, key=lambda x: -x[2])[:20]  # (sent at s, kind, ms)
    return out


# ---------------------------------------------------------------- orchestration
def run(args, reader_nice: int) -> dict:
    tmp = Path(tempfile.mkdtemp(prefix="sim-fanout-"))
    cfg = tmp / "sim.toml"
    cfg.write_text(SIM_TOML)
    env = dict(os.environ, PYTHONPATH=str(Path(args.sim_path).resolve()))
    errlog = open(tmp / "sim.stderr", "w+")
    runner = ["-c", SIM_RUNNER] if not os.environ.get("SIM_FANOUT_RUNNER") else [os.environ["SIM_FANOUT_RUNNER"]]
    sim = subprocess.Popen([sys.executable, *runner, str(cfg), str(args.max_queue)], cwd=ROOT, env=env,
                           stdout=subprocess.PIPE, stderr=errlog, text=True)
    subs: list[subprocess.Popen] = []
    try:
        port = int(sim.stdout.readline())
        n = args.subscribers
        stalled = min(args.stalled, n)
        procs = max(1, min(args.reader_procs, n))
        per_proc = [n // procs + (1 if k < n % procs else 0) for k in range(procs)]
        stall_per = [stalled // procs + (1 if k < stalled % procs else 0) for k in range(procs)]
        for k in range(procs):
            subs.append(subprocess.Popen(
                [sys.executable, __file__, "--subscriber", str(port), str(per_proc[k] - stall_per[k]),
                 str(stall_per[k])], cwd=ROOT, env=env, stdin=subprocess.PIPE, stdout=subprocess.PIPE,
                text=True, preexec_fn=(lambda: os.nice(reader_nice)) if reader_nice else None))
        for p in subs:
            line = p.stdout.readline()
            if not line:
                raise RuntimeError("a subscriber process failed to start")
        sim_cpu0 = _proc_cpu(sim.pid)
        sim_sys0 = _proc_cpu(sim.pid, "system")
        sched0 = _schedstat(sim.pid)
        t0 = time.monotonic()
        driver = drive(port, args.seconds, args.rate, args.api_rate)
        drive_s = time.monotonic() - t0
        sim_cpu = _proc_cpu(sim.pid) - sim_cpu0
        sim_sys = _proc_cpu(sim.pid, "system") - sim_sys0
        sched1 = _schedstat(sim.pid)
        time.sleep(args.drain)  # readers catch up with what was already sent
        results = []
        for p in subs:
            p.stdin.write("stop\n")
            p.stdin.flush()
        for p in subs:
            out, _ = p.communicate(timeout=120)
            results.append(json.loads(out.strip().splitlines()[-1]))
        sim_hwm = _proc_hwm_mb(sim.pid)
    finally:
        for p in subs:
            if p.poll() is None:
                p.kill()
                p.wait(timeout=10)
        sim.terminate()
        try:
            sim.wait(timeout=10)
        except subprocess.TimeoutExpired:
            sim.kill()
            sim.wait(timeout=10)
        errlog.seek(0)
        sim_log = errlog.read()
        if os.environ.get("SIM_FANOUT_LOG"):
            Path(os.environ["SIM_FANOUT_LOG"]).write_text(sim_log)
        errlog.close()
    readers = [r for res in results for r in res["readers"]]
    stalled_res = [s for res in results for s in res["stalled"]]
    fired_last = max((r["last_seq"] or 0) for r in readers) if readers else 0
    fired_first = min((r["first_seq"] or 0) for r in readers) if readers else 0
    events = sorted(r["events"] for r in readers)
    kill_lines = [line for line in sim_log.splitlines() if "Killing listener" in line]
    return {
        "config": {"subscribers": n, "stalled": stalled, "readers": n - stalled, "seconds": args.seconds,
                   "bgapi_per_s": args.rate, "api_per_s": args.api_rate, "reader_procs": procs,
                   "reader_nice": reader_nice, "max_queue": args.max_queue,
                   "call": "bgapi originate sofia/gateway/bench/1555000NNNN &park(): ring 0.5 s, answer, far end "
                           "hangs up 2 s later", "api": "api status", "sim_config": SIM_TOML.strip()},
        "latency": driver,
        "target": {"p99_ms": 100},
        "met": bool(driver["api"]["p99_ms"] is not None and driver["bgapi"]["p99_ms"] is not None
                    and driver["api"]["p99_ms"] <= 100 and driver["bgapi"]["p99_ms"] <= 100
                    and driver["bgapi"]["replies"] == driver["bgapi"]["sent"]
                    and all(r["out_of_order"] == 0 for r in readers)),
        "events": {
            "fired_in_window_approx": fired_last - fired_first + 1,
            "fired_per_s_approx": round((fired_last - fired_first + 1) / max(drive_s, 1e-9), 1),
            "per_reader_min": events[0] if events else None,
            "per_reader_median": events[len(events) // 2] if events else None,
            "per_reader_max": events[-1] if events else None,
            "readers_out_of_order": sum(1 for r in readers if r["out_of_order"]),
            "readers_with_gaps": sum(1 for r in readers if r["gaps"]),
            "missing_events_total": sum(r["missing"] for r in readers),
            "readers_dropped_by_switch": sum(1 for r in readers if r["closed_by_switch"]),
            "bytes_to_readers_mb": round(sum(r["bytes"] for r in readers) / 1e6, 1),
            "delivered_mb_per_s": round(sum(r["bytes"] for r in readers) / 1e6 / max(drive_s, 1e-9), 1),
        },
        "stalled": {
            "dropped_by_switch": sum(1 for s in stalled_res if s["closed_by_switch"]),
            "kill_notice_seen": sum(1 for s in stalled_res if s["kill_notice"]),
            "switch_log_kill_lines": kill_lines[:3],
            "switch_log_kill_count": len(kill_lines),
            "per_connection": stalled_res,
        },
        "cpu_s": {"simulator": round(sim_cpu, 1), "simulator_kernel": round(sim_sys, 1), "subscriber_procs": round(sum(r["cpu_s"] for r in results), 1),
                  "driver": round(time.process_time(), 1), "window_s": round(drive_s, 1)},
        "sim_runqueue_wait_s": round(sched1[1] - sched0[1], 1),
        "sim_runqueue_wait_note": "time the simulator was ready to run but waited for a CPU (other processes)",
        "sim_peak_rss_mb": sim_hwm,
        "sim_code": str(Path(args.sim_path).resolve()),
    }


def main(argv: list[str] | None = None) -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=60.0)
    ap.add_argument("--subscribers", type=int, default=200)
    ap.add_argument("--stalled", type=int, default=10)
    ap.add_argument("--rate", type=float, default=100.0, help="bgapi originates per second")
    ap.add_argument("--api-rate", type=float, default=10.0, help="api status per second")
    ap.add_argument("--reader-procs", type=int, default=4)
    ap.add_argument("--reader-nice", default="0,19",
                    help="nice values of the subscriber processes, one full run each (comma-separated); "
                         "19 lets the switch and the driver go first, as if the subscribers were on other hosts")
    ap.add_argument("--max-queue", type=int, default=100_000,
                    help="the switch's per-listener queue (FreeSWITCH's MAX_QUEUE_LEN is 100,000)")
    ap.add_argument("--drain", type=float, default=3.0, help="seconds the readers get to catch up at the end")
    ap.add_argument("--sim-path", default=str(ROOT), help="checkout whose esl_dialer.sim is measured")
    ap.add_argument("--out", default=str(RESULTS))
    args = ap.parse_args(argv)
    t0 = time.perf_counter()
    result = {"benchmark": "sim_fanout",
              "command": "python bench/sim_fanout.py " + " ".join(argv if argv is not None else sys.argv[1:]),
              "machine": {"python": platform.python_version(), "cpus": os.cpu_count(),
                          "platform": platform.platform()},
              "runs": []}
    for nice in [int(v) for v in str(args.reader_nice).split(",") if v.strip()]:
        load0 = [round(x, 2) for x in os.getloadavg()]
        one = run(args, nice)
        one["loadavg_at_start"] = load0
        one["loadavg_at_end"] = [round(x, 2) for x in os.getloadavg()]
        result["runs"].append(one)
        lat = one["latency"]
        print(f"readers at nice {nice}: api p50/p99 {lat['api']['p50_ms']}/{lat['api']['p99_ms']} ms, bgapi p50/p99 "
              f"{lat['bgapi']['p50_ms']}/{lat['bgapi']['p99_ms']} ms; readers out of order "
              f"{one['events']['readers_out_of_order']}, with gaps {one['events']['readers_with_gaps']}; "
              f"stalled dropped {one['stalled']['dropped_by_switch']}/{one['config']['stalled']}; "
              f"simulator waited {one['sim_runqueue_wait_s']} s for a CPU; met={one['met']}", flush=True)
    result["wall_s"] = round(time.perf_counter() - t0, 1)
    result["driver_max_rss_mb"] = round(resource.getrusage(resource.RUSAGE_SELF).ru_maxrss / 1024, 1)
    out = Path(args.out)
    out.parent.mkdir(parents=True, exist_ok=True)
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"-> {out}")
    return 0


if __name__ == "__main__":
    if len(sys.argv) == 5 and sys.argv[1] == "--subscriber":
        subscriber_main(int(sys.argv[2]), int(sys.argv[3]), int(sys.argv[4]))
    else:
        sys.exit(main())

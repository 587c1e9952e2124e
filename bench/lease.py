"""Lease benchmark: 200 simulated workers against real controller processes on PostgreSQL.

Each simulated worker loops: ``POST /worker/lease {"max": 20}`` then
``POST /worker/results`` with one result per leased record (70 % answered,
30 % no answer -> recycled an hour later, so never handed out again during the
run).  Phases: one ``dialer controller`` process flat out, two processes flat
out (workers split between them), then two processes with the workers paced
open-loop at fixed offered rates (``--paced``, default 5,000 and 2,500
records/s) for latency at a known load.  ``VACUUM ANALYZE`` runs before each
phase because this machine's PostgreSQL has autovacuum off.

The load generator is a separate process of gevent greenlets with a minimal
keep-alive HTTP/1.1 client (raw sockets: a full HTTP library would cost more
CPU than the server on this 2-core machine).  Figures: records leased and
reported per second, lease and results latency percentiles, CPU seconds used
by the controllers, PostgreSQL and the load generator, and a check (client
side and in the database) that no record was handed out twice.

Usage: .venv/bin/python bench/lease.py [--seconds 15] [--workers 200] [--batch 20]
Database: $DIALER_BENCH_DATABASE_URL or postgresql+psycopg://postgres@127.0.0.1:5432/postgres
(a scratch database dialer_bench_<random> is created there and dropped).
"""
from __future__ import annotations

import argparse
import json
import os
import platform
import socket
import subprocess
import sys
import time
import uuid
from pathlib import Path

HERE = Path(__file__).resolve().parent
ROOT = HERE.parent
RESULTS = HERE / "results" / "lease.json"
DEFAULT_PG = "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
TARGET_RPS = 5000
TARGET_P99_MS = 50.0


# --- set-up (this process, plain SQLAlchemy) ---------------------------------------


def make_database(base_url: str) -> str:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    sys.path.insert(0, str(ROOT))
    from controller.db import upgrade

    url = make_url(base_url)
    name = f"dialer_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    admin.dispose()
    bench_url = url.set(database=name).render_as_string(hide_password=False)
    upgrade(bench_url)
    return bench_url


def drop_database(base_url: str, bench_url: str) -> None:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    name = make_url(bench_url).database
    admin = sa.create_engine(make_url(base_url), isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                             "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
        conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
    admin.dispose()


def populate(url: str, n_records: int, n_workers: int) -> list[str]:
    """Campaign, two pools of records, workers with queues (half 70/30 percentage). Returns tokens."""
    import sqlalchemy as sa

    from controller.db import Database
    from controller.models import Campaign
    from controller.services import queues, workers
    from esl_dialer.messages import CampaignStatus, TimezonePolicy

    db = Database(url)
    with db.session() as s:
        c = Campaign(name="bench", status=CampaignStatus.ACTIVE, window_start="00:00", window_end="23:59",
                     timezone_policy=TimezonePolicy.NUMBER, default_timezone="America/New_York")
        s.add(c)
        s.flush()
        cid = c.id
    pa = queues.create_pool(db, cid, "A").id
    pb = queues.create_pool(db, cid, "B").id
    half = n_records // 2
    with db.engine.begin() as conn:
        for pool, offset, count in ((pa, 0, half), (pb, half, n_records - half)):
            conn.execute(sa.text(
                "INSERT INTO call_record (campaign_id, pool_id, number, name, timezone, status, priority,"
                " difficulty, attempts, is_callback, created_at, updated_at)"
                " SELECT :c, :p, '+1212' || lpad((g + :o)::text, 7, '0'), 'Party ' || g,"
                " CASE WHEN g % 3 = 0 THEN 'America/Chicago' ELSE 'America/New_York' END,"
                " 'ready', 0, 0, 0, false, now(), now() FROM generate_series(1, :n) g"
            ), {"c": cid, "p": pool, "o": offset, "n": count})
        conn.execute(sa.text("ANALYZE call_record"))
    tokens = []
    for i in range(n_workers):
        w = workers.add_worker(db, f"bw{i:03d}", agent=f"{1000 + i}", campaign_id=cid)
        if i % 2 == 0:
            queues.set_feeds(db, w.queue_id, [(pa, 0, 70), (pb, 0, 30)], selection_mode="percentage")
        tokens.append(w.token)
    db.dispose()
    return tokens


def db_checks(url: str) -> dict:
    import sqlalchemy as sa

    eng = sa.create_engine(url)
    with eng.connect() as conn:
        attempts = conn.execute(sa.text("SELECT count(*) FROM call_attempt")).scalar()
        twice = conn.execute(sa.text(
            "SELECT count(*) FROM (SELECT record_id FROM call_attempt GROUP BY record_id HAVING count(*) > 1) x"
        )).scalar()
        by_status = dict(conn.execute(sa.text("SELECT status, count(*) FROM call_record GROUP BY status")).all())
    eng.dispose()
    return {"attempts_stored": attempts, "records_with_two_attempts": twice, "records_by_status": by_status}


def vacuum(url: str) -> None:
    """VACUUM ANALYZE the hot tables before a phase.

    The PostgreSQL on this machine runs with ``autovacuum = off``
    (/etc/postgresql/15/main/conf.d/90-ci.conf); a real server's autovacuum
    keeps dead row versions and the visibility map in check.  Each record is
    updated three times on its way through a queue, so without it every
    phase would start on the previous phases' dead rows.
    """
    import sqlalchemy as sa

    eng = sa.create_engine(url, isolation_level="AUTOCOMMIT", poolclass=sa.pool.NullPool)
    with eng.connect() as conn:
        for table in ("call_record", "call_attempt", "queue", "queue_feed"):
            conn.execute(sa.text(f"VACUUM ANALYZE {table}"))
    eng.dispose()


def calibrate(url: str) -> dict:
    """Two yardsticks of this machine at this moment, so runs on different
    days or machines can be compared: a CPU-bound Python loop, and the round
    trip of ``SELECT 1`` to the bench database (wall time and the client's CPU
    per round trip; on a virtual machine with costly wake-ups the latter is
    most of what a database statement costs the controller)."""
    import timeit

    import psycopg
    from sqlalchemy.engine import make_url

    loop = min(timeit.repeat("sum(i * i for i in range(1_000_000))", number=1, repeat=5))
    u = make_url(url)
    n = 2000
    with psycopg.connect(host=u.host or "", port=u.port or 5432, user=u.username, dbname=u.database,
                         password=u.password or None, autocommit=True) as conn:
        for _ in range(200):
            conn.execute("SELECT 1").fetchall()
        cpu0, wall0 = time.process_time(), time.perf_counter()
        for _ in range(n):
            conn.execute("SELECT 1").fetchall()
        cpu, wall = time.process_time() - cpu0, time.perf_counter() - wall0
    return {"python_loop_ms": round(loop * 1000, 1), "select1_round_trip_us": round(wall / n * 1e6),
            "select1_client_cpu_us": round(cpu / n * 1e6), "load_avg_1min": round(os.getloadavg()[0], 2)}


# --- processes --------------------------------------------------------------------


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def start_controller(url: str, port: int) -> subprocess.Popen:
    env = {**os.environ, "DIALER_DATABASE_URL": url}
    cmd = [str(ROOT / ".venv" / "bin" / "dialer"), "controller", "--host", "127.0.0.1", "--port", str(port)]
    proc = subprocess.Popen(cmd, env=env, cwd=ROOT, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 30
    while time.monotonic() < deadline:
        try:
            with socket.create_connection(("127.0.0.1", port), timeout=1) as s:
                s.sendall(b"GET /api/v1/health HTTP/1.1\r\nHost: x\r\nConnection: close\r\n\r\n")
                if b"200" in s.recv(100):
                    return proc
        except OSError:
            time.sleep(0.2)
    proc.kill()
    raise RuntimeError(f"controller on port {port} did not start: {proc.stderr.read()[-2000:]!r}")


def stop(proc: subprocess.Popen) -> None:
    proc.terminate()
    try:
        proc.wait(timeout=15)
    except subprocess.TimeoutExpired:
        proc.kill()
        proc.wait(timeout=5)


def cpu_seconds(pid: int) -> float:
    with open(f"/proc/{pid}/stat") as f:
        parts = f.read().rsplit(")", 1)[1].split()
    return (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")


def postgres_cpu(url: str) -> dict[int, float]:
    """CPU seconds of each PostgreSQL backend serving the bench database (the
    server is local; other databases' backends and shared server processes
    such as the WAL writer are not counted)."""
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    eng = sa.create_engine(url, poolclass=sa.pool.NullPool)
    with eng.connect() as conn:
        pids = conn.execute(sa.text("SELECT pid FROM pg_stat_activity WHERE datname = :d AND pid <> pg_backend_pid()"),
                            {"d": make_url(url).database}).scalars().all()
    eng.dispose()
    out = {}
    for pid in pids:
        try:
            with open(f"/proc/{pid}/stat") as f:
                parts = f.read().rsplit(")", 1)[1].split()
            out[pid] = (int(parts[11]) + int(parts[12])) / os.sysconf("SC_CLK_TCK")
        except (OSError, IndexError, ValueError):
            continue
    return out


# --- load generator (child process, gevent) ---------------------------------------------


LOADGEN = r'''
import json, sys, time, random
from gevent import monkey; monkey.patch_all()
import gevent, gevent.pool, socket
import orjson  # the controller's own JSON library: the client shares the server's 2 cores

cfg = json.loads(sys.argv[1])

class Conn:
    def __init__(self, port):
        self.port = port
        self.sock = None
        self.buf = b""
    def request(self, path, body, token):
        data = orjson.dumps(body)
        head = (f"POST {path} HTTP/1.1\r\nHost: 127.0.0.1\r\nAuthorization: Bearer {token}\r\n"
                f"Content-Type: application/json\r\nContent-Length: {len(data)}\r\n\r\n").encode()
        for attempt in (1, 2):
            try:
                if self.sock is None:
                    self.sock = socket.create_connection(("127.0.0.1", self.port), timeout=30)
                    # as http.client (the worker's client) does: no Nagle stall
                    self.sock.setsockopt(socket.IPPROTO_TCP, socket.TCP_NODELAY, 1)
                    self.buf = b""
                self.sock.sendall(head + data)
                return self._read()
            except (OSError, ConnectionError):
                self.sock = None
                if attempt == 2:
                    raise
    def _read(self):
        while b"\r\n\r\n" not in self.buf:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        head, self.buf = self.buf.split(b"\r\n\r\n", 1)
        lines = head.split(b"\r\n")
        status = int(lines[0].split()[1])
        length = 0
        close = False
        for line in lines[1:]:
            k, _, v = line.partition(b":")
            k = k.strip().lower()
            if k == b"content-length":
                length = int(v)
            elif k == b"connection" and v.strip().lower() == b"close":
                close = True
        while len(self.buf) < length:
            chunk = self.sock.recv(65536)
            if not chunk:
                raise ConnectionError("closed")
            self.buf += chunk
        body, self.buf = self.buf[:length], self.buf[length:]
        if close:
            self.sock.close(); self.sock = None
        return status, orjson.loads(body) if body else None

lease_lat, result_lat = [], []
leased_ids = []
errors = []
counts = {"leased": 0, "reported": 0, "empty": 0, "all_reported": 0}
deadline = time.monotonic() + cfg["warmup"] + cfg["seconds"] + 1.0
measure_from = time.monotonic() + cfg["warmup"]
measure_end = measure_from + cfg["seconds"]  # a cycle counts if it starts inside the window

def worker(i, token, port):
    conn = Conn(port)
    rnd = random.Random(i)
    n = 0
    period = cfg["period"]
    next_start = time.monotonic()
    if period:
        next_start += rnd.uniform(0, period)  # spread the paced workers' cycles evenly
    rebased = False
    while time.monotonic() < deadline:
        if period:
            # open-loop pacing: a cycle starts every `period` seconds whatever
            # the last one took, so the offered load does not drop as latency grows
            now = time.monotonic()
            if not rebased and now >= measure_from - period:
                # Starts missed during the warm-up (the queues' first fill) are
                # dropped, not run back to back inside the measured window:
                # that would offer more than the stated rate there.  Inside the
                # window a late worker catches up as open-loop pacing should.
                rebased = True
                while next_start < now - period:
                    next_start += period
            gevent.sleep(max(0.0, next_start - now))
            next_start += period
        t0 = time.monotonic()
        try:
            st, body = conn.request("/api/v1/worker/lease", {"max": cfg["batch"]}, token)
        except Exception as e:
            errors.append(f"lease {type(e).__name__}: {e}"); gevent.sleep(0.1); continue
        t1 = time.monotonic()
        if st != 200:
            errors.append(f"lease {st} {body}"); gevent.sleep(0.1); continue
        recs = body["records"]
        measuring = measure_from <= t0 < measure_end
        if measuring:
            lease_lat.append(t1 - t0)
        if not recs:
            counts["empty"] += 1
            gevent.sleep(0.05)
            continue
        ids = [r["id"] for r in recs]
        leased_ids.extend(ids)
        results = [{"client_id": f"{cfg['tag']}-{i}-{n}-{k}", "record_id": rid,
                    "result": "answered" if rnd.random() < 0.7 else "no_answer",
                    "call_uuid": f"{i}-{n}-{k}", "agent": str(1000 + i),
                    "started_at": "2026-11-23T12:00:00Z", "ended_at": "2026-11-23T12:00:40Z",
                    "disposition": "bench", "abandoned": False} for k, rid in enumerate(ids)]
        n += 1
        t2 = time.monotonic()
        try:
            st, body = conn.request("/api/v1/worker/results", {"results": results}, token)
        except Exception as e:
            errors.append(f"results {type(e).__name__}: {e}"); continue
        t3 = time.monotonic()
        if st != 200 or len(body["accepted"]) != len(ids):
            errors.append(f"results {st} {str(body)[:200]}"); continue
        counts["all_reported"] += len(ids)
        if measuring:
            result_lat.append(t3 - t2)
            counts["leased"] += len(ids)
            counts["reported"] += len(ids)

pool = gevent.pool.Group()
for i, (token, port) in enumerate(zip(cfg["tokens"], cfg["ports"])):
    pool.spawn(worker, cfg["offset"] + i, token, port)
pool.join(timeout=cfg["warmup"] + cfg["seconds"] + 60)
pool.kill(timeout=5)
import resource
ru = resource.getrusage(resource.RUSAGE_SELF)
print(json.dumps({"cpu": ru.ru_utime + ru.ru_stime, "lease_lat": lease_lat, "result_lat": result_lat, "leased_ids": leased_ids,
                  "errors": errors[:20], "n_errors": len(errors), "counts": counts}))
'''


def percentile(values: list[float], p: float) -> float:
    if not values:
        return float("nan")
    s = sorted(values)
    return s[min(len(s) - 1, int(round(p / 100 * (len(s) - 1))))]


def run_phase(name: str, url: str, tokens: list[str], n_controllers: int, args,
              offered_rps: float | None = None) -> dict:
    """One phase: ``offered_rps`` None = every worker flat out (closed loop),
    else each worker starts a cycle every ``workers * batch / offered_rps`` s."""
    period = len(tokens) * args.batch / offered_rps if offered_rps else 0.0
    vacuum(url)
    ports = [free_port() for _ in range(n_controllers)]
    procs = [start_controller(url, p) for p in ports]
    assignment = [ports[i % n_controllers] for i in range(len(tokens))]
    # n_loadgen processes, each driving a slice of the workers
    slices = [list(range(k, len(tokens), args.loadgens)) for k in range(args.loadgens)]
    load_before = os.getloadavg()[0]
    cpu0 = {p.pid: cpu_seconds(p.pid) for p in procs}
    pg0 = postgres_cpu(url)
    wall0 = time.monotonic()
    gens = []
    for k, idx in enumerate(slices):
        cfg = {"tokens": [tokens[i] for i in idx], "ports": [assignment[i] for i in idx], "batch": args.batch,
               "seconds": args.seconds, "warmup": args.warmup + period, "period": period, "offset": k * 100000,
               "tag": f"{n_controllers}c{uuid.uuid4().hex[:6]}"}
        gens.append(subprocess.Popen([sys.executable, "-c", LOADGEN, json.dumps(cfg)], cwd=ROOT,
                                     stdout=subprocess.PIPE, stderr=subprocess.PIPE, text=True))
    outs = []
    for g in gens:
        out, err = g.communicate(timeout=args.seconds + args.warmup + 120)
        if g.returncode != 0:
            raise RuntimeError(f"load generator failed: {err[-2000:]}")
        outs.append(json.loads(out.strip().splitlines()[-1]))
    wall = time.monotonic() - wall0
    ctrl_cpu = sum(cpu_seconds(p.pid) - cpu0[p.pid] for p in procs)
    pg1 = postgres_cpu(url)
    pg_cpu = sum(v - pg0.get(pid, 0.0) for pid, v in pg1.items())
    for p in procs:
        stop(p)
    lease_lat = [x for o in outs for x in o["lease_lat"]]
    result_lat = [x for o in outs for x in o["result_lat"]]
    ids = [x for o in outs for x in o["leased_ids"]]
    leased = sum(o["counts"]["leased"] for o in outs)
    reported = sum(o["counts"]["reported"] for o in outs)
    duplicates = len(ids) - len(set(ids))
    all_reported = sum(o["counts"]["all_reported"] for o in outs)
    gen_cpu = sum(o["cpu"] for o in outs)
    phase = {
        "controllers": n_controllers,
        "workers": len(tokens),
        "offered_records_per_s": offered_rps or "flat out",
        "batch": args.batch,
        "measured_seconds": args.seconds,
        "records_leased_per_s": round(leased / args.seconds, 1),
        "records_reported_per_s": round(reported / args.seconds, 1),
        "lease_requests_per_s": round(len(lease_lat) / args.seconds, 1),
        "results_requests_per_s": round(len(result_lat) / args.seconds, 1),
        "lease_latency_ms": {"p50": round(percentile(lease_lat, 50) * 1000, 2),
                             "p90": round(percentile(lease_lat, 90) * 1000, 2),
                             "p99": round(percentile(lease_lat, 99) * 1000, 2)},
        "results_latency_ms": {"p50": round(percentile(result_lat, 50) * 1000, 2),
                               "p99": round(percentile(result_lat, 99) * 1000, 2)},
        "records_handed_out_total": len(ids),
        "records_handed_out_twice": duplicates,
        "errors": sum(o["n_errors"] for o in outs),
        "error_samples": [e for o in outs for e in o["errors"]][:5],
        "empty_leases": sum(o["counts"]["empty"] for o in outs),
        "cpu_seconds": {"controllers": round(ctrl_cpu, 1), "postgres": round(pg_cpu, 1),
                        "load_generator": round(gen_cpu, 1), "wall": round(wall, 1)},
        # CPU cost per record leased + reported, over the whole phase (warm-up included)
        "cpu_ms_per_record": {"controller": round(ctrl_cpu / max(1, all_reported) * 1000, 3),
                              "postgres": round(pg_cpu / max(1, all_reported) * 1000, 3)},
        "machine_load_avg_1min": {"before": round(load_before, 2), "after": round(os.getloadavg()[0], 2)},
    }
    print(f"{name}: {phase['records_leased_per_s']} leased/s, {phase['records_reported_per_s']} reported/s, "
          f"lease p50 {phase['lease_latency_ms']['p50']} ms p99 {phase['lease_latency_ms']['p99']} ms, "
          f"dup {duplicates}, errors {phase['errors']}, cpu {phase['cpu_seconds']}", flush=True)
    return phase, set(ids)


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seconds", type=float, default=15.0, help="measured seconds per phase")
    ap.add_argument("--warmup", type=float, default=15.0,
                    help="seconds before measuring: the first leases fill 200 empty queues, and each queue "
                         "grows to its target (lead minutes x measured rate, at most 500 records: about "
                         "100,000 records moved) over the first seconds; measuring starts after that")
    ap.add_argument("--workers", type=int, default=200)
    ap.add_argument("--batch", type=int, default=20)
    ap.add_argument("--paced", type=float, nargs="*", default=[5000.0, 2500.0],
                    help="records/s offered in the paced phases (two controllers; latency at a given load)")
    ap.add_argument("--loadgens", type=int, default=1, help="load generator processes")
    ap.add_argument("--records", type=int, default=0, help="records to load (default: enough for both phases)")
    ap.add_argument("--output", default=str(RESULTS))
    args = ap.parse_args()
    base = os.environ.get("DIALER_BENCH_DATABASE_URL", DEFAULT_PG)
    n_records = args.records or int((2 + len(args.paced)) * (args.seconds + args.warmup + 5) * 9000)
    t0 = time.monotonic()
    url = make_database(base)
    try:
        tokens = populate(url, n_records, args.workers)
        setup_s = time.monotonic() - t0
        print(f"set-up: {n_records} records, {args.workers} workers in {setup_s:.1f} s", flush=True)
        yardstick = calibrate(url)
        print(f"machine now: {yardstick}", flush=True)
        one, ids1 = run_phase("one controller, flat out", url, tokens, 1, args)
        two, ids2 = run_phase("two controllers, flat out", url, tokens, 2, args)
        paced, paced_ids = [], []
        for rate in args.paced:
            phase, ids = run_phase(f"two controllers, {rate:.0f} records/s offered", url, tokens, 2, args,
                                   offered_rps=rate)
            paced.append(phase)
            paced_ids.append(ids)
        checks = db_checks(url)
    finally:
        drop_database(base, url)
    all_sets = [ids1, ids2, *paced_ids]
    across = set()
    for i, a in enumerate(all_sets):
        for b in all_sets[i + 1:]:
            across |= a & b
    at_target = [p for p in paced if p["offered_records_per_s"] == TARGET_RPS]
    result = {
        "benchmark": "lease",
        "machine": {"python": platform.python_version(), "cpus": os.cpu_count(), "platform": platform.platform(),
                    "yardstick": yardstick},
        "setup": {"records": n_records, "workers": args.workers, "batch": args.batch, "warmup_s": args.warmup,
                  "load_generators": args.loadgens, "server": "dialer controller (gevent WSGIServer), 1 process each",
                  "database": "PostgreSQL 15 on the same machine (autovacuum off there: VACUUM ANALYZE before "
                              "each phase)"},
        "target": {"records_per_s": TARGET_RPS, "lease_p99_ms": TARGET_P99_MS},
        "one_controller": one,
        "two_controllers": two,
        "paced_two_controllers": paced,
        "handed_out_in_two_phases": len(across),
        "database_checks": checks,
        "note": ("the flat-out phases are closed loops without pauses (saturation: latency there is queueing, "
                 "Little's law); the paced phases start each worker's cycle on a fixed period (open loop) so "
                 "the offered load holds whatever the latency. Controllers, PostgreSQL and the load generator "
                 "share the machine's 2 cores: see cpu_seconds and machine_load_avg_1min"),
        "verdict": {
            "throughput_met_one_controller": one["records_reported_per_s"] >= TARGET_RPS,
            "throughput_met_two_controllers": two["records_reported_per_s"] >= TARGET_RPS,
            "p99_met_at_target_rate": bool(at_target) and all(
                p["records_reported_per_s"] >= 0.98 * TARGET_RPS and p["lease_latency_ms"]["p99"] <= TARGET_P99_MS
                for p in at_target),
            "no_record_twice": all(p["records_handed_out_twice"] == 0 for p in (one, two, *paced))
            and not across and checks["records_with_two_attempts"] == 0,
            "second_controller_speedup": round(two["records_reported_per_s"] / max(1.0, one["records_reported_per_s"]), 2),
        },
    }
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(result, indent=2) + "\n")
    print(json.dumps(result["verdict"]))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Benchmark: load 1,000,000 call records from CSV (issue 2, SPEC P1/D9).

* Generates (once, seeded, reused while the seed and size match) a CSV of
  ROWS rows under bench/data/: NANP numbers from real area code + exchange
  pairs in several written formats, UK fixed and mobile, a few other
  countries; about 3 % invalid on purpose and 5 % duplicates written in a
  different format than their first occurrence; plus a 100k-entry DNC list
  of which ~30k numbers occur in the leads.
* Loads the DNC list and then the leads into a fresh SQLite database with the
  real loader (``controller.services.leads.load_leads``), measuring wall time,
  rows/s and the peak memory of the whole process tree (the loader's worker
  processes included): sum of RSS and sum of PSS (shared pages split) of this
  process and its children sampled every 50 ms, and getrusage maxima.
* Measures in the same run the raw single-core rate of
  ``phonenumbers.parse`` + ``is_valid_number`` (and + ``time_zones_for_number``)
  on a sample of the same numbers, so the ratio shows the loader's overhead.
* Repeats the load on PostgreSQL when DIALER_BENCH_DATABASE_URL (or
  postgresql://postgres@127.0.0.1:5432/postgres) answers, in a database it
  creates and drops.

Writes bench/results/load_leads.json.  Env: BENCH_ROWS (default 1000000),
BENCH_RAW_SAMPLE (default 200000), BENCH_SKIP_PG=1.
"""
from __future__ import annotations

import csv
import json
import os
import platform
import random
import resource
import sys
import threading
import time
import uuid
from pathlib import Path

ROOT = Path(__file__).resolve().parent.parent
sys.path.insert(0, str(ROOT))

DATA = ROOT / "bench" / "data"
RESULTS = ROOT / "bench" / "results"
SEED = 20261123
ROWS = int(os.environ.get("BENCH_ROWS", 1_000_000))
DNC_ROWS = 100_000
RAW_SAMPLE = int(os.environ.get("BENCH_RAW_SAMPLE", 200_000))
INVALID_SHARE = 0.03
DUPLICATE_SHARE = 0.05
TARGET_SECONDS = 40.0
TARGET_RSS_MB = 400.0

FIRST = ["James", "Mary", "Robert", "Patricia", "John", "Jennifer", "Michael", "Linda", "David", "Elizabeth",
         "William", "Barbara", "Richard", "Susan", "Joseph", "Jessica", "Thomas", "Sarah", "Carlos", "Maria",
         "Wei", "Aisha", "Olivia", "Noah", "Emma", "Liam", "Sofia", "Mateo", "Chloe", "Arjun"]
LAST = ["Smith", "Johnson", "Williams", "Brown", "Jones", "Garcia", "Miller", "Davis", "Rodriguez", "Martinez",
        "Hernandez", "Lopez", "Gonzalez", "Wilson", "Anderson", "Thomas", "Taylor", "Moore", "Jackson", "Martin",
        "Lee", "Perez", "Thompson", "White", "Harris", "Clark", "Lewis", "Walker", "Patel", "Nguyen"]
OTHER_REGIONS = ["DE", "FR", "AU", "MX", "ES", "IT", "IN", "BR", "IE", "NL"]


# --------------------------------------------------------------------------- data


def _us_format(rng: random.Random, digits10: str) -> str:
    a, b, c = digits10[:3], digits10[3:6], digits10[6:]
    style = rng.randrange(5)
    if style == 0:
        return f"({a}) {b}-{c}"
    if style == 1:
        return f"{a}-{b}-{c}"
    if style == 2:
        return f"+1 {a} {b} {c}"
    if style == 3:
        return digits10
    return f"1-{a}-{b}-{c}"


def _generators(rng: random.Random):
    import phonenumbers
    from phonenumbers.geodata import GEOCODE_DATA

    nanp = sorted(k[1:] for k in GEOCODE_DATA if k.startswith("1") and len(k) == 7)
    uk_fixed = sorted(k[2:] for k in GEOCODE_DATA if k.startswith("44") and 5 <= len(k) <= 7)
    others = []
    for region in OTHER_REGIONS:
        for kind in (phonenumbers.PhoneNumberType.FIXED_LINE, phonenumbers.PhoneNumberType.MOBILE):
            example = phonenumbers.example_number_for_type(region, kind)
            if example is not None:
                others.append(phonenumbers.format_number(example, phonenumbers.PhoneNumberFormat.E164))

    def us() -> str:
        return _us_format(rng, rng.choice(nanp) + f"{rng.randrange(10000):04d}")

    def uk() -> str:
        if rng.random() < 0.5:
            nsn = "7" + rng.choice("45789") + "".join(rng.choices("0123456789", k=8))
            # written with +44: the campaign's default region is US
            return f"+44 {nsn[:4]} {nsn[4:]}" if rng.random() < 0.5 else f"+44{nsn}"
        prefix = rng.choice(uk_fixed)
        nsn = prefix + "".join(rng.choices("0123456789", k=10 - len(prefix)))
        return f"+44 {nsn[:3]} {nsn[3:]}" if rng.random() < 0.5 else f"+44{nsn}"

    def other() -> str:
        base = rng.choice(others)
        return base[:-3] + f"{rng.randrange(1000):03d}"

    def invalid() -> str:
        kind = rng.randrange(6)
        if kind == 0:
            return str(rng.randrange(1, 1000))  # "12"
        if kind == 1:
            return "+999" + "".join(rng.choices("0123456789", k=9))  # no such country code
        if kind == 2:
            return f"(555) {rng.randrange(200, 999)}-{rng.randrange(10000):04d}"  # no area code 555
        if kind == 3:
            return rng.choice(["n/a", "unknown", "call me", "TBD", "-"])
        if kind == 4:
            return "+1 " + "".join(rng.choices("0123456789", k=14))  # too long
        return f"(1{rng.randrange(10, 99)}) 555-{rng.randrange(10000):04d}"  # area code starting 1

    return us, uk, other, invalid


def _reformat(raw: str, rng: random.Random) -> str:
    """The same number written differently (a realistic duplicate)."""
    digits = "".join(ch for ch in raw if ch.isdigit())
    if raw.startswith("+"):
        return "+" + digits if rng.random() < 0.5 else raw
    if len(digits) == 10:
        return "+1" + digits
    if len(digits) == 11 and digits.startswith("1"):
        return f"({digits[1:4]}) {digits[4:7]}-{digits[7:]}"
    return raw


def generate(leads_path: Path, dnc_path: Path, meta_path: Path) -> dict:
    meta = {"seed": SEED, "rows": ROWS, "dnc_rows": DNC_ROWS, "version": 3}
    if leads_path.exists() and dnc_path.exists() and meta_path.exists():
        if json.loads(meta_path.read_text()) == meta:
            return meta | {"generated": False}
    DATA.mkdir(parents=True, exist_ok=True)
    rng = random.Random(SEED)
    us, uk, other, invalid = _generators(rng)
    valid_pool: list[str] = []  # numbers a duplicate or DNC entry may refer to (bounded sample)
    dnc_from_leads: list[str] = []
    started = time.perf_counter()
    with open(leads_path, "w", encoding="utf-8", newline="") as f:
        w = csv.writer(f)
        w.writerow(["first_name", "last_name", "phone", "email", "customer_id", "source"])
        for i in range(ROWS):
            r = rng.random()
            if r < INVALID_SHARE:
                number = invalid()
            elif r < INVALID_SHARE + DUPLICATE_SHARE and valid_pool:
                number = _reformat(rng.choice(valid_pool), rng)
            else:
                k = rng.random()
                number = us() if k < 0.80 else uk() if k < 0.93 else other()
                if len(valid_pool) < 200_000:
                    valid_pool.append(number)
                else:
                    valid_pool[rng.randrange(200_000)] = number
                if rng.random() < 0.033 and len(dnc_from_leads) < DNC_ROWS * 3 // 10:
                    dnc_from_leads.append(number)
            first, last = rng.choice(FIRST), rng.choice(LAST)
            w.writerow([first, last, number, f"{first.lower()}.{last.lower()}{i}@example.com", f"C{i:07d}",
                        rng.choice(["web", "list-2025", "referral", "event"])])
    with open(dnc_path, "w", encoding="utf-8") as f:
        for number in dnc_from_leads:
            f.write(number + "\n")
        for _ in range(DNC_ROWS - len(dnc_from_leads)):
            f.write(us() + "\n")
    meta_path.write_text(json.dumps(meta))
    print(f"generated {ROWS} rows + {DNC_ROWS} DNC in {time.perf_counter() - started:.1f} s", flush=True)
    return meta | {"generated": True}


# --------------------------------------------------------------------------- memory


def _children(pid: int) -> list[int]:
    out = []
    try:
        for task in os.listdir(f"/proc/{pid}/task"):
            with open(f"/proc/{pid}/task/{task}/children") as f:
                out.extend(int(p) for p in f.read().split())
    except OSError:
        pass
    return out


def _mem_kb(pid: int) -> tuple[int, int]:
    rss = pss = 0
    try:
        with open(f"/proc/{pid}/smaps_rollup") as f:
            for line in f:
                if line.startswith("Rss:"):
                    rss = int(line.split()[1])
                elif line.startswith("Pss:"):
                    pss = int(line.split()[1])
    except OSError:
        pass
    return rss, pss


class TreeMemory:
    """Samples RSS and PSS summed over this process and all its descendants."""

    def __init__(self, interval: float = 0.05) -> None:
        self.interval = interval
        self.peak_rss_kb = 0
        self.peak_pss_kb = 0
        self.peak_processes = 0
        self._stop = threading.Event()
        self._thread = threading.Thread(target=self._run, daemon=True)

    def _sample(self) -> None:
        todo, pids = [os.getpid()], []
        while todo:
            pid = todo.pop()
            pids.append(pid)
            todo.extend(_children(pid))
        rss = pss = 0
        for pid in pids:
            r, p = _mem_kb(pid)
            rss += r
            pss += p
        self.peak_rss_kb = max(self.peak_rss_kb, rss)
        self.peak_pss_kb = max(self.peak_pss_kb, pss)
        self.peak_processes = max(self.peak_processes, len(pids))

    def _run(self) -> None:
        while not self._stop.wait(self.interval):
            self._sample()

    def __enter__(self) -> "TreeMemory":
        self._sample()
        self._thread.start()
        return self

    def __exit__(self, *exc) -> None:
        self._stop.set()
        self._thread.join(timeout=5)
        self._sample()


# --------------------------------------------------------------------------- runs


def raw_rates(leads_path: Path, pattern_cache: bool) -> dict:
    """Run in a fresh interpreter (``--raw``): nothing of ours imported, so the
    default figure is phonenumbers exactly as a naive caller gets it."""
    import phonenumbers
    from phonenumbers import timezone

    if pattern_cache:
        phonenumbers.enable_pattern_cache()

    step = max(1, ROWS // RAW_SAMPLE)
    sample = []
    with open(leads_path, encoding="utf-8", newline="") as f:
        reader = csv.reader(f)
        next(reader)
        for i, row in enumerate(reader):
            if i % step == 0:
                sample.append(row[2])
    parsed = []
    started = time.perf_counter()
    valid = 0
    for raw in sample:
        try:
            n = phonenumbers.parse(raw, "US")
        except phonenumbers.NumberParseException:
            continue
        if phonenumbers.is_valid_number(n):
            valid += 1
            parsed.append(n)
    parse_valid = time.perf_counter() - started
    started = time.perf_counter()
    for n in parsed:
        timezone.time_zones_for_number(n)
    tz_seconds = time.perf_counter() - started
    return {
        "pattern_cache": pattern_cache,
        "sample_numbers": len(sample),
        "sample_valid": valid,
        "parse_is_valid_per_s": round(len(sample) / parse_valid),
        "parse_is_valid_time_zone_per_s": round(len(sample) / (parse_valid + tz_seconds)),
    }


def load_into(url: str, leads_path: Path, dnc_path: Path) -> dict:
    from controller.db import Database, upgrade
    from controller.services import campaigns, dnc, leads

    upgrade(url)
    db = Database(url)
    try:
        campaigns.create_campaign(db, "bench", default_region="US")
        started = time.perf_counter()
        dnc_summary = dnc.load_file(db, dnc_path, source="bench")
        dnc_seconds = time.perf_counter() - started
        load_before = round(os.getloadavg()[0], 2)
        cpu_before = time.process_time()
        children_before = resource.getrusage(resource.RUSAGE_CHILDREN)
        with TreeMemory() as mem:
            started = time.perf_counter()
            summary = leads.load_leads(db, leads_path, "bench", "main")
            wall = time.perf_counter() - started
        parent_cpu = time.process_time() - cpu_before
        children_after = resource.getrusage(resource.RUSAGE_CHILDREN)  # workers are joined by now
        workers_cpu = (children_after.ru_utime + children_after.ru_stime
                       - children_before.ru_utime - children_before.ru_stime)
        load_after = round(os.getloadavg()[0], 2)
        rerun_started = time.perf_counter()
        # Re-running must load nothing (idempotence); measured on a 50k-row prefix only.
        rerun = None
        if os.environ.get("BENCH_RERUN", "1") == "1":
            prefix = DATA / "leads_prefix.csv"
            with open(leads_path, encoding="utf-8") as src, open(prefix, "w", encoding="utf-8") as dst:
                for i, line in enumerate(src):
                    if i > 50_000:
                        break
                    dst.write(line)
            again = leads.load_leads(db, prefix, "bench", "main", workers=1)
            rerun = {"rows": again.total, "loaded": again.loaded, "duplicate": again.duplicate,
                     "seconds": round(time.perf_counter() - rerun_started, 2)}
        import sqlalchemy as sa

        with db.engine.connect() as conn:
            in_db = conn.execute(sa.text("SELECT count(*) FROM call_record")).scalar_one()
    finally:
        db.dispose()
    counted = summary.loaded + summary.duplicate + summary.dnc + summary.invalid + summary.rejected
    return {
        "rows": summary.total,
        "wall_seconds": round(wall, 2),
        "rows_per_s": round(summary.total / wall),
        "loaded": summary.loaded,
        "duplicate": summary.duplicate,
        "dnc": summary.dnc,
        "invalid": summary.invalid,
        "invalid_reasons": summary.invalid_reasons,
        "rejected_other": summary.rejected,
        "counts_add_up": counted == summary.total,
        "records_in_database": in_db,
        "workers": summary.workers,
        "cpu_seconds": {"parent": round(parent_cpu, 2), "workers": round(workers_cpu, 2)},
        "machine_load_average_1m": {"before": load_before, "after": load_after},
        "peak_tree_rss_mb": round(mem.peak_rss_kb / 1024, 1),
        "peak_tree_pss_mb": round(mem.peak_pss_kb / 1024, 1),
        "peak_processes": mem.peak_processes,
        "dnc_load": {"entries": dnc_summary.total, "added": dnc_summary.added,
                     "invalid": dnc_summary.invalid, "seconds": round(dnc_seconds, 2)},
        "rerun_prefix": rerun,
    }


def _pg_admin_url() -> str | None:
    url = os.environ.get("DIALER_BENCH_DATABASE_URL") or "postgresql+psycopg://postgres@127.0.0.1:5432/postgres"
    if os.environ.get("BENCH_SKIP_PG") == "1":
        return None
    import sqlalchemy as sa

    if url.startswith("postgresql://"):
        url = "postgresql+psycopg://" + url[len("postgresql://"):]
    try:
        engine = sa.create_engine(url, isolation_level="AUTOCOMMIT", connect_args={"connect_timeout": 3})
        with engine.connect() as conn:
            conn.execute(sa.text("SELECT 1"))
        engine.dispose()
    except Exception as err:  # no server: the PG part is skipped and says why
        print(f"PostgreSQL not reachable ({type(err).__name__}); skipping the PostgreSQL load", flush=True)
        return None
    return url


def run_postgres(admin_url: str, leads_path: Path, dnc_path: Path) -> dict:
    import sqlalchemy as sa
    from sqlalchemy.engine import make_url

    name = f"dialer_bench_{uuid.uuid4().hex[:8]}"
    admin = sa.create_engine(admin_url, isolation_level="AUTOCOMMIT")
    with admin.connect() as conn:
        conn.execute(sa.text(f'CREATE DATABASE "{name}"'))
    try:
        url = make_url(admin_url).set(database=name).render_as_string(hide_password=False)
        return load_into(url, leads_path, dnc_path)
    finally:
        with admin.connect() as conn:
            conn.execute(sa.text("SELECT pg_terminate_backend(pid) FROM pg_stat_activity "
                                 "WHERE datname = :n AND pid <> pg_backend_pid()"), {"n": name})
            conn.execute(sa.text(f'DROP DATABASE IF EXISTS "{name}"'))
        admin.dispose()


def _raw_subprocess(leads_path: Path, pattern_cache: bool) -> dict:
    import subprocess

    args = [sys.executable, __file__, "--raw", str(leads_path)] + (["--pattern-cache"] if pattern_cache else [])
    out = subprocess.run(args, check=True, capture_output=True, text=True, timeout=600).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> int:
    if len(sys.argv) > 2 and sys.argv[1] == "--raw":
        print(json.dumps(raw_rates(Path(sys.argv[2]), "--pattern-cache" in sys.argv)))
        return 0
    load_start = round(os.getloadavg()[0], 2)
    leads_path = DATA / f"leads_{ROWS}.csv"
    dnc_path = DATA / f"dnc_{DNC_ROWS}.txt"
    meta = generate(leads_path, dnc_path, DATA / f"leads_{ROWS}.meta.json")
    db_path = DATA / "bench.db"
    for suffix in ("", "-wal", "-shm"):
        Path(str(db_path) + suffix).unlink(missing_ok=True)
    print(f"loading {ROWS} rows into SQLite ...", flush=True)
    sqlite_result = load_into(f"sqlite:///{db_path}", leads_path, dnc_path)
    print(json.dumps(sqlite_result), flush=True)
    pg_result = None
    admin = _pg_admin_url()
    if admin:
        print("loading into PostgreSQL ...", flush=True)
        pg_result = run_postgres(admin, leads_path, dnc_path)
        print(json.dumps(pg_result), flush=True)
    print("raw phonenumbers rate (single core, fresh interpreters) ...", flush=True)
    raw = _raw_subprocess(leads_path, False)
    raw_cached = _raw_subprocess(leads_path, True)
    self_usage = resource.getrusage(resource.RUSAGE_SELF)
    child_usage = resource.getrusage(resource.RUSAGE_CHILDREN)
    result = {
        "benchmark": "load_leads",
        "measured_at": time.strftime("%Y-%m-%dT%H:%M:%SZ", time.gmtime()),
        "machine": {"cpus": os.cpu_count(), "python": platform.python_version(),
                    "platform": platform.platform()},
        "data": {"rows": ROWS, "dnc_entries": DNC_ROWS, "seed": SEED, "invalid_share": INVALID_SHARE,
                 "duplicate_share": DUPLICATE_SHARE, "file_mb": round(leads_path.stat().st_size / 2**20, 1),
                 "generated_this_run": meta["generated"]},
        "sqlite": sqlite_result,
        "postgresql": pg_result,
        "raw_phonenumbers_single_core": raw,
        "raw_phonenumbers_single_core_pattern_cache": raw_cached,
        "loader_vs_raw_single_core": round(sqlite_result["rows_per_s"] / raw["parse_is_valid_per_s"], 2),
        "loader_vs_raw_single_core_pattern_cache": round(
            sqlite_result["rows_per_s"] / raw_cached["parse_is_valid_per_s"], 2),
        "load_average_1m": {"start": load_start, "end": round(os.getloadavg()[0], 2)},
        "getrusage_maxrss_mb": {"self": round(self_usage.ru_maxrss / 1024, 1),
                                "largest_child": round(child_usage.ru_maxrss / 1024, 1)},
        "targets": {"seconds": TARGET_SECONDS, "peak_rss_mb": TARGET_RSS_MB,
                    "sqlite_seconds_met": sqlite_result["wall_seconds"] <= TARGET_SECONDS,
                    "sqlite_tree_rss_met": sqlite_result["peak_tree_rss_mb"] < TARGET_RSS_MB},
    }
    RESULTS.mkdir(parents=True, exist_ok=True)
    out = RESULTS / "load_leads.json"
    out.write_text(json.dumps(result, indent=2) + "\n")
    print(f"wrote {out}")
    print(json.dumps({k: result[k] for k in ("loader_vs_raw_single_core", "targets")}))
    return 0


if __name__ == "__main__":
    sys.exit(main())

"""Run every benchmark under bench/ (what `make bench` does).

Each benchmark is a standalone script that writes bench/results/<name>.json.
Set BENCH_ONLY=name1,name2 to run a subset.
"""
from __future__ import annotations

import os
import subprocess
import sys
import time
from pathlib import Path

HERE = Path(__file__).resolve().parent
ORDER = ["load_leads", "esl_throughput", "lease", "pacing", "ivr", "sim_fanout"]


def main() -> int:
    scripts = {p.stem: p for p in HERE.glob("*.py") if p.stem != "run_all" and not p.stem.startswith("_")}
    only = [s for s in os.environ.get("BENCH_ONLY", "").split(",") if s]
    names = [n for n in ORDER if n in scripts] + sorted(set(scripts) - set(ORDER))
    if only:
        names = [n for n in names if n in only]
    failed = []
    for name in names:
        print(f"== bench {name}", flush=True)
        start = time.perf_counter()
        rc = subprocess.call([sys.executable, str(scripts[name])], cwd=HERE.parent)
        print(f"== bench {name}: exit {rc} in {time.perf_counter() - start:.1f} s", flush=True)
        if rc:
            failed.append(name)
    if failed:
        print("failed benchmarks: " + ", ".join(failed), file=sys.stderr)
    return 1 if failed else 0


if __name__ == "__main__":
    sys.exit(main())

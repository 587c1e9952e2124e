"""Pacing benchmark (issue 5, SPEC X2): progressive, best hindsight power ratio,
VICIdial ADAPT_AVERAGE and our predictive pacer on the fixed call model.

Writes bench/results/pacing.json.  Every figure is measured by running the
virtual-time simulator (esl_dialer.vsim) with the real pacing code; nothing
is hard-coded.  Runs on all cores (multiprocessing over scenario x seed x
method).

    python bench/pacing.py                 # full run (~ a few minutes on 2 cores)
    python bench/pacing.py --seeds 2 --only predictive --set theta0=0.03   # experiments
"""
from __future__ import annotations

import argparse
import json
import multiprocessing
import os
import platform
import statistics
import sys
import time
from pathlib import Path
from typing import Dict, List, Tuple

HERE = Path(__file__).resolve().parent
sys.path.insert(0, str(HERE.parent))

from esl_dialer.messages import DialMode  # noqa: E402
from esl_dialer.pacing import PacingConfig, make_pacer  # noqa: E402
from esl_dialer.vicidial import VicidialAdaptAverage  # noqa: E402
from esl_dialer.vsim import SimConfig, simulate  # noqa: E402

SCENARIOS: Dict[str, Dict[str, float]] = {
    "a": {"agents": 10, "answer_rate": 0.2, "talk_mean": 120.0},
    "b": {"agents": 20, "answer_rate": 0.4, "talk_mean": 180.0},
    "c": {"agents": 50, "answer_rate": 0.3, "talk_mean": 150.0},
    "d": {"agents": 5, "answer_rate": 0.15, "talk_mean": 90.0},
}
OCCUPANCY_TARGETS = {"a": 0.75, "b": 0.865, "c": 0.88, "d": 0.63}
ABANDON_LIMIT = 0.03
WRAP_S = 10.0
COARSE_RATIOS = [1.0, 2.0, 3.0, 4.0, 5.0, 6.0]
REFINE_STEPS = 4  # bisection steps after the coarse bracket (1 -> 0.0625)


class _Factory:
    """Picklable pacer factory (multiprocessing)."""

    def __init__(self, method: str, ratio: float = 0.0, overrides: Tuple[Tuple[str, float], ...] = ()) -> None:
        self.method, self.ratio, self.overrides = method, ratio, overrides

    def __call__(self, clock):
        if self.method == "vicidial":
            return VicidialAdaptAverage(PacingConfig(), clock)
        if self.method == "power":
            return make_pacer(PacingConfig(mode=DialMode.POWER, ratio=self.ratio), clock)
        if self.method == "progressive":
            return make_pacer(PacingConfig(mode=DialMode.PROGRESSIVE), clock)
        return make_pacer(PacingConfig(mode=DialMode.PREDICTIVE, **dict(self.overrides)), clock)


def run_one(task) -> Tuple[tuple, dict]:
    scenario, seed, method, ratio, overrides, d6 = task
    cfg = SimConfig(seed=seed, wrap_s=WRAP_S, hours=8.0, enforce_d6=d6, **SCENARIOS[scenario])
    start = time.perf_counter()
    result = simulate(cfg, _Factory(method, ratio, overrides))
    out = result.as_dict()
    out["cpu_s"] = time.perf_counter() - start
    return task, out


def summarize(runs: List[dict]) -> dict:
    def stat(key):
        vals = [r[key] for r in runs]
        return {"mean": statistics.fmean(vals), "min": min(vals), "max": max(vals)}

    return {
        "seeds": len(runs),
        "occupancy": stat("occupancy"),
        "abandon_rate": stat("abandon_rate"),
        "worst_hour_abandon_rate": stat("worst_hour_abandon_rate"),
        "calls_per_agent_hour": stat("calls_per_agent_hour"),
        "dials_per_agent_hour": stat("dials_per_agent_hour"),
        "mean_connect_s": stat("mean_connect_s"),
    }


def main() -> int:
    ap = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    ap.add_argument("--seeds", type=int, default=5)
    ap.add_argument("--scenarios", default="abcd")
    ap.add_argument("--only", default="", help="comma list of methods: progressive,power,vicidial,predictive")
    ap.add_argument("--set", action="append", default=[], help="predictive override NAME=VALUE (experiments)")
    ap.add_argument("--no-d6", action="store_true", help="let every worker dial for ours (no D6 constraint)")
    ap.add_argument("--processes", type=int, default=os.cpu_count() or 2)
    ap.add_argument("--output", default=str(HERE / "results" / "pacing.json"))
    ap.add_argument("--table", metavar="JSON", help="only print the Markdown table of an existing results file")
    args = ap.parse_args()
    if args.table:
        print(format_table(json.loads(Path(args.table).read_text())["results"]))
        return 0
    overrides = tuple((k, float(v)) for k, v in (s.split("=", 1) for s in args.set))
    methods = [m for m in args.only.split(",") if m] or ["progressive", "power", "vicidial", "predictive"]
    scenarios = list(args.scenarios)
    seeds = list(range(1, args.seeds + 1))
    ours_d6 = not args.no_d6
    started = time.perf_counter()
    results: Dict[str, Dict[str, dict]] = {s: {} for s in scenarios}
    sweeps: Dict[str, list] = {s: [] for s in scenarios}
    with multiprocessing.Pool(args.processes) as pool:
        tasks = []
        for s in scenarios:
            for seed in seeds:
                if "progressive" in methods:
                    tasks.append((s, seed, "progressive", 0.0, (), False))
                if "vicidial" in methods:
                    tasks.append((s, seed, "vicidial", 0.0, (), False))
                if "predictive" in methods:
                    tasks.append((s, seed, "predictive", 0.0, overrides, ours_d6))
        fixed = {}
        for task, out in pool.imap_unordered(run_one, tasks):
            fixed.setdefault((task[0], task[2]), []).append(out)
            print(f"{task[0]} seed {task[1]} {task[2]:12s} occ {out['occupancy']:.3f} "
                  f"abandon {out['abandon_rate']:.4f} worst-1h {out['worst_hour_abandon_rate']:.3f} "
                  f"({out['cpu_s']:.1f} s)", flush=True)
        for (s, m), runs in fixed.items():
            results[s][m] = summarize(runs)
        if "power" in methods:
            best = sweep_power(pool, scenarios, seeds, sweeps)
            for s in scenarios:
                if best[s] is not None:
                    results[s]["power"] = dict(summarize(best[s][1]), ratio=best[s][0])
    elapsed = time.perf_counter() - started
    report = {
        "benchmark": "pacing",
        "model": {
            "shift_hours": 8.0, "ring_s": [3.0, 15.0], "no_answer_s": 25.0, "max_wait_s": 2.0,
            "talk": "log-normal, CV 1.0", "wrap_s": WRAP_S, "trunks": "unlimited",
            "occupancy": "talk time / (agents x shift)", "abandonment": "abandoned / live answers",
        },
        "scenarios": SCENARIOS,
        "occupancy_targets": OCCUPANCY_TARGETS,
        "abandon_limit": ABANDON_LIMIT,
        "seeds": seeds,
        "ours_config": {k: v for k, v in PacingConfig().__dict__.items() if k != "mode"} | dict(overrides),
        "ours_enforces_d6": ours_d6,
        "results": results,
        "power_sweep": sweeps,
        "checks": checks(results),
        "elapsed_s": elapsed,
        "processes": args.processes,
        "python": platform.python_version(),
    }
    print(format_table(results))
    print(json.dumps(report["checks"], indent=1))
    print(f"elapsed {elapsed:.1f} s")
    Path(args.output).parent.mkdir(parents=True, exist_ok=True)
    Path(args.output).write_text(json.dumps(report, indent=1, default=str) + "\n")
    return 0


def sweep_power(pool, scenarios, seeds, sweeps) -> Dict[str, tuple]:
    """Best fixed ratio with hindsight: highest occupancy with abandonment <= 3% on every seed."""
    evaluated: Dict[str, Dict[float, list]] = {s: {} for s in scenarios}

    def evaluate(pairs):
        tasks = [(s, seed, "power", r, (), False) for s, r in pairs for seed in seeds]
        for task, out in pool.imap_unordered(run_one, tasks):
            evaluated[task[0]].setdefault(task[3], []).append(out)
        for s, r in pairs:
            runs = evaluated[s][r]
            sweeps[s].append({"ratio": r, "occupancy_mean": statistics.fmean(x["occupancy"] for x in runs),
                              "abandon_max": max(x["abandon_rate"] for x in runs)})

    def feasible(s, r):
        return max(x["abandon_rate"] for x in evaluated[s][r]) <= ABANDON_LIMIT

    evaluate([(s, r) for s in scenarios for r in COARSE_RATIOS])
    brackets = {}
    for s in scenarios:
        ok = [r for r in COARSE_RATIOS if feasible(s, r)]
        lo = max(ok) if ok else None
        bigger = [r for r in COARSE_RATIOS if lo is not None and r > lo]
        brackets[s] = (lo, min(bigger) if bigger else None)
    for _ in range(REFINE_STEPS):
        pairs = []
        for s, (lo, hi) in brackets.items():
            if lo is not None and hi is not None:
                pairs.append((s, round((lo + hi) / 2, 4)))
        if not pairs:
            break
        evaluate(pairs)
        for s, mid in pairs:
            lo, hi = brackets[s]
            brackets[s] = (mid, hi) if feasible(s, mid) else (lo, mid)
    best = {}
    for s in scenarios:
        cands = [(statistics.fmean(x["occupancy"] for x in runs), r) for r, runs in evaluated[s].items()
                 if feasible(s, r)]
        if cands:
            _, r = max(cands)
            best[s] = (r, evaluated[s][r])
        else:
            best[s] = None
        sweeps[s].sort(key=lambda e: e["ratio"])
    return best


def checks(results) -> dict:
    out = {}
    for s, by in results.items():
        ours = by.get("predictive")
        if not ours:
            continue
        c = {
            "abandon_le_3pct_every_seed": ours["abandon_rate"]["max"] <= ABANDON_LIMIT,
            "occupancy_target": OCCUPANCY_TARGETS[s],
            "meets_occupancy_target": ours["occupancy"]["mean"] >= OCCUPANCY_TARGETS[s],
        }
        for other in ("vicidial", "power", "progressive"):
            if other in by:
                c[f"beats_{other}"] = ours["occupancy"]["mean"] > by[other]["occupancy"]["mean"]
        out[s] = c
    return out


def format_table(results) -> str:
    lines = ["| scenario | method | occupancy mean (min-max) | abandon mean (min-max) | worst 1-h abandon (max) | connects/agent-h |",
             "|---|---|---|---|---|---|"]
    for s, by in results.items():
        for m in ("progressive", "power", "vicidial", "predictive"):
            if m not in by:
                continue
            r = by[m]
            name = f"power {r['ratio']:g}" if m == "power" else ("ours" if m == "predictive" else m)
            o, a, w = r["occupancy"], r["abandon_rate"], r["worst_hour_abandon_rate"]
            lines.append(
                f"| {s} | {name} | {o['mean']:.1%} ({o['min']:.1%}-{o['max']:.1%}) | "
                f"{a['mean']:.2%} ({a['min']:.2%}-{a['max']:.2%}) | {w['max']:.1%} | "
                f"{r['calls_per_agent_hour']['mean']:.1f} |"
            )
    return "\n".join(lines)


if __name__ == "__main__":
    sys.exit(main())

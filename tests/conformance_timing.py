"""The delays of the captures' README timing table, measured the same way on any recording."""
from __future__ import annotations

import bisect
import os

from conformance_capture import REPLY_TYPES, WINDOW_S, norm_command


def _first(items, start: int, pred, stop: int | None = None):
    for i in range(start, len(items) if stop is None else min(stop, len(items))):
        if pred(items[i]):
            return items[i]
    return None


def measure_timing(frames: list[dict]) -> dict[str, list[float]]:
    """Delays (s) of the README's timing table, grouped by what they measure."""
    out: dict[str, list[float]] = {}
    evs = [(i, d) for i, d in enumerate(frames) if isinstance(d.get("event"), dict) and d["event"].get("Unique-ID")]

    def add(key: str, value: float) -> None:
        out.setdefault(key, []).append(round(value, 4))

    def ev_after(idx: int, uid: str, pred, stop: int | None = None):
        for i, d in evs:
            if i > idx and (stop is None or i < stop) and d["event"].get("Unique-ID") == uid and pred(d["event"]):
                return d
        return None

    def named(name: str, app: str | None = None):
        return lambda e: e.get("Event-Name") == name and (app is None or e.get("Application") == app)

    # an effect is looked for within WINDOW_S of the reply (the slowest in the README takes 0.4 s)
    times = [d.get("t", 0.0) for d in frames]
    partner: dict[str, str] = {}
    a_leg: dict[str, str] = {}
    prev_reply = {}
    call_uuid: dict[tuple, str] = {}
    burst: dict[tuple, list] = {}
    for i, d in enumerate(frames):
        sent = d.get("sent")
        if not sent or d.get("headers", {}).get("Content-Type") not in REPLY_TYPES:
            continue
        conn = (d.get("conn"), d.get("call"))
        since = prev_reply.get(conn, -1)
        prev_reply[conn] = i
        until = bisect.bisect_right(times, d["t"] + WINDOW_S, lo=i)
        t0 = d["t"]
        argv = sent.split()
        body = (d.get("headers", {}).get("Reply-Text") or d.get("body") or "").strip()
        if sent == "connect":
            call_uuid[conn] = d["headers"].get("Unique-ID")
            burst[conn] = []
            continue
        if argv[:2] == ["api", "uuid_bridge"] and len(argv) >= 4 and body.startswith("+OK"):
            a, b = argv[2], argv[3]
            partner[a], partner[b], a_leg[a], a_leg[b] = b, a, a, a
            for leg, uid in (("A", a), ("B", b)):
                e = ev_after(since, uid, named("CHANNEL_UNPARK"), until)
                if e:
                    add(f"uuid_bridge reply -> CHANNEL_UNPARK ({leg})", e["t"] - t0)
            for key, pred in (("CHANNEL_EXECUTE uuid_bridge", named("CHANNEL_EXECUTE", "uuid_bridge")),
                              ("CHANNEL_BRIDGE", named("CHANNEL_BRIDGE"))):
                e = ev_after(since, a, pred, until)
                if e:
                    add(f"uuid_bridge reply -> {key} (A)", e["t"] - t0)
        elif argv[:2] == ["api", "uuid_kill"] and len(argv) >= 3 and body.startswith("+OK"):
            x = argv[2]
            e = ev_after(since, x, named("CHANNEL_HANGUP"), until)
            if e:
                add("uuid_kill reply -> CHANNEL_HANGUP (killed leg)", e["t"] - t0)
            if x in partner:
                p = partner[x]
                for name in ("CHANNEL_HANGUP", "CHANNEL_HANGUP_COMPLETE"):
                    e = ev_after(since, p, named(name), until)
                    if e:
                        add(f"uuid_kill reply -> {name} (other leg)", e["t"] - t0)
                e = ev_after(since, a_leg[x], named("CHANNEL_UNBRIDGE"), until)
                add("uuid_kill reply -> CHANNEL_UNBRIDGE (A)", e["t"] - t0 if e else float("nan"))
        elif argv[:2] == ["api", "uuid_broadcast"] and len(argv) >= 4:
            x, which = argv[2], (argv[4] if len(argv) > 4 else "aleg")
            prev = frames[since] if since >= 0 else {}
            waited = d.get("waited", d["t"] - prev.get("t", 0.0) >= 0.045)  # captures show it by the time gap
            if x in partner and prev.get("sent", "").startswith("api uuid_bridge") and not waited:
                context = "sent right after the uuid_bridge reply"  # the script did not wait for CHANNEL_BRIDGE
            elif x in partner:
                context = "bridged"
            else:
                context = "parked leg"
            legs = {"both": [x, partner.get(x)], "aleg": [x], "bleg": [partner.get(x)]}.get(which, [x])
            for uid in filter(None, legs):
                leg = "A" if a_leg.get(uid, uid) == uid else "B"
                for name, app in (("CHANNEL_EXECUTE", "playback"), ("PLAYBACK_START", None)):
                    e = ev_after(i, uid, named(name, app), until)
                    if e:
                        add(f"uuid_broadcast ({context}) reply -> {name} ({leg})", e["t"] - t0)
        elif argv[:2] == ["api", "uuid_break"] and len(argv) >= 3:
            x, flavour = argv[2], " all" if argv[3:4] == ["all"] else ""
            n = 0
            for j, dj in evs:  # from the command's sending on: the simulator must not stop before replying either
                ev = dj["event"]
                if j > since and ev.get("Unique-ID") == x and ev.get("Event-Name") == "PLAYBACK_STOP" \
                        and ev.get("Playback-Status") == "break":
                    n += 1
                    add(f"uuid_break{flavour} reply -> PLAYBACK_STOP break #{n}", dj["t"] - t0)
                    if n == 3:
                        break
                if until is not None and j >= until:
                    break
        elif argv[:2] == ["api", "uuid_park"] and len(argv) >= 3:
            for name in ("CHANNEL_UNPARK", "CHANNEL_PARK"):
                e = ev_after(i, argv[2], named(name), until)
                if e:
                    add(f"uuid_park reply -> {name}", e["t"] - t0)
        elif argv[:2] == ["bgapi", "status"]:
            job = d["headers"].get("Job-UUID")
            e = _first(frames, i, lambda f: (f.get("event") or {}).get("Job-UUID") == job)
            if e:
                add("bgapi status reply -> BACKGROUND_JOB", e["t"] - t0)
        elif sent.startswith("sendmsg") and conn in call_uuid:
            uid, cmd = call_uuid[conn], norm_command(sent)
            app = cmd.split()[2] if len(cmd.split()) > 2 else ""
            run = burst[conn]
            if run and d["t"] - run[-1][1] > 0.1:
                run.clear()
            run.append((i, d["t"]))
            stop = next((j for j in range(i + 1, len(frames)) if frames[j].get("sent")
                         and frames[j].get("conn") == d.get("conn") and frames[j].get("call") == d.get("call")
                         and frames[j]["t"] - d["t"] > 0.1), None)
            k = len(run)
            claimed = 0
            for j, dj in evs:
                if j > run[0][0] and (stop is None or j < stop) and dj["event"].get("Unique-ID") == uid \
                        and named("CHANNEL_EXECUTE", app)(dj["event"]):
                    claimed += 1
                    if claimed == k:
                        add(f"{cmd} #{k} reply -> CHANNEL_EXECUTE", dj["t"] - t0)
                        break
            if app == "hangup":
                e = _first(frames, i, lambda f: f.get("conn") == d.get("conn") and f.get("call") == d.get("call")
                           and f.get("headers", {}).get("Content-Type") == "text/disconnect-notice")
                if e:
                    add(f"{cmd} reply -> text/disconnect-notice", e["t"] - t0)
    # PLAYBACK_START -> its PLAYBACK_STOP (same file) on the same channel
    for j, dj in evs:
        ev = dj["event"]
        if ev.get("Event-Name") != "PLAYBACK_START":
            continue
        path = ev.get("Playback-File-Path", "")
        stop = ev_after(j, ev["Unique-ID"], lambda e: e.get("Event-Name") == "PLAYBACK_STOP"
                        and e.get("Playback-File-Path") == path)
        if stop:
            what = os.path.basename(path) if path.endswith(".wav") else path.split("://")[0]
            add(f"PLAYBACK_START -> PLAYBACK_STOP ({what}, {stop['event'].get('Playback-Status')})",
                stop["t"] - dj["t"])
    return out


def timing_bounds(values: list[float]) -> tuple[float, float]:
    """The capture's range widened for a loaded machine: 10 % / 5 ms below, 25 % / 100 ms above."""
    lo, hi = min(values), max(values)
    return lo - max(0.005, 0.1 * abs(lo)), hi + max(0.1, 0.25 * hi)

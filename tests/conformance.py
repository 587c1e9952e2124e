"""Conformance harness: replay a capture's command script against the simulator, compare by shape.

Each ``<name>.script.json`` beside a capture of the real FreeSWITCH 1.10.12 is
run against a fresh :class:`SimSwitch`; every frame the client receives is
recorded like the capture recorded it (``t``, ``conn``, ``call``, ``raw``,
``headers``, ``body``, ``sent``, ``event``).  Both recordings are then reduced
to their *shape* and compared:

- replies: per connection and command, the Content-Type, the first token of
  Reply-Text / the api body (digits and UUIDs normalised), whether the body
  starts or ends with a newline, and the reply's header names;
- per channel (legs matched by role, not by UUID): the order of its events,
  keyed by Event-Name plus what tells events apart (Application,
  Application-Response, Channel-State, Playback-Status, Event-Subclass);
- the header names (not ``variable_*``) of every event, in order;
- events without a channel (BACKGROUND_JOB, API, RELOADXML) in order, and the
  other frames (disconnect notices, ``log/data``); an API event of a command no
  client of the script sent before it is another client's and is left out;
- timing: the delays of the README's timing table (reply to event, event to
  event), each within the range the capture shows widened by a slack for a
  loaded machine.

Interleaving *between* channels is thread timing in FreeSWITCH and is not
compared.  Reading the captures is :mod:`conformance_capture`, running a
script :mod:`conformance_replay`, the timing pairs :mod:`conformance_timing`.  ``compare`` returns readable difference lines; an empty list is
conformance.
"""
from __future__ import annotations

import difflib
import re
from collections import Counter
from dataclasses import dataclass
from urllib.parse import unquote

from conformance_capture import (  # noqa: F401  (re-exported: the tests use conformance.*)
    CAPTURE_DIRS, IGNORED_APPS, REPLY_TYPES, TIMER_EVENTS, UUID_RE, load_capture, norm_command, script_names)
from conformance_replay import PRELUDES, run_on_simulator  # noqa: F401
from conformance_timing import measure_timing, timing_bounds


# --------------------------------------------------------------------------- shapes
def first_token(text: str) -> str:
    tok = re.split(r"[\s,]+", text.strip(), maxsplit=1)[0] if text.strip() else ""
    tok = UUID_RE.sub("<uuid>", tok)
    return re.sub(r"\d+", "N", tok)[:48]


def reply_shape(d: dict) -> tuple:
    h = d["headers"]
    ct = h.get("Content-Type")
    text = h.get("Reply-Text", "") if ct == "command/reply" else d.get("body", "")
    text = unquote(text)
    names = tuple(k for k in h if not k.startswith("variable_"))
    return (ct, first_token(text), text.startswith("\n"), text.endswith("\n") if ct == "api/response" else None,
            names)


def event_key(ev: dict) -> str:
    name = ev.get("Event-Name", "?")
    parts = [name]
    if name in ("CHANNEL_EXECUTE", "CHANNEL_EXECUTE_COMPLETE"):
        parts.append(ev.get("Application", ""))
        if name == "CHANNEL_EXECUTE_COMPLETE":
            parts.append(ev.get("Application-Response", ""))
    elif name == "CHANNEL_STATE":
        parts.append(ev.get("Channel-State", ""))
    elif name == "PLAYBACK_STOP":
        parts.append(ev.get("Playback-Status", ""))
    elif name == "CUSTOM":
        parts += [ev.get("Event-Subclass", ""), ev.get("CC-Action", "")]
    elif name == "API":
        parts.append(ev.get("API-Command", ""))
    return " ".join(p for p in parts if p)


def header_names(ev: dict) -> list[str]:
    return [k for k in ev if not k.startswith("variable_") and k != "_body"]


def roles(frames: list[dict]) -> dict[str, str]:
    """Role of each channel: ``N-a`` for the N-th origination_uuid, ``N-b`` for its loopback partner,
    ``<Channel-Name>#k`` for channels the script did not name (e.g. callcenter agent legs)."""
    out: dict[str, str] = {}
    for d in frames:
        for m in re.findall(r"origination_uuid=([0-9a-f-]{36})", d.get("sent", "")):
            out.setdefault(m, f"{sum(1 for r in out.values() if r.endswith('-a')) + 1}-a")
    evs = [d["event"] for d in frames if isinstance(d.get("event"), dict)]
    evs += [d["headers"] for d in frames if d.get("sent") == "connect"]
    for ev in evs:
        uid, other = ev.get("Unique-ID"), unquote(ev.get("variable_other_loopback_leg_uuid", ""))
        if uid and other and out.get(other, "").endswith("-a") and uid not in out:
            out[uid] = out[other][:-2] + "-b"
        if uid and other and out.get(uid, "").endswith("-a") and other not in out:
            out[other] = out[uid][:-2] + "-b"
    for ev in evs:  # CHANNEL_UUID: the events before it carried the channel's first uuid
        old = ev.get("Old-Unique-ID")
        if old and ev.get("Unique-ID") in out and old not in out:
            out[old] = out[ev["Unique-ID"]]
    seen: Counter = Counter()
    for ev in evs:
        uid = ev.get("Unique-ID")
        if uid and uid not in out:
            base = re.sub(r"\d{6,}", "N", unquote(ev.get("Channel-Name", "?")))
            seen[base] += 1
            out[uid] = f"{base}#{seen[base]}"
    return out


@dataclass
class Shape:
    replies: dict[str, list[tuple[str, tuple]]]
    channels: dict[str, list[dict]]
    others: dict[str, list[dict]]
    frames: dict[str, list[tuple]]
    timing: dict[str, list[float]]


def _api_name(sent: str) -> str | None:
    words = sent.split(None, 2)
    return words[1] if len(words) > 1 and words[0] in ("api", "bgapi") else None


def shape(frames: list[dict]) -> Shape:
    role = roles(frames)
    sent_apis: set[str] = set()  # api commands the script has sent so far (any connection)
    replies: dict[str, list] = {}
    channels: dict[str, list] = {}
    others: dict[str, list] = {}
    other_frames: dict[str, list] = {}
    for d in frames:
        conn = f"{d.get('conn') or 'in'}{d.get('call') or ''}"
        h = d.get("headers")
        if h is None:
            other_frames.setdefault(conn, []).append(("closed",))
            continue
        ct = h.get("Content-Type")
        if _api_name(d.get("sent", "")):
            sent_apis.add(_api_name(d["sent"]))
        if "sent" in d and ct in REPLY_TYPES:
            if d["sent"].startswith("auth"):
                continue  # not recorded in every capture
            replies.setdefault(conn, []).append((norm_command(d["sent"]), reply_shape(d)))
        elif isinstance(d.get("event"), dict):
            ev = d["event"]
            if (ev.get("Application"), ev.get("Application-Data")) in IGNORED_APPS:
                continue
            if ev.get("Event-Name") == "API" and ev.get("API-Command") not in sent_apis:
                continue  # another client's command (e_timing: `status`, `show` at 1.9 s, left in the capture)
            uid = ev.get("Unique-ID")
            if uid:
                channels.setdefault(role.get(uid, uid), []).append(ev)
            elif ev.get("Event-Name") not in TIMER_EVENTS:
                others.setdefault(conn, []).append(ev)
        elif ct not in ("auth/request",):
            item = (ct, h.get("Content-Disposition"), tuple(k for k in h if k != "Content-Length"))
            lst = other_frames.setdefault(conn, [])
            if not lst or lst[-1] != item:
                lst.append(item)
    return Shape(replies, channels, others, other_frames, measure_timing(frames))


# --------------------------------------------------------------------------- comparing
def _names_diff(real: list[str], ours: list[str]) -> str:
    missing = [n for n in real if n not in ours]
    extra = [n for n in ours if n not in real]
    if missing or extra:
        return f"missing {missing} extra {extra}"
    k = next(i for i, (a, b) in enumerate(zip(real, ours)) if a != b)
    return f"order differs at {k}: real {real[k:k + 3]} sim {ours[k:k + 3]}"


def _short(items: list[str], limit: int = 8) -> str:
    return repr(items) if len(items) <= limit else f"{items[:limit]!r} ... (+{len(items) - limit})"


def _seq_diff(real: list[str], ours: list[str], limit: int = 12) -> list[str]:
    lines = []
    for tag, i1, i2, j1, j2 in difflib.SequenceMatcher(a=real, b=ours, autojunk=False).get_opcodes():
        if tag == "equal":
            continue
        lines.append(f"    @{i1}: real {_short(real[i1:i2])} / sim {_short(ours[j1:j2])}")
    return lines[:limit] + ([f"    ... {len(lines) - limit} more"] if len(lines) > limit else [])


def compare(real_frames: list[dict], sim_frames: list[dict]) -> list[str]:
    real, ours = shape(real_frames), shape(sim_frames)
    diffs: list[str] = []
    # replies
    for conn in sorted(set(real.replies) | set(ours.replies)):
        r, o = real.replies.get(conn, []), ours.replies.get(conn, [])
        if len(r) != len(o):
            diffs.append(f"replies[{conn}]: {len(r)} real, {len(o)} sim")
        for (cmd, rs), (_, os_) in zip(r, o):
            if rs != os_:
                what = [f"{n} real {a!r} sim {b!r}" for n, a, b in
                        zip(("content-type", "first token", "leading newline", "trailing newline"), rs, os_) if a != b]
                if rs[4] != os_[4]:
                    what.append("header names " + _names_diff(list(rs[4]), list(os_[4])))
                diffs.append(f"reply to {cmd[:70]!r}: " + "; ".join(what))
    # per-channel event order and header names
    seen_names: set = set()
    real_orders = [[event_key(e) for e in evs] for evs in real.channels.values()]
    for role in sorted(set(real.channels) | set(ours.channels)):
        r, o = real.channels.get(role, []), ours.channels.get(role, [])
        rk, ok = [event_key(e) for e in r], [event_key(e) for e in o]
        # the real switch races (e.g. CALL_UPDATE vs CHANNEL_CALLSTATE): another leg's real order of the
        # same events is as good
        # and a state the state machine left before reporting it (e_timing: the second leg of a uuid_bridge
        # shows CHANNEL_STATE CS_CONSUME_MEDIA on 6 of 10 pairs) may be there or not, as on another real leg
        if rk != ok and not (ok in real_orders and _only_states(Counter(rk) - Counter(ok), Counter(ok) - Counter(rk))):
            diffs.append(f"channel {role}: event order differs ({len(rk)} real, {len(ok)} sim)")
            diffs += _seq_diff(rk, ok)
        # header names: as on this leg, or as on a leg that got the same events (the switch races there too)
        allowed: dict[str, set] = {}
        for evs in real.channels.values():
            if Counter(event_key(e) for e in evs) == Counter(rk):
                for e in evs:
                    allowed.setdefault(event_key(e), set()).add(tuple(header_names(e)))
        diffs += _header_diffs(r, o, rk, ok, seen_names, allowed)
    for conn in sorted(set(real.others) | set(ours.others)):
        r, o = real.others.get(conn, []), ours.others.get(conn, [])
        rk, ok = [event_key(e) for e in r], [event_key(e) for e in o]
        if rk != ok:
            diffs.append(f"events without channel [{conn}] differ")
            diffs += _seq_diff(rk, ok)
        diffs += _header_diffs(r, o, rk, ok, seen_names)
    for conn in sorted(set(real.frames) | set(ours.frames)):
        r, o = real.frames.get(conn, []), ours.frames.get(conn, [])
        if r != o:
            diffs.append(f"other frames [{conn}]: real {[x[:2] for x in r]} sim {[x[:2] for x in o]}"
                         if [x[:2] for x in r] != [x[:2] for x in o] else
                         f"other frames [{conn}]: header names real {r} sim {o}")
    # timing
    for key in sorted(set(real.timing) | set(ours.timing)):
        rv, ov = real.timing.get(key), ours.timing.get(key)
        rv = [v for v in rv or [] if v == v]
        if not ov:
            diffs.append(f"timing {key}: real {_ms(rv)}, never in sim")
            continue
        if not rv:
            diffs.append(f"timing {key}: never in real, sim {_ms(ov)}")
            continue
        lo, hi = timing_bounds(rv)
        bad = [v for v in ov if not lo <= v <= hi]
        if bad:
            diffs.append(f"timing {key}: real {_ms(rv)} (allowed {lo * 1000:.0f}..{hi * 1000:.0f} ms), "
                         f"sim {_ms(ov)}")
    return diffs


def _only_states(*differences: Counter) -> bool:
    return all(k.startswith("CHANNEL_STATE ") for d in differences for k in d)


def _ms(values: list[float]) -> str:
    vals = sorted(round(v * 1000) if v == v else -1 for v in values)
    if not vals:
        return "-"
    return f"{vals[0]}..{vals[-1]} ms (n={len(vals)})" if vals[0] != vals[-1] else f"{vals[0]} ms (n={len(vals)})"


def _header_diffs(r: list[dict], o: list[dict], rk: list[str], ok: list[str], seen: set,
                  allowed: dict[str, set] | None = None) -> list[str]:
    out = []
    for tag, i1, i2, j1, _ in difflib.SequenceMatcher(a=rk, b=ok, autojunk=False).get_opcodes():
        if tag != "equal":
            continue
        for a, b in zip(r[i1:i2], o[j1:j1 + (i2 - i1)]):
            na, nb = header_names(a), header_names(b)
            if na != nb and tuple(nb) not in (allowed or {}).get(event_key(a), ()):
                msg = f"headers of {event_key(a)}: {_names_diff(na, nb)}"
                if msg not in seen:
                    seen.add(msg)
                    out.append(msg)
    return out


def report(name: str, diffs: list[str]) -> str:
    return f"{name}: {len(diffs)} difference(s) from the real switch\n" + "\n".join(diffs)


if __name__ == "__main__":  # PYTHONPATH=. python tests/conformance.py [capture ...]: print the differences
    import sys

    for capture in sys.argv[1:] or script_names():
        steps, frames = load_capture(capture)
        print(report(capture, compare(frames, run_on_simulator(steps, prelude=PRELUDES.get(capture)))), flush=True)

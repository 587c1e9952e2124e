"""The captures of the real FreeSWITCH, as the conformance harness reads them (parsed once per session)."""
from __future__ import annotations

import functools
import json
import lzma
import os
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from urllib.parse import unquote

HERE = Path(__file__).resolve().parent
# ESL_CAPTURES_DIRS first (e.g. a newer capture set), then the vendored ones (the large ones xz-compressed).
CAPTURE_DIRS = [Path(p) for p in os.environ.get("ESL_CAPTURES_DIRS", "").split(os.pathsep) if p] + [
    HERE / "esl-captures"]

REPLY_TYPES = ("command/reply", "api/response")
EVENT_TYPES = ("text/event-plain", "text/event-json", "text/event-xml")
IGNORED_APPS = {("set", "open=true")}  # a helper step of the captured dialplan only
TIMER_EVENTS = {"HEARTBEAT", "RE_SCHEDULE"}  # periodic, not caused by the script
WINDOW_S = 1.5  # how long after a command its effects are looked for
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")


# --------------------------------------------------------------------------- captures
def capture_path(name: str, suffix: str) -> Path | None:
    for d in CAPTURE_DIRS:
        for p in (d / f"{name}{suffix}", d / f"{name}{suffix}.xz"):
            if p.exists():
                return p
    return None


def open_capture(path: Path):
    """A capture's lines, whether stored plain or xz-compressed."""
    return lzma.open(path, "rt", encoding="utf-8") if path.suffix == ".xz" else path.open(encoding="utf-8")


def script_names() -> list[str]:
    names = set()
    for d in CAPTURE_DIRS:
        if d.is_dir():
            names.update(p.name[: -len(".script.json")] for p in d.glob("*.script.json"))
    return sorted(n for n in names if capture_path(n, ".jsonl"))


@functools.lru_cache(maxsize=None)
def load_capture(name: str) -> tuple[list[dict], list[dict]]:
    """(script, frames) of a capture; parsed once per test session (e_timing is 11 MB)."""
    script = json.loads(capture_path(name, ".script.json").read_text())
    frames = []
    with open_capture(capture_path(name, ".jsonl")) as fh:
        for line in fh:
            d = json.loads(line)
            if "headers" in d and d["headers"].get("Content-Type") == "text/event-xml":
                d["event"] = parse_event_xml(d["body"])
            frames.append(d)
    return script, frames


def parse_event_xml(body: str) -> dict:
    root = ET.fromstring(body)
    heads = root.find("headers")
    out = {el.tag: unquote(el.text or "") for el in (heads if heads is not None else [])}
    b = root.find("body")
    if b is not None:
        out["_body"] = b.text or ""
    return out


def norm_command(sent: str) -> str:
    if sent.startswith("sendmsg"):
        fields = dict(line.split(": ", 1) for line in sent.split("\n")[1:] if ": " in line)
        lock = " (event-lock)" if fields.get("event-lock") == "true" else ""
        return f"sendmsg {fields.get('call-command', '')} {fields.get('execute-app-name', '')}{lock}".strip()
    return UUID_RE.sub("<uuid>", sent)

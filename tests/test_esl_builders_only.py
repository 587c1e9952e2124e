"""Issue 15 point 7: ESL commands, sendmsg frames and dial strings are built in one place.

Every string literal (and f-string) of the product code outside the builders
(``esl_dialer/esl/commands.py``) and the adapter that frames them
(``esl_dialer/switch.py``) is scanned for the shape of an ESL command, a
sendmsg header, an originate variable block or an application token.  A hit
means a command is being put together by hand: use (or add) a builder.
"""
from __future__ import annotations

import ast
import re
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]
SCANNED = [ROOT / "esl_dialer", ROOT / "controller"]
BUILDERS = {
    "esl_dialer/esl/commands.py",  # the builders
    "esl_dialer/switch.py",  # the adapter: sends what the builders made
}
# Not product command building: the simulated switch (it *parses* commands and
# replies in FreeSWITCH's words) and the sans-IO frame codec (generic framing
# of whatever command it is given, used by the conformance tools).
EXCLUDED_DIRS = ("esl_dialer/sim/",)
ALLOWED = {
    ("esl_dialer/esl/codec.py", "sendmsg X"),  # encode_sendmsg: the frame encoder itself
    ("esl_dialer/esl/codec.py", "sendmsg"),
}

# A literal that starts like an ESL command line with an argument ...
COMMAND_START = re.compile(
    r"^(api|bgapi|sendmsg|originate|uuid_[a-z_]+|hupall|filter|linger|nixevent|sched_api|"
    r"event (plain|json|xml)|show channels)( |\n)")
# ... or holds a piece of a frame, an originate variable block or an application token anywhere.
FRAGMENTS = re.compile(
    r"call-command|execute-app-(name|arg)|Job-UUID:|Event-UUID:|&[a-z_]+\(|[{\[,][A-Za-z_][\w-]*=X|"
    r"\{[A-Za-z_][\w-]*=|file_string://|^(myevents|sendmsg)$")


def _docstrings(tree: ast.AST) -> set[int]:
    ids = set()
    for node in ast.walk(tree):
        if isinstance(node, (ast.Module, ast.ClassDef, ast.FunctionDef, ast.AsyncFunctionDef)):
            body = getattr(node, "body", [])
            if body and isinstance(body[0], ast.Expr) and isinstance(body[0].value, ast.Constant):
                ids.add(id(body[0].value))
    return ids


def literals(source: str) -> list[tuple[int, str]]:
    """(line, text) of every string literal; an f-string's fields read as ``X``."""
    tree = ast.parse(source)
    skip = _docstrings(tree)
    inside_fstring = set()
    out = []
    for node in ast.walk(tree):
        if isinstance(node, ast.JoinedStr):
            text = ""
            for part in node.values:
                inside_fstring.add(id(part))
                if isinstance(part, ast.Constant) and isinstance(part.value, str):
                    text += part.value
                else:
                    text += "X"
            out.append((node.lineno, text))
    for node in ast.walk(tree):
        if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in skip \
                and id(node) not in inside_fstring:
            out.append((node.lineno, node.value))
    return out


def suspicious(source: str) -> list[tuple[int, str]]:
    return [(line, text) for line, text in literals(source)
            if COMMAND_START.search(text) or FRAGMENTS.search(text)]


def product_files():
    for base in SCANNED:
        for path in sorted(base.rglob("*.py")):
            rel = path.relative_to(ROOT).as_posix()
            if rel in BUILDERS or rel.startswith(EXCLUDED_DIRS):
                continue
            yield rel, path


def test_no_esl_command_is_built_outside_the_builders():
    hits = []
    for rel, path in product_files():
        for line, text in suspicious(path.read_text(encoding="utf-8")):
            if (rel, text) not in ALLOWED:
                hits.append(f"{rel}:{line}: {text!r}")
    assert not hits, "ESL strings built by hand (use esl_dialer.esl.commands):\n" + "\n".join(hits)


@pytest.mark.parametrize("snippet", [
    'cmd = f"uuid_kill {uuid}"',
    'send("sendmsg\\ncall-command: execute\\nexecute-app-name: playback")',
    'dial = f"{{dialer_token={token}}}sofia/gateway/x/{n}"',
    'line = "originate " + url',
    'args = f"&bridge({target})"',
    'x = "api status"',
    'play = "file_string://" + "!".join(files)',
    'f"{{sip_h_X-Token={t},dialer_proxy={p}}}{ep}"',
])
def test_the_scan_catches_hand_built_commands(snippet):
    assert suspicious(snippet), snippet


@pytest.mark.parametrize("snippet", [
    '"""Docstring: we send uuid_kill <uuid> here."""',
    'logger.warning("call %s: music did not stop after uuid_break", u)',
    'name = "originate_failed"',
    'kind = "originate"',
    'blueprint = "api"',
    'x = {"uuid": u}',
])
def test_the_scan_leaves_prose_and_names_alone(snippet):
    assert not suspicious(snippet), snippet

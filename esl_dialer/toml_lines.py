"""Where each key of a TOML document is: ``key_lines(text)`` -> {path: line}.

``tomllib`` returns plain dicts without positions, so configuration errors
could not name a line.  This scanner walks the (already valid) TOML text and
records the line of every key: table headers ``[a.b]``, arrays of tables
``[[numbers]]`` (the path gets the element index: ``("numbers", 1, "talk")``),
dotted and quoted keys, inline tables (``talk = {dist = "normal", mean = 9}``
gives ``("talk", "mean")``) and arrays (indices).  A path that is not found
falls back to its nearest recorded parent (:func:`line_of`).
"""
from __future__ import annotations

from typing import Iterable

Path = tuple  # of str keys and int array indices

_BARE = set("ABCDEFGHIJKLMNOPQRSTUVWXYZabcdefghijklmnopqrstuvwxyz0123456789_-")


class _Scanner:
    def __init__(self, text: str) -> None:
        self.text = text
        self.pos = 0
        self.lines: dict[Path, int] = {}
        self.arrays: dict[Path, int] = {}  # array-of-tables path -> elements seen so far

    # -- low level
    def line(self) -> int:
        return self.text.count("\n", 0, self.pos) + 1

    def peek(self, n: int = 1) -> str:
        return self.text[self.pos:self.pos + n]

    def skip_ws(self, newlines: bool = False) -> None:
        while self.pos < len(self.text):
            c = self.text[self.pos]
            if c in " \t\r" or (newlines and c == "\n"):
                self.pos += 1
            elif c == "#":
                end = self.text.find("\n", self.pos)
                self.pos = len(self.text) if end < 0 else end
            else:
                return

    def string(self) -> str:
        text = self.text
        for quote in ('"""', "'''"):
            if text.startswith(quote, self.pos):
                end = text.find(quote, self.pos + 3)
                while end >= 0 and text.startswith(quote[0], end + 3):  # up to two quotes may close it
                    end += 1
                value = text[self.pos + 3:end]
                self.pos = len(text) if end < 0 else end + 3
                return value
        quote = text[self.pos]
        self.pos += 1
        out = []
        while self.pos < len(text) and text[self.pos] != quote:
            if quote == '"' and text[self.pos] == "\\":
                out.append(text[self.pos:self.pos + 2])
                self.pos += 2
                continue
            out.append(text[self.pos])
            self.pos += 1
        self.pos += 1
        raw = "".join(out)
        if quote == '"' and "\\" in raw:
            try:
                raw = raw.encode("latin-1", "backslashreplace").decode("unicode_escape")
            except UnicodeDecodeError:
                pass
        return raw

    def key(self) -> Path:
        parts = []
        while True:
            self.skip_ws()
            if self.peek() in ('"', "'"):
                parts.append(self.string())
            else:
                start = self.pos
                while self.pos < len(self.text) and self.text[self.pos] in _BARE:
                    self.pos += 1
                parts.append(self.text[start:self.pos])
            self.skip_ws()
            if self.peek() != ".":
                return tuple(parts)
            self.pos += 1

    def record(self, path: Path, line: int) -> None:
        self.lines.setdefault(path, line)

    def resolve(self, key: Path) -> Path:
        """Insert the current element index after every array-of-tables prefix."""
        out: list = []
        for part in key:
            out.append(part)
            if tuple(out) in self.arrays:
                out.append(self.arrays[tuple(out)] - 1)
        return tuple(out)

    # -- values
    def value(self, path: Path) -> None:
        self.skip_ws()
        c = self.peek()
        if c == "{":
            self.pos += 1
            while True:
                self.skip_ws()
                if self.peek() in ("}", ""):
                    self.pos += 1
                    return
                line = self.line()
                sub = path + self.key()
                self.record(sub, line)
                self.skip_ws()
                self.pos += 1  # '='
                self.value(sub)
                self.skip_ws()
                if self.peek() == ",":
                    self.pos += 1
        elif c == "[":
            self.pos += 1
            index = 0
            while True:
                self.skip_ws(newlines=True)
                if self.peek() in ("]", ""):
                    self.pos += 1
                    return
                self.record(path + (index,), self.line())
                self.value(path + (index,))
                index += 1
                self.skip_ws(newlines=True)
                if self.peek() == ",":
                    self.pos += 1
        elif c in ('"', "'"):
            self.string()
        else:
            while self.pos < len(self.text) and self.text[self.pos] not in ",]}\n#":
                self.pos += 1

    # -- document
    def run(self) -> dict[Path, int]:
        table: Path = ()
        while True:
            self.skip_ws(newlines=True)
            if self.pos >= len(self.text):
                return self.lines
            line = self.line()
            if self.peek(2) == "[[":
                self.pos += 2
                key = self.key()
                name = self.resolve(key[:-1]) + key[-1:]
                count = self.arrays.get(name, 0)
                self.arrays[name] = count + 1
                table = name + (count,)
                self.record(name, line)
                self.record(table, line)
                self.pos += 2
            elif self.peek() == "[":
                self.pos += 1
                table = self.resolve(self.key())
                self.record(table, line)
                self.pos += 1
            else:
                path = table + self.key()
                self.record(path, line)
                self.skip_ws()
                self.pos += 1  # '='
                self.value(path)
            self.skip_ws()
            end = self.text.find("\n", self.pos)
            self.pos = len(self.text) if end < 0 else end + 1


def key_lines(text: str) -> dict[Path, int]:
    """{path: line} for every key, table and array element of a valid TOML text (best effort)."""
    scanner = _Scanner(text)
    try:
        return scanner.run()
    except (IndexError, ValueError):  # never let locating a line hide the real error
        return scanner.lines


def line_of(lines: dict[Path, int], path: Iterable) -> int | None:
    """The line of ``path``, else of its nearest recorded parent; None when nothing matches."""
    path = tuple(path)
    while path:
        if path in lines:
            return lines[path]
        path = path[:-1]
    return None

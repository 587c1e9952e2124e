"""Streaming, defensive CSV reading for the lead and DNC loaders.

* Streaming: the file is read line by line (``readline`` with a size cap), so
  memory is bounded by one line, never the file.
* Bounded lines: a line longer than :data:`MAX_LINE_CHARS` (a 10 MB single
  line, a binary file) becomes one bad row; the rest of the file still loads.
  ``csv.field_size_limit`` is raised to the same cap so an unterminated quote
  cannot swallow the rest of the file either.
* Encoding: UTF-8 (a BOM is skipped).  Bytes that are not UTF-8 are kept with
  ``surrogateescape`` and the row is reported as bad, naming the byte.
* Delimiter: sniffed from the first 32 KiB among ``, ; TAB |`` (or given).
* Line numbers are physical line numbers (a quoted field spanning lines counts
  all its lines), the number a person sees in an editor.
"""
from __future__ import annotations

import csv
import dataclasses
import io
import logging
import re
from pathlib import Path
from typing import Iterator, Optional, Sequence

from ..errors import InvalidInput, NotFound

logger = logging.getLogger(__name__)

MAX_LINE_CHARS = 1024 * 1024
SNIFF_CHARS = 32 * 1024  # csv.Sniffer is slow on big samples
DELIMITERS = ",;\t|"
#: how much of an overlong line is kept for the rejects file
REJECT_EXCERPT = 200


class LineTooLong(Exception):
    def __init__(self, line_no: int, length: int) -> None:
        super().__init__(f"line {line_no} is longer than {MAX_LINE_CHARS} characters")
        self.line_no = line_no
        self.length = length


class _BoundedLines:
    """Iterator of text lines for ``csv.reader``; raises LineTooLong once per overlong line.

    A class (not a generator) so iteration can continue after the exception.
    """

    def __init__(self, stream: io.TextIOBase, limit: int) -> None:
        self.stream = stream
        self.limit = limit
        self.line_no = 0
        self.chars = 0
        self.excerpt = ""

    def __iter__(self) -> "_BoundedLines":
        return self

    def __next__(self) -> str:
        line = self.stream.readline(self.limit)
        if not line:
            raise StopIteration
        self.line_no += 1
        self.chars += len(line)
        if len(line) >= self.limit and not line.endswith(("\n", "\r")):
            self.excerpt = line[:REJECT_EXCERPT]
            length = len(line)
            while True:  # skip the rest of this physical line, a chunk at a time
                more = self.stream.readline(self.limit)
                self.chars += len(more)
                length += len(more)
                if not more or more.endswith(("\n", "\r")):
                    break
            raise LineTooLong(self.line_no, length)
        return line


@dataclasses.dataclass(frozen=True, slots=True)
class Row:
    line: int
    fields: list[str]


@dataclasses.dataclass(frozen=True, slots=True)
class BadRow:
    line: int
    reason: str
    fields: list[str]


def _non_utf8(fields: Sequence[str]) -> Optional[str]:
    """A description of the first undecodable byte, or None if the row is clean text."""
    if "".join(fields).isascii():
        return None
    for index, field in enumerate(fields):
        if field.isascii():
            continue
        try:
            field.encode("utf-8")
        except UnicodeEncodeError as err:
            byte = ord(field[err.start]) - 0xDC00
            return f"not UTF-8 text (byte 0x{byte:02x} in column {index + 1})"
    return None


def printable(fields: Sequence[str]) -> list[str]:
    """Fields safe to write back out as UTF-8 (undecodable bytes become U+FFFD)."""
    return [f.encode("utf-8", "surrogateescape").decode("utf-8", "replace") for f in fields]


class CsvSource:
    """Header plus an iterator of :class:`Row` / :class:`BadRow`.

    Use as a context manager.  ``header`` raises InvalidInput for an empty file
    or one whose first line is not a plausible header.
    """

    def __init__(self, path: str | Path, delimiter: Optional[str] = None, *, has_header: bool = True) -> None:
        self.path = Path(path)
        if not self.path.exists():
            raise NotFound(f"file {self.path} does not exist", field="file")
        if not self.path.is_file():
            raise InvalidInput(f"{self.path} is not a file", field="file")
        self.size = self.path.stat().st_size
        if delimiter is not None and (len(delimiter) != 1 or delimiter in '"\r\n'):
            raise InvalidInput(f"delimiter must be one character, got {delimiter!r}", field="delimiter")
        self._stream = open(self.path, encoding="utf-8-sig", errors="surrogateescape", newline="")
        try:
            self.delimiter = delimiter or self._sniff()
            self._lines = _BoundedLines(self._stream, MAX_LINE_CHARS)
            if csv.field_size_limit() < MAX_LINE_CHARS:
                csv.field_size_limit(MAX_LINE_CHARS)
            self._reader = csv.reader(self._lines, delimiter=self.delimiter, quotechar='"', doublequote=True)
            self.header: Optional[list[str]] = self._read_header() if has_header else None
        except BaseException:
            self._stream.close()
            raise

    # -- set-up

    def _sniff(self) -> str:
        sample = self._stream.read(SNIFF_CHARS)
        self._stream.seek(0)
        if not sample.strip():
            raise InvalidInput(f"{self.path} is empty", field="file")
        if len(sample) >= SNIFF_CHARS and "\n" in sample:
            sample = sample[: sample.rfind("\n") + 1]  # whole lines only
        try:
            return csv.Sniffer().sniff(sample, delimiters=DELIMITERS).delimiter
        except csv.Error:
            # One column, or too irregular to tell: count candidates on line 1.
            first = sample.splitlines()[0] if sample.splitlines() else ""
            counts = {d: first.count(d) for d in DELIMITERS}
            best = max(counts, key=counts.get)
            return best if counts[best] else ","

    def _read_header(self) -> list[str]:
        while True:
            try:
                row = next(self._reader)
            except StopIteration:
                raise InvalidInput(f"{self.path} is empty", field="file") from None
            except LineTooLong as err:
                raise InvalidInput(
                    f"{self.path}: line {err.line_no} is longer than {MAX_LINE_CHARS} characters "
                    "(is this a CSV file?)", field="file") from None
            except csv.Error as err:
                raise InvalidInput(f"{self.path}: cannot read the header line: {err}", field="file") from None
            if row and any(f.strip() for f in row):
                bad = _non_utf8(row)
                if bad:
                    raise InvalidInput(f"{self.path}: header line is {bad}; save the file as UTF-8",
                                       field="file")
                return [f.strip() for f in row]

    # -- iteration

    @property
    def lines_read(self) -> int:
        """Physical lines consumed so far (after the header: the header's lines)."""
        return self._lines.line_no

    @property
    def chars_read(self) -> int:
        return self._lines.chars

    def __iter__(self) -> Iterator[Row | BadRow]:
        reader = self._reader
        lines = self._lines
        while True:
            start = lines.line_no + 1
            try:
                fields = next(reader)
            except StopIteration:
                return
            except LineTooLong as err:
                yield BadRow(err.line_no, f"line longer than {MAX_LINE_CHARS} characters ({err.length})",
                             [lines.excerpt + "..."])
                continue
            except csv.Error as err:
                yield BadRow(start, f"CSV error: {err}", [])
                continue
            if not fields or (len(fields) == 1 and not fields[0].strip()):
                continue  # blank line
            bad = _non_utf8(fields)
            if bad:
                yield BadRow(start, bad, printable(fields))
                continue
            yield Row(start, fields)

    def close(self) -> None:
        self._stream.close()

    def __enter__(self) -> "CsvSource":
        return self

    def __exit__(self, *exc) -> None:
        self.close()


_NORMALISE_RE = re.compile(r"[\s\-\.]+")


def normalise_header(name: str) -> str:
    """``"Phone Number"`` / ``"phone-number"`` -> ``"phone_number"``."""
    return _NORMALISE_RE.sub("_", name.strip().lower()).strip("_")

"""The worker's contingency file (SPEC P10): a local SQLite file per worker.

It holds every record the worker leased and every attempt result the
controller has not acknowledged yet.  The worker dials *only* from this file
and writes every result *into* it first; a separate flusher uploads pending
results and marks them acknowledged.  So:

- the controller being down never stops dialing (records are held locally for
  their lease) and never loses a result (it waits in the file);
- a replay after a lost reply is harmless: each result carries a ``client_id``
  (uuid4 made here) and the controller stores each client_id once;
- a worker restart reopens the file: held records are dialed, pending results
  are flushed, and a call that was in progress when the worker died is
  recorded once as ``failed`` / ``WORKER_RESTART`` (its real outcome is lost
  with the process, but the attempt still counts exactly once);
- a record is never dialed after its lease ran out locally (lease seconds are
  counted from when *this* worker received the lease, minus a safety margin of
  30 s or a fifth of the lease, so clock skew with the controller cannot make
  two workers dial one record).

No gevent, no sockets: plain ``sqlite3`` on a local file.  Calls are short and
do not yield, so greenlets of one worker never interleave inside a transaction.
"""
from __future__ import annotations

import json
import logging
import sqlite3
import time
import uuid
from contextlib import contextmanager
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Iterator

logger = logging.getLogger(__name__)

LEASE_SAFETY_S = 30.0  # stop dialing a record this long before its lease ends
DEFAULT_LEASE_S = 900.0
SCHEMA_VERSION = "1"

_SCHEMA = """
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS record (
    id INTEGER PRIMARY KEY,            -- controller's CallRecord.id
    seq INTEGER NOT NULL,              -- arrival order (lease order = controller priority)
    priority INTEGER NOT NULL DEFAULT 0,
    body TEXT NOT NULL,                -- the lease payload, JSON
    state TEXT NOT NULL,               -- held | dialing | done | released | expired | dropped
    lease_until REAL NOT NULL,         -- local epoch seconds, safety margin already taken off
    call_uuid TEXT,
    client_id TEXT,
    started_at TEXT,
    updated_at REAL NOT NULL
);
CREATE INDEX IF NOT EXISTS record_state ON record (state, priority, seq);
CREATE TABLE IF NOT EXISTS result (
    client_id TEXT PRIMARY KEY,
    record_id INTEGER NOT NULL,
    body TEXT NOT NULL,
    created_at REAL NOT NULL,
    acked_at REAL,
    outcome TEXT                       -- accepted | duplicate, once acked
);
CREATE INDEX IF NOT EXISTS result_pending ON result (acked_at, created_at);
"""


class ContingencyError(Exception):
    """Misuse of the contingency file (wrong worker, unknown record, bad state)."""


@dataclass(frozen=True)
class Stats:
    held: int
    dialing: int
    done: int
    pending_results: int
    acked_results: int


def new_client_id() -> str:
    return str(uuid.uuid4())


def _iso_now() -> str:
    import datetime as dt

    return dt.datetime.now(dt.timezone.utc).isoformat()


class Contingency:
    """One worker's contingency file.  ``clock`` is injectable for tests."""

    def __init__(self, path: str | Path, worker: str, *, clock=time.time, lease_safety_s: float = LEASE_SAFETY_S) -> None:
        self.path = Path(path)
        self.worker = worker
        self.clock = clock
        self.lease_safety_s = lease_safety_s
        self.path.parent.mkdir(parents=True, exist_ok=True)
        self._db = sqlite3.connect(str(self.path), isolation_level=None, check_same_thread=False, timeout=5.0)
        self._db.execute("PRAGMA journal_mode=WAL")
        self._db.execute("PRAGMA synchronous=FULL")  # a result written is a result kept
        self._db.executescript(_SCHEMA)
        self._check_meta()
        self.recovered = self._recover()

    # -- plumbing ---------------------------------------------------------------------

    @contextmanager
    def _tx(self) -> Iterator[sqlite3.Connection]:
        self._db.execute("BEGIN IMMEDIATE")
        try:
            yield self._db
        except BaseException:
            self._db.execute("ROLLBACK")
            raise
        self._db.execute("COMMIT")

    def _check_meta(self) -> None:
        with self._tx() as db:
            rows = dict(db.execute("SELECT key, value FROM meta").fetchall())
            if not rows:
                db.executemany(
                    "INSERT INTO meta (key, value) VALUES (?, ?)",
                    [("worker", self.worker), ("schema", SCHEMA_VERSION)],
                )
                return
        if rows.get("worker") != self.worker:
            raise ContingencyError(
                f"{self.path} belongs to worker {rows.get('worker')!r}, not {self.worker!r}; "
                "give each worker its own contingency file"
            )

    def _recover(self) -> int:
        """Calls in progress when the process died: record each once as failed."""
        rows = self._db.execute("SELECT id, body, call_uuid, client_id, started_at FROM record WHERE state = 'dialing'").fetchall()
        for rid, body, call_uuid, client_id, started_at in rows:
            rec = json.loads(body)
            self.record_result(
                {
                    "client_id": client_id or new_client_id(),
                    "record_id": rid,
                    "result": "failed",
                    "call_uuid": call_uuid,
                    "agent": rec.get("_agent"),
                    "started_at": started_at,
                    "ended_at": _iso_now(),
                    "hangup_cause": "WORKER_RESTART",
                    "abandoned": False,
                }
            )
        if rows:
            logger.warning("worker %s: %d call(s) in progress at restart recorded as failed", self.worker, len(rows))
        return len(rows)

    def close(self) -> None:
        self._db.close()

    # -- records ------------------------------------------------------------------------

    def add_leased(self, records: list[dict], lease_seconds: float | None = None) -> int:
        """Store freshly leased records; returns how many became dialable.

        A record that still has an unacknowledged result here is not taken
        again (the controller has not seen its last attempt yet); a record in
        a call stays in its call.
        """
        now = self.clock()
        secs = float(lease_seconds or DEFAULT_LEASE_S)
        # stored already minus the safety margin (at most a fifth of a short lease)
        until = now + secs - min(self.lease_safety_s, 0.2 * secs)
        added = 0
        with self._tx() as db:
            seq = db.execute("SELECT COALESCE(MAX(seq), 0) FROM record").fetchone()[0]
            for rec in records:
                rid = int(rec["id"])
                row = db.execute("SELECT state FROM record WHERE id = ?", (rid,)).fetchone()
                if row and row[0] == "dialing":
                    continue
                pending = db.execute(
                    "SELECT 1 FROM result WHERE record_id = ? AND acked_at IS NULL", (rid,)
                ).fetchone()
                if pending:
                    continue
                seq += 1
                prio = int(rec.get("priority") or 0)
                db.execute(
                    "INSERT INTO record (id, seq, priority, body, state, lease_until, updated_at) "
                    "VALUES (?, ?, ?, ?, 'held', ?, ?) "
                    "ON CONFLICT (id) DO UPDATE SET seq = excluded.seq, priority = excluded.priority, "
                    "body = excluded.body, state = 'held', lease_until = excluded.lease_until, "
                    "call_uuid = NULL, client_id = NULL, started_at = NULL, updated_at = excluded.updated_at",
                    (rid, seq, prio, json.dumps(rec), until, now),
                )
                added += 1
        return added

    def dialable(self, limit: int, *, exclude: set[int] | frozenset[int] = frozenset()) -> list[dict]:
        """Held records whose local lease is still good, best first (priority, then lease order)."""
        horizon = self.clock()
        rows = self._db.execute(
            "SELECT id, body FROM record WHERE state = 'held' AND lease_until > ? ORDER BY priority, seq LIMIT ?",
            (horizon, int(limit) + len(exclude)),
        ).fetchall()
        out = [json.loads(body) for rid, body in rows if rid not in exclude]
        return out[: int(limit)]

    def renew_held(self, sent_at: float, lease_seconds: float) -> int:
        """A heartbeat sent at ``sent_at`` (this clock) was answered: the
        controller has renewed every lease this worker holds to at least half
        a lease from then (D1), so the local leases of held records move up
        to that, minus the safety margin.  Dial-check still confirms each
        record right before its call.  Returns the rows moved."""
        secs = float(lease_seconds)
        if secs <= 0:
            return 0
        until = sent_at + secs / 2 - min(self.lease_safety_s, 0.2 * secs)
        with self._tx() as db:
            cur = db.execute(
                "UPDATE record SET lease_until = ?, updated_at = ? WHERE state = 'held' AND lease_until < ?",
                (until, self.clock(), until),
            )
            return cur.rowcount

    def held_count(self) -> int:
        horizon = self.clock()
        return self._db.execute(
            "SELECT COUNT(*) FROM record WHERE state = 'held' AND lease_until > ?", (horizon,)
        ).fetchone()[0]

    def mark_dialing(self, record_id: int, call_uuid: str, *, agent: str | None = None) -> str:
        """held -> dialing, right before the originate; returns the attempt's client_id."""
        client_id = new_client_id()
        with self._tx() as db:
            row = db.execute("SELECT state, lease_until, body FROM record WHERE id = ?", (record_id,)).fetchone()
            if row is None:
                raise ContingencyError(f"record {record_id} is not held by worker {self.worker}")
            if row[0] != "held":
                raise ContingencyError(f"record {record_id} is {row[0]}, not held")
            if row[1] <= self.clock():
                raise ContingencyError(f"record {record_id}: lease ran out")
            body = json.loads(row[2])
            body["_agent"] = agent
            db.execute(
                "UPDATE record SET state = 'dialing', call_uuid = ?, client_id = ?, started_at = ?, body = ?, updated_at = ? WHERE id = ?",
                (call_uuid, client_id, _iso_now(), json.dumps(body), self.clock(), record_id),
            )
        return client_id

    def attempt_of(self, record_id: int) -> tuple[str | None, str | None]:
        """(client_id, started_at) of the record's current attempt."""
        row = self._db.execute("SELECT client_id, started_at FROM record WHERE id = ?", (record_id,)).fetchone()
        return (row[0], row[1]) if row else (None, None)

    def drop(self, record_id: int, state: str = "dropped") -> None:
        """Forget a held record without an attempt (not ours any more, or released)."""
        if state not in ("dropped", "released", "expired"):
            raise ContingencyError(f"bad drop state {state!r}")
        with self._tx() as db:
            db.execute(
                "UPDATE record SET state = ?, updated_at = ? WHERE id = ? AND state = 'held'",
                (state, self.clock(), record_id),
            )

    def expire(self) -> int:
        """Held records past their local lease will not be dialed: mark them expired."""
        horizon = self.clock()
        with self._tx() as db:
            cur = db.execute(
                "UPDATE record SET state = 'expired', updated_at = ? WHERE state = 'held' AND lease_until <= ?",
                (self.clock(), horizon),
            )
            return cur.rowcount

    def held_ids(self) -> list[int]:
        return [r[0] for r in self._db.execute("SELECT id FROM record WHERE state = 'held' ORDER BY seq")]

    # -- results ------------------------------------------------------------------------

    def record_result(self, result: dict[str, Any]) -> str:
        """Write one attempt result (and close its record) in one transaction.

        ``client_id`` defaults to the one made by :meth:`mark_dialing`; writing
        the same client_id twice is a no-op, so a retried write is harmless.
        """
        rid = int(result["record_id"])
        body = dict(result)
        with self._tx() as db:
            if not body.get("client_id"):
                row = db.execute("SELECT client_id FROM record WHERE id = ?", (rid,)).fetchone()
                body["client_id"] = (row[0] if row and row[0] else None) or new_client_id()
            db.execute(
                "INSERT OR IGNORE INTO result (client_id, record_id, body, created_at) VALUES (?, ?, ?, ?)",
                (body["client_id"], rid, json.dumps(body), self.clock()),
            )
            db.execute("UPDATE record SET state = 'done', updated_at = ? WHERE id = ?", (self.clock(), rid))
        return body["client_id"]

    def pending_results(self, limit: int = 200) -> list[dict]:
        rows = self._db.execute(
            "SELECT body FROM result WHERE acked_at IS NULL ORDER BY created_at LIMIT ?", (int(limit),)
        ).fetchall()
        return [json.loads(r[0]) for r in rows]

    def ack(self, accepted: list[str], duplicates: list[str] = ()) -> int:
        """The controller stored (or had already stored) these results."""
        now = self.clock()
        n = 0
        with self._tx() as db:
            for outcome, ids in (("accepted", accepted), ("duplicate", duplicates)):
                for cid in ids:
                    n += db.execute(
                        "UPDATE result SET acked_at = ?, outcome = ? WHERE client_id = ? AND acked_at IS NULL",
                        (now, outcome, cid),
                    ).rowcount
        return n

    def reject(self, client_id: str, reason: str) -> None:
        """The controller refused this result as invalid: keep it in the file, stop sending it."""
        logger.error("worker %s: result %s rejected by the controller: %s", self.worker, client_id, reason)
        with self._tx() as db:
            db.execute(
                "UPDATE result SET acked_at = ?, outcome = ? WHERE client_id = ? AND acked_at IS NULL",
                (self.clock(), ("rejected: " + reason)[:200], client_id),
            )

    def rejected(self) -> list[tuple[str, str]]:
        return self._db.execute("SELECT client_id, outcome FROM result WHERE outcome LIKE 'rejected%'").fetchall()

    def prune(self, older_than_s: float = 86400.0) -> int:
        """Drop acknowledged results and closed records older than this."""
        cut = self.clock() - older_than_s
        with self._tx() as db:
            n = db.execute(
            "DELETE FROM result WHERE acked_at IS NOT NULL AND acked_at < ? AND outcome NOT LIKE 'rejected%'", (cut,)
        ).rowcount
            n += db.execute(
                "DELETE FROM record WHERE state IN ('done', 'released', 'expired', 'dropped') AND updated_at < ? "
                "AND id NOT IN (SELECT record_id FROM result WHERE acked_at IS NULL)",
                (cut,),
            ).rowcount
        return n

    def stats(self) -> Stats:
        counts = dict(self._db.execute("SELECT state, COUNT(*) FROM record GROUP BY state").fetchall())
        pending = self._db.execute("SELECT COUNT(*) FROM result WHERE acked_at IS NULL").fetchone()[0]
        acked = self._db.execute("SELECT COUNT(*) FROM result WHERE acked_at IS NOT NULL").fetchone()[0]
        return Stats(counts.get("held", 0), counts.get("dialing", 0), counts.get("done", 0), pending, acked)


def flush(store: Contingency, client, batch: int = 200) -> int:
    """Upload pending results until none is left; returns how many were acknowledged.

    Raises the client's ControllerUnavailable when the controller is down:
    nothing is lost, the results stay pending for the next flush.
    """
    total = 0
    while True:
        pending = store.pending_results(batch)
        if not pending:
            return total
        n = _upload(store, client, pending)
        total += n
        if n == 0:
            # The controller answered but acknowledged none of them: do not spin.
            logger.warning("worker %s: controller acknowledged none of %d results", store.worker, len(pending))
            return total


def _upload(store: Contingency, client, results: list[dict]) -> int:
    """One batch; a batch the controller refuses (4xx) is split until the bad result is
    found, and that one alone is set aside as rejected, so it cannot block the rest forever."""
    from .client import ApiError  # local: keep this module free of gevent at import

    try:
        accepted, duplicates = client.results(results)
    except ApiError as exc:
        if exc.status not in (400, 413, 422):
            raise
        if len(results) == 1:
            store.reject(results[0]["client_id"], f"{exc.code}: {exc.message}")
            return 1
        half = len(results) // 2
        return _upload(store, client, results[:half]) + _upload(store, client, results[half:])
    return store.ack(accepted, duplicates)

"""The do-not-call list (SPEC D9, X1): add, load, look up, scrub after the list changes."""
from __future__ import annotations

from pathlib import Path

import pytest
import sqlalchemy as sa

from controller import record_status
from controller.errors import InvalidInput, NotFound
from controller.models import CallRecord, DncEntry
from controller.services import campaigns, dnc, leads
from esl_dialer.messages import RecordStatus


def write(path: Path, text: str | bytes) -> Path:
    path.write_bytes(text if isinstance(text, bytes) else text.encode())
    return path


def test_d9_add_normalises_and_is_idempotent(db):
    assert dnc.add_number(db, "(415) 555-2671", source="call") == ("+14155552671", True)
    assert dnc.add_number(db, "+1 415 555 2671") == ("+14155552671", False)
    assert dnc.is_dnc(db, "415.555.2671")
    assert not dnc.is_dnc(db, "(212) 555-0199")
    with db.session() as s:
        entry = s.scalar(sa.select(DncEntry))
    assert (entry.number, entry.source) == ("+14155552671", "call")


def test_d9_add_rejects_garbage(db):
    for bad in ("12", "abc", "", "+999123456789"):
        with pytest.raises(InvalidInput, match="not a valid phone number"):
            dnc.add_number(db, bad)


def test_d9_load_one_number_per_line(db, tmp_path):
    path = write(tmp_path / "dnc.txt", "(415) 555-2671\n+12125550199\n\n415-555-2671\nnot a number\n+44 20 7946 0000\n")
    summary = dnc.load_file(db, path)
    assert (summary.added, summary.already, summary.invalid, summary.total) == (3, 1, 1, 5)
    again = dnc.load_file(db, path)
    assert (again.added, again.already) == (0, 4)
    with db.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(DncEntry)) == 3
        assert s.scalar(sa.select(DncEntry.source).limit(1)) == "dnc.txt"


def test_d9_load_csv_with_number_column(db, tmp_path):
    path = write(tmp_path / "dnc.csv", "name,Phone Number,added\nAnn,(415) 555-2671,2024\nBob,,2024\n")
    summary = dnc.load_file(db, path, source="state list")
    assert (summary.added, summary.invalid) == (1, 1)
    assert dnc.is_dnc(db, "+14155552671")


def test_d9_load_bad_files(db, tmp_path):
    with pytest.raises(InvalidInput, match="empty"):
        dnc.load_file(db, write(tmp_path / "e.txt", ""))
    with pytest.raises(InvalidInput, match="no number column"):
        dnc.load_file(db, write(tmp_path / "h.csv", "name,email\nAnn,a@x\n"))
    with pytest.raises(NotFound):
        dnc.load_file(db, tmp_path / "missing.txt")
    latin = write(tmp_path / "l.txt", b"(415) 555-2671\n(212) 555-01\xe99\n(303) 555-0100\n")
    summary = dnc.load_file(db, latin)
    assert (summary.added, summary.invalid) == (2, 1)


def test_d9_load_progress_reaches_file_size(db, tmp_path):
    path = write(tmp_path / "dnc.txt", "".join(f"+1415555{i:04d}\n" for i in range(100)))
    seen = []
    dnc.load_file(db, path, progress=seen.append)
    assert sum(seen) == path.stat().st_size


def _statuses(db) -> dict[str, str]:
    with db.session() as s:
        return {n: st.value for n, st in s.execute(sa.select(CallRecord.number, CallRecord.status))}


def test_d9_scrub_after_list_change_moves_open_records_only(db, tmp_path):
    campaigns.create_campaign(db, "c")
    other = campaigns.create_campaign(db, "other")
    path = write(tmp_path / "l.csv", "phone\n(415) 555-2671\n(212) 555-0199\n(303) 555-0100\n(617) 555-0123\n")
    leads.load_leads(db, path, "c", "main")
    leads.load_leads(db, path, other.name, "main")
    with db.session() as s:
        recs = {r.number: r for r in s.scalars(sa.select(CallRecord).where(CallRecord.campaign_id != other.id))}
        record_status.set_status(recs["+12125550199"], RecordStatus.LEASED)
        record_status.set_status(recs["+13035550100"], RecordStatus.DONE)
    assert dnc.scrub_campaign(db, "c").moved == 0

    for n in ("415-555-2671", "212-555-0199", "303-555-0100"):
        dnc.add_number(db, n)
    summary = dnc.scrub_campaign(db, "c")
    assert (summary.checked, summary.moved) == (3, 2)  # READY, LEASED, READY were open; DONE was not
    assert summary.by_status == {"ready": 1, "leased": 1}
    with db.session() as s:
        rows = {r.number: r for r in s.scalars(sa.select(CallRecord).where(CallRecord.campaign_id != other.id))}
    assert rows["+14155552671"].status == RecordStatus.DNC
    assert rows["+12125550199"].status == RecordStatus.DNC and rows["+12125550199"].held_by_worker_id is None
    assert rows["+13035550100"].status == RecordStatus.DONE  # final, untouched
    assert rows["+16175550123"].status == RecordStatus.READY
    # the other campaign is untouched until it is scrubbed itself
    with db.session() as s:
        assert s.scalar(sa.select(sa.func.count()).select_from(CallRecord).where(
            CallRecord.campaign_id == other.id, CallRecord.status == RecordStatus.DNC)) == 0
    assert dnc.scrub_campaign(db, "c").moved == 0  # idempotent
    assert dnc.scrub_campaign(db, other.name).moved == 3


def test_d9_scrub_unknown_campaign(db):
    with pytest.raises(NotFound):
        dnc.scrub_campaign(db, "nope")

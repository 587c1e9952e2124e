"""Loading call records from CSV (SPEC P1, D9): scrubbing, rejects, bad input, idempotence."""
from __future__ import annotations

import csv
import json
from pathlib import Path

import pytest
import sqlalchemy as sa

from controller.errors import InvalidInput, NotFound
from controller.models import CallRecord, Pool
from controller.services import campaigns, dnc, leads
from controller.services.csvfiles import MAX_LINE_CHARS

SAMPLES = Path(__file__).resolve().parent.parent / "samples"


def write(path: Path, text: str | bytes) -> Path:
    if isinstance(text, bytes):
        path.write_bytes(text)
    else:
        path.write_text(text, encoding="utf-8")
    return path


def rejects_of(path: Path) -> list[dict]:
    with open(str(path) + ".rejects.csv", encoding="utf-8", newline="") as f:
        return list(csv.DictReader(f))


def records(db) -> list[CallRecord]:
    with db.session() as s:
        return list(s.scalars(sa.select(CallRecord).order_by(CallRecord.id)))


@pytest.fixture
def campaign(db):
    return campaigns.create_campaign(db, "spring", default_region="US")


GOOD = """first_name,last_name,phone,email,priority
Ann,Lee,(415) 555-2671,ann@example.com,1
Bob,Ray,+1 212 555 0199,bob@example.com,
Cy,Dee,12,cy@example.com,
Di,Eve,415-555-2671,di@example.com,
Ed,Fox,+999123456789,ed@example.com,
Fay,Gil,abc,fay@example.com,
Gus,Ho,+44 20 7946 0000,gus@example.com,notint
Hal,Ivy,+1 555 555 2671,,
Ida,Jo,+1 907 555 0123,,3
"""


def test_p1_d9_load_scrubs_and_counts(db, campaign, tmp_path):
    dnc.add_number(db, "212-555-0199", source="test")
    path = write(tmp_path / "leads.csv", GOOD)
    summary = leads.load_leads(db, path, "spring", "main")
    assert (summary.loaded, summary.duplicate, summary.dnc, summary.invalid, summary.rejected, summary.total) == (
        2, 1, 1, 4, 1, 9)
    assert summary.invalid_reasons == {"too_short": 1, "invalid_country_code": 1, "not_a_number": 1,
                                       "invalid_area_code": 1}
    assert summary.seconds >= 0
    recs = records(db)
    assert [r.number for r in recs] == ["+14155552671", "+19075550123"]
    ann, ida = recs
    assert (ann.name, ann.city, ann.region, ann.country, ann.timezone) == (
        "Ann Lee", "San Francisco", "CA", "US", "America/Los_Angeles")
    assert ann.extra == {"email": "ann@example.com"}
    assert ann.priority == 1 and ida.priority == 3
    assert ann.status.value == "ready"
    assert ida.timezone == "America/Adak America/Anchorage"
    with db.session() as s:
        assert s.scalar(sa.select(Pool.name)) == "main"  # created on the fly


def test_d9_rejects_file_has_line_numbers_reasons_and_fields(db, campaign, tmp_path):
    dnc.add_number(db, "+12125550199")
    path = write(tmp_path / "leads.csv", GOOD)
    summary = leads.load_leads(db, path, "spring", "main")
    assert summary.rejects_file == str(path) + ".rejects.csv"
    rows = rejects_of(path)
    assert [int(r["line"]) for r in rows] == [3, 4, 5, 6, 7, 8, 9]  # sorted by line
    by_line = {int(r["line"]): r for r in rows}
    assert by_line[3]["reason"] == "on the do-not-call list"
    assert by_line[4]["reason"] == "invalid number: too short" and by_line[4]["phone"] == "12"
    assert by_line[5]["reason"] == "duplicate of an earlier row in this file"
    assert by_line[5]["phone"] == "415-555-2671" and by_line[5]["first_name"] == "Di"
    assert "unknown country code" in by_line[6]["reason"]
    assert by_line[7]["reason"] == "invalid number: not a phone number"
    assert by_line[8]["reason"].startswith("priority must be a whole number")
    assert by_line[9]["reason"].startswith("invalid number: invalid area code")


def test_p1_rerun_is_safe(db, campaign, tmp_path):
    path = write(tmp_path / "leads.csv", GOOD)
    first = leads.load_leads(db, path, "spring", "main")
    again = leads.load_leads(db, path, "spring", "main")
    assert first.loaded == 3 and again.loaded == 0
    assert again.duplicate == first.duplicate + first.loaded
    assert len(records(db)) == 3
    assert any(r["reason"] == "already in campaign spring" for r in rejects_of(path))


def test_d9_duplicates_against_campaign_span_pools(db, campaign, tmp_path):
    leads.load_leads(db, write(tmp_path / "a.csv", "phone\n(415) 555-2671\n"), "spring", "a")
    summary = leads.load_leads(db, write(tmp_path / "b.csv", "phone\n+14155552671\n+14155552672\n"), "spring", "b")
    assert (summary.loaded, summary.duplicate) == (1, 1)
    other = campaigns.create_campaign(db, "other")
    assert leads.load_leads(db, tmp_path / "a.csv", other.name, "a").loaded == 1  # per campaign


def test_clean_file_leaves_no_rejects_file(db, campaign, tmp_path):
    path = write(tmp_path / "ok.csv", "phone\n(415) 555-2671\n")
    stale = write(tmp_path / "ok.csv.rejects.csv", "old")
    summary = leads.load_leads(db, path, "spring", "main")
    assert summary.rejects_file is None and not stale.exists()


# ----------------------------------------------------------------- columns and mapping


def test_mapping_and_extra_fields(db, campaign, tmp_path):
    path = write(tmp_path / "m.csv", "Tel;Nom;Ville;Etat;Note\n(415) 555-2671;Ann Lee;Oakland;CA;vip\n")
    summary = leads.load_leads(db, path, "spring", "main",
                               mapping={"Tel": "number", "Nom": "name", "Ville": "city", "Etat": "region",
                                        "Note": "extra"})
    assert summary.loaded == 1
    (r,) = records(db)
    assert (r.name, r.city, r.region, r.extra) == ("Ann Lee", "Oakland", "CA", {"Note": "vip"})


def test_extra_json_is_exact(db, campaign, tmp_path):
    value = 'Zoë said "hi" \\ back\tslash'
    with open(tmp_path / "j.csv", "w", encoding="utf-8", newline="") as f:
        csv.writer(f).writerows([["phone", "note", "Ünïcode key"], ["(415) 555-2671", value, "☎"]])
    assert leads.load_leads(db, tmp_path / "j.csv", "spring", "main").loaded == 1
    (r,) = records(db)
    assert r.extra == {"note": value, "Ünïcode key": "☎"}
    with db.engine.connect() as conn:
        raw = conn.execute(sa.text("SELECT extra FROM call_record")).scalar_one()
    stored = raw if isinstance(raw, str) else json.dumps(raw)
    assert json.loads(stored) == {"note": value, "Ünïcode key": "☎"}


def test_autodetect_headers_case_and_spacing(db, campaign, tmp_path):
    path = write(tmp_path / "h.csv", "Full Name,Phone Number,STATE,Unused\nAnn Lee,(415) 555-2671,CA,\n")
    assert leads.load_leads(db, path, "spring", "main").loaded == 1
    (r,) = records(db)
    assert (r.name, r.region, r.extra) == ("Ann Lee", "CA", None)


def test_ignore_mapping_and_unknown_mapping(db, campaign, tmp_path):
    path = write(tmp_path / "i.csv", "phone,secret\n(415) 555-2671,x\n")
    leads.load_leads(db, path, "spring", "main", mapping={"secret": "ignore"})
    assert records(db)[0].extra is None
    with pytest.raises(InvalidInput, match="unknown field"):
        leads.load_leads(db, path, "spring", "main", mapping={"secret": "password"})
    with pytest.raises(InvalidInput, match="no column 'nope'"):
        leads.load_leads(db, path, "spring", "main", mapping={"nope": "number"})
    assert leads.parse_mapping(["A=number", "b = name"]) == {"A": "number", "b": "name"}
    with pytest.raises(InvalidInput):
        leads.parse_mapping(["justacolumn"])


def test_fields_beyond_header_and_long_values_are_kept_safely(db, campaign, tmp_path):
    long_name = "N" * 500
    path = write(tmp_path / "x.csv", f"phone,name\n(415) 555-2671,{long_name},surplus\n")
    assert leads.load_leads(db, path, "spring", "main").loaded == 1
    (r,) = records(db)
    assert r.name == "N" * 200 and r.extra == {"column_3": "surplus"}


# ----------------------------------------------------------------- bad input


def test_bad_empty_file(db, campaign, tmp_path):
    with pytest.raises(InvalidInput, match="is empty"):
        leads.load_leads(db, write(tmp_path / "e.csv", ""), "spring", "main")
    with pytest.raises(InvalidInput, match="is empty"):
        leads.load_leads(db, write(tmp_path / "w.csv", "\n\n  \n"), "spring", "main")


def test_header_only_file_loads_nothing(db, campaign, tmp_path):
    summary = leads.load_leads(db, write(tmp_path / "h.csv", "phone,name\n"), "spring", "main")
    assert summary.total == 0 and summary.loaded == 0


def test_bad_missing_phone_column(db, campaign, tmp_path):
    with pytest.raises(InvalidInput, match="no phone number column.*columns: name, email"):
        leads.load_leads(db, write(tmp_path / "n.csv", "name,email\nAnn,a@x\n"), "spring", "main")


def test_bad_wrong_delimiter(db, campaign, tmp_path):
    # Sniffed: semicolons and tabs work without options ...
    semi = write(tmp_path / "s.csv", "name;phone\nAnn;(415) 555-2671\nBob;(212) 555-0199\n")
    assert leads.load_leads(db, semi, "spring", "main").loaded == 2
    tab = write(tmp_path / "t.csv", "name\tphone\nCy\t(303) 555-0100\n")
    assert leads.load_leads(db, tab, "spring", "main").loaded == 1
    # ... a wrong explicit delimiter leaves one column: a clear error naming it.
    with pytest.raises(InvalidInput, match=r"no phone number column in the header \(columns: name;phone\)"):
        leads.load_leads(db, semi, "spring", "main", delimiter=",")
    with pytest.raises(InvalidInput, match="one character"):
        leads.load_leads(db, semi, "spring", "main", delimiter=";;")


def test_bad_non_utf8_bytes_reject_the_row(db, campaign, tmp_path):
    data = "name,phone\nAnn,(415) 555-2671\n".encode() + b"Ren\xe9,(212) 555-0199\n" + "Zoë,(303) 555-0100\n".encode()
    path = write(tmp_path / "latin.csv", data)
    summary = leads.load_leads(db, path, "spring", "main")
    assert (summary.loaded, summary.rejected) == (2, 1)
    (row,) = rejects_of(path)
    assert row["line"] == "3" and "not UTF-8" in row["reason"] and "0xe9" in row["reason"]
    assert row["name"] == "Ren\ufffd"
    assert {r.name for r in records(db)} == {"Ann", "Zoë"}


def test_bad_non_utf8_header(db, campaign, tmp_path):
    with pytest.raises(InvalidInput, match="UTF-8"):
        leads.load_leads(db, write(tmp_path / "b.csv", b"n\xe9m,phone\nx,(415) 555-2671\n"), "spring", "main")


def test_bom_is_ignored(db, campaign, tmp_path):
    path = write(tmp_path / "bom.csv", "\ufeffphone,name\n(415) 555-2671,Ann\n")
    assert leads.load_leads(db, path, "spring", "main").loaded == 1


@pytest.mark.parametrize("raw, loaded, reason", [
    ("12", 0, "too short"),
    ("+999123456789", 0, "unknown country code"),
    ("(415) 555-2671", 1, None),
    ("letters only", 0, "not a phone number"),
    ("", 0, "no number"),
])
def test_bad_numbers(db, campaign, tmp_path, raw, loaded, reason):
    path = write(tmp_path / "n.csv", f'phone,name\n"{raw}",X\n')
    summary = leads.load_leads(db, path, "spring", "main")
    assert summary.loaded == loaded
    if reason:
        assert reason in rejects_of(path)[0]["reason"]


def test_bad_10mb_single_line_row(db, campaign, tmp_path):
    path = tmp_path / "big.csv"
    with open(path, "w") as f:
        f.write("phone,name\n(415) 555-2671,Ann\n")
        f.write("(212) 555-0199," + "x" * (10 * 1024 * 1024) + "\n")
        f.write("(303) 555-0100,Cy\n")
    summary = leads.load_leads(db, path, "spring", "main")
    assert (summary.loaded, summary.rejected, summary.total) == (2, 1, 3)
    (row,) = rejects_of(path)
    assert row["line"] == "3" and "longer than" in row["reason"]
    assert len(row["phone"]) < 1000  # an excerpt, not 10 MB


def test_bad_10mb_file_without_newlines(db, campaign, tmp_path):
    path = write(tmp_path / "blob.csv", "x" * (10 * 1024 * 1024))
    with pytest.raises(InvalidInput, match="longer than"):
        leads.load_leads(db, path, "spring", "main")


def test_bad_unterminated_quote_is_bounded(db, campaign, tmp_path):
    path = tmp_path / "q.csv"
    with open(path, "w") as f:
        f.write('phone,name\n(415) 555-2671,"never closed\n')
        for _ in range(MAX_LINE_CHARS // 50 + 10):
            f.write("(212) 555-0199,filler filler filler filler filler filler\n")
    summary = leads.load_leads(db, path, "spring", "main")
    assert summary.rejected >= 1
    assert "CSV error" in rejects_of(path)[0]["reason"]


def test_bad_file_and_campaign_and_region(db, campaign, tmp_path):
    with pytest.raises(NotFound, match="does not exist"):
        leads.load_leads(db, tmp_path / "missing.csv", "spring", "main")
    with pytest.raises(InvalidInput, match="not a file"):
        leads.load_leads(db, tmp_path, "spring", "main")
    path = write(tmp_path / "ok.csv", "phone\n(415) 555-2671\n")
    with pytest.raises(NotFound, match="no campaign"):
        leads.load_leads(db, path, "nope", "main")
    with pytest.raises(InvalidInput, match="unknown region"):
        leads.load_leads(db, path, "spring", "main", default_region="XX")


def test_default_region_override(db, campaign, tmp_path):
    path = write(tmp_path / "uk.csv", "phone\n020 7946 0000\n")
    assert leads.load_leads(db, path, "spring", "main").invalid == 1
    assert leads.load_leads(db, path, "spring", "main", default_region="GB").loaded == 1
    assert records(db)[0].number == "+442079460000"


# ----------------------------------------------------------------- parallel path


def test_parallel_parse_gives_same_result_as_single_process(db, campaign, tmp_path, monkeypatch):
    monkeypatch.setattr(leads, "CHUNK_ROWS", 300)  # many chunks in flight, out of order in the pool
    lines = ["phone,name"]
    for i in range(4000):
        area = [415, 212, 303, 555][i % 4]  # every fourth invalid (area code 555)
        lines.append(f"({area}) 55{i % 7 + 2}-{i % 9000 + 1000:04d},N{i}")  # plenty of duplicates
    path = write(tmp_path / "big.csv", "\n".join(lines) + "\n")
    single = leads.load_leads(db, path, "spring", "one", workers=1)
    other = campaigns.create_campaign(db, "other")
    multi = leads.load_leads(db, path, other.name, "one", workers=2)
    fields = ("loaded", "duplicate", "dnc", "invalid", "rejected", "total")
    assert [getattr(single, f) for f in fields] == [getattr(multi, f) for f in fields]
    assert multi.workers == 2 and single.loaded > 0
    with db.session() as s:
        a = s.execute(sa.select(CallRecord.number, CallRecord.name).where(CallRecord.campaign_id == campaign.id)
                      .order_by(CallRecord.number)).all()
        b = s.execute(sa.select(CallRecord.number, CallRecord.name).where(CallRecord.campaign_id == other.id)
                      .order_by(CallRecord.number)).all()
    assert a == b  # the same first occurrence won in both


def test_progress_reaches_file_size(db, campaign, tmp_path):
    path = write(tmp_path / "p.csv", GOOD)
    seen = []
    leads.load_leads(db, path, "spring", "main", progress=seen.append)
    assert sum(seen) == path.stat().st_size


def test_shipped_sample_loads(db, tmp_path):
    campaigns.create_campaign(db, "demo")
    dnc.load_file(db, SAMPLES / "demo_dnc.txt")
    summary = leads.load_leads(db, SAMPLES / "demo_leads.csv", "demo", "main",
                               rejects_path=tmp_path / "rejects.csv")
    assert summary.loaded > 250 and summary.duplicate > 0 and summary.dnc > 0
    assert summary.invalid > 0 and summary.rejected > 0
    assert summary.loaded + summary.duplicate + summary.dnc + summary.invalid + summary.rejected == summary.total
    assert json.dumps(summary.as_dict())


def test_x1_toll_free_numbers_store_no_zone(db, campaign, tmp_path):
    """1-800 numbers span 40+ zones: no usable local time, the campaign's zone applies."""
    path = write(tmp_path / "tf.csv", "phone\n1-800-356-9377\n")
    assert leads.load_leads(db, path, "spring", "main").loaded == 1
    (r,) = records(db)
    assert r.timezone is None and r.city is None


def _load_result(db, path, campaign_name, workers):
    summary = leads.load_leads(db, path, campaign_name, "main", workers=workers)
    with open(str(path) + ".rejects.csv", encoding="utf-8", newline="") as f:
        rejects = f.read()
    with db.session() as s:
        camp = campaigns.get_campaign_in(s, campaign_name)
        rows = s.execute(sa.select(CallRecord.number, CallRecord.name, CallRecord.city, CallRecord.region,
                                   CallRecord.country, CallRecord.timezone, CallRecord.extra,
                                   CallRecord.priority, CallRecord.difficulty)
                         .where(CallRecord.campaign_id == camp.id).order_by(CallRecord.id)).all()
    counts = [getattr(summary, f) for f in ("loaded", "duplicate", "dnc", "invalid", "rejected", "total")]
    return counts, dict(summary.invalid_reasons), rejects, rows


@pytest.mark.parametrize("crlf", [False, True])
def test_p1_block_fast_path_matches_careful_reader(db, campaign, tmp_path, crlf, monkeypatch):
    """Workers reading whole blocks (no quotes in the file) decide exactly as the CSV reader path,
    whatever the chunk / block boundaries."""
    monkeypatch.setattr(leads, "CHUNK_ROWS", 700)
    monkeypatch.setattr(leads.leadblocks, "BLOCK_BYTES", 4096)
    dnc.add_number(db, "212-555-0199", source="test")
    lines = ["First Name,last_name,phone,email,priority,city"]
    for i in range(3000):
        area = [415, 212, 303, 555, 907][i % 5]
        lines.append(f"F{i},L{i},({area}) 55{i % 7 + 2}-{i % 1500 + 1000:04d},e{i}@x.org,{i % 4},")
        if i % 97 == 0:
            lines.append("")  # blank line
        if i % 211 == 0:
            lines.append(f"Bad,Prio,+1 303 555 {i % 9000 + 1000:04d},x,high,Denver")
        if i % 301 == 0:
            lines.append(f"Extra,Cols,+44 20 7946 {i % 9000 + 1000:04d},y,1,London,spare,more")
        if i % 401 == 0:
            lines.append(f"Ren\u00e9,Dupr\u00e9,+33 1 42 68 53 {i % 90 + 10:02d},z,2,Paris")
    lines.append("Dnc,Hit,212-555-0199,,,")
    lines.append("Short,Row,415 555 2671")
    lines.append("Dup,Row,(415) 552-1000,,,")
    lines.append("Dnc,Again,(212) 555-0199,,,")  # a later chunk: a duplicate, as in the same chunk
    text = ("\r\n" if crlf else "\n").join(lines) + "\n"
    data = b"\xef\xbb\xbf" + text.encode("utf-8")
    data = data.replace(b"e5@x.org", b"e5@x\xff.org").replace(b"e7@x.org", b"e7@x\x00.org")
    path = write(tmp_path / "big.csv", data)
    assert leads.leadblocks.fast_body_offset(path, 1) is not None
    careful = _load_result(db, path, "spring", workers=1)
    other = campaigns.create_campaign(db, "other", default_region="US")
    fast = _load_result(db, path, other.name, workers=2)
    assert fast == careful
    counts = careful[0]
    assert counts[0] > 0 and all(c > 0 for c in counts[1:]) and sum(counts[:5]) == counts[5]
    again = leads.load_leads(db, path, other.name, "main", workers=2)  # re-run loads nothing
    assert again.loaded == 0 and again.duplicate == fast[0][0] + fast[0][1]


def test_p1_quoted_file_takes_the_careful_reader(db, campaign, tmp_path):
    path = write(tmp_path / "q.csv", 'name,phone\n"Lee, Ann","(415) 555-2671"\n"Multi\nline",+1 212 555 0199\n')
    assert leads.leadblocks.fast_body_offset(path, 1) is None
    summary = leads.load_leads(db, path, "spring", "main", workers=2)
    assert (summary.loaded, summary.total) == (2, 2)
    assert {r.name for r in records(db)} == {"Lee, Ann", "Multi\nline"}


def test_p1_statistics_refresh_during_load_keeps_results(db, campaign, tmp_path, monkeypatch):
    """PostgreSQL ANALYZEs call_record as a load grows (a no-op on SQLite); results are unchanged."""
    monkeypatch.setattr(leads, "ANALYZE_MIN_ROWS", 1)
    monkeypatch.setattr(leads, "CHUNK_ROWS", 3)
    dnc.add_number(db, "212-555-0199", source="test")
    path = write(tmp_path / "leads.csv", GOOD)
    summary = leads.load_leads(db, path, "spring", "main")
    assert (summary.loaded, summary.duplicate, summary.dnc, summary.invalid, summary.rejected, summary.total) == (
        2, 1, 1, 4, 1, 9)

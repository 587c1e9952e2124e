"""The adapter's lazy event type and stream splitter against every captured frame (X2)."""
from __future__ import annotations

import json
from pathlib import Path

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esl_dialer.esl.events import MAX_HEADER_BYTES, Event, ProtocolError, StreamParser

CAPTURES = sorted((Path(__file__).resolve().parent / "esl-captures").glob("*.jsonl"))


def _records(path: Path) -> list[dict]:
    return [json.loads(line) for line in path.read_text().splitlines() if line.strip()]


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_every_captured_frame_parses_whole_and_byte_by_byte(path):
    records = [r for r in _records(path) if "Content-Type" in r.get("headers", {})]
    stream = b"".join(r["raw"].encode() for r in records)
    whole = StreamParser().feed(stream)
    parser = StreamParser()
    drip = []
    for i in range(0, len(stream), 997):  # odd chunk size: splits headers, bodies and UTF-8 anywhere
        drip += parser.feed(stream[i:i + 997])
    assert whole == drip
    # outbound connect replies have no Content-Length; each is still one frame
    assert len(whole) == len(records)
    for rec, (headers, body) in zip(records, whole):
        assert headers.get("Content-Type") == rec["headers"]["Content-Type"]
        assert body.decode() == rec["body"]


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_lazy_events_match_the_decoded_capture(path):
    n = 0
    for rec in _records(path):
        ctype = rec.get("headers", {}).get("Content-Type")
        if ctype not in ("text/event-plain", "text/event-json"):
            continue
        body = rec["body"].encode()
        ev = Event.from_plain(body) if ctype == "text/event-plain" else Event.from_json(body)
        expected = rec["event"]
        assert ev.name == expected["Event-Name"]
        assert ev.uuid == expected.get("Unique-ID")
        if ev.name == "BACKGROUND_JOB":
            assert ev.job_uuid == expected["Job-UUID"]
            if expected.get("Job-Command") == "originate":
                assert ev.body.startswith(("+OK", "-ERR"))
            else:  # e.g. bgapi status: the command's own output
                assert ev.body and ev.body == expected.get("_body", ev.body)
        if ev.name == "CUSTOM":
            assert ev.subclass == expected["Event-Subclass"]
        if ctype == "text/event-plain":
            assert not ev.decoded  # routing keys cost no header decoding
            for key, value in expected.items():
                assert ev[key] == value, key
            assert ev.decoded
        n += 1
    assert n > 0 or path.name == "b_outbound.jsonl"


def test_unique_id_is_matched_at_line_start_only():
    body = (b"Event-Name: CHANNEL_BRIDGE\nOther-Leg-Unique-ID: other\nvariable_x_Unique-ID: no\n"
            b"Unique-ID: real\n")
    assert Event.from_plain(body).uuid == "real"


def test_nested_body_is_not_searched_for_headers():
    body = b"Event-Name: BACKGROUND_JOB\nJob-UUID: j1\nContent-Length: 22\n\nUnique-ID: not-a-header"
    ev = Event.from_plain(body)
    assert ev.uuid is None and ev.job_uuid == "j1"
    assert ev.body == "Unique-ID: not-a-heade"  # exactly the nested Content-Length


def test_header_block_limit_and_bad_length():
    with pytest.raises(ProtocolError):
        StreamParser().feed(b"x" * (MAX_HEADER_BYTES + 10))
    with pytest.raises(ProtocolError):
        StreamParser().feed(b"Content-Length: -5\n\n")
    with pytest.raises(ProtocolError):
        StreamParser().feed(b"Content-Length: 99999999999\n\n")


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600))
def test_fuzz_parser_and_events_never_crash(data):
    """Invariant: any bytes either parse or raise ProtocolError; events from any body never raise."""
    try:
        frames = StreamParser().feed(data)
    except ProtocolError:
        return
    for headers, body in frames:
        ev = Event.from_plain(body)
        dict(ev.headers)
        try:
            Event.from_json(body)
        except ProtocolError:
            pass


@pytest.mark.parametrize("path", CAPTURES, ids=lambda p: p.name)
def test_splitter_agrees_with_the_shared_codec(path):
    """The adapter's lean splitter (faster on event streams) frames exactly like esl_dialer.esl.codec."""
    from esl_dialer.esl.codec import NEED_DATA, FrameParser

    records = [r for r in _records(path) if "Content-Type" in r.get("headers", {})]
    stream = b"".join(r["raw"].encode() for r in records)
    ours = StreamParser().feed(stream)
    codec = FrameParser()
    codec.receive_data(stream)
    theirs = []
    while (frame := codec.next_frame()) is not NEED_DATA:
        theirs.append(frame)
    assert len(ours) == len(theirs)
    for (headers, body), frame in zip(ours, theirs):
        assert body == frame.body
        assert headers == dict(frame.headers)


def test_the_captured_frames_are_vendored_with_the_tests():
    assert [p.name for p in CAPTURES] == ["a_inbound.jsonl", "b_outbound.jsonl", "c_callcenter.jsonl", "d_json.jsonl",
                                          "e_timing_commands.jsonl"]

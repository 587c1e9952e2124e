"""X2: every frame captured from a real FreeSWITCH 1.10.12 parses to what the capture says.

Each capture is fed whole and then one byte at a time; both must give the
same frames, whose headers/body/event equal the capture's own decoding.
"""
from __future__ import annotations

import json
from pathlib import Path

import pytest

from esl_dialer.esl import NEED_DATA, FrameParser, parse_event, url_decode

CAPTURES = Path(__file__).resolve().parent / "esl-captures"
FILES = sorted(CAPTURES.glob("*.jsonl")) if CAPTURES.is_dir() else []

pytestmark = pytest.mark.skipif(not FILES, reason="captures not available")


def load(path: Path) -> list[dict]:
    return [d for d in (json.loads(line) for line in path.open()) if "raw" in d]


def frames_of(parser: FrameParser) -> list:
    out = []
    while (frame := parser.next_frame()) is not NEED_DATA:
        out.append(frame)
    return out


def parse_whole(data: bytes) -> list:
    parser = FrameParser()
    parser.receive_data(data)
    return frames_of(parser)


def parse_bytewise(data: bytes) -> list:
    parser = FrameParser()
    out = []
    for i in range(len(data)):
        parser.receive_data(data[i : i + 1])
        out.extend(frames_of(parser))
    parser.receive_data(b"")
    out.extend(frames_of(parser))
    return out


def check(frames: list, captured: list[dict]) -> None:
    assert len(frames) == len(captured)
    for frame, cap in zip(frames, captured):
        assert dict(frame.raw_headers) == cap["headers"]
        assert dict(frame.headers) == {k: url_decode(v) for k, v in cap["headers"].items()}
        assert frame.text == cap["body"]
        if "event" in cap:
            event = parse_event(frame)
            expected = dict(cap["event"])
            body = expected.pop("_body", None)
            assert dict(event.headers) == expected
            if frame.content_type == "text/event-json":
                assert event.body == body
            elif "Content-Length" in expected:
                # plain: the nested body follows the blank line inside the event body
                assert event.body == cap["body"].split("\n\n", 1)[1]


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_x2_capture_parses_whole(path):
    captured = load(path)
    check(parse_whole("".join(c["raw"] for c in captured).encode()), captured)


@pytest.mark.parametrize("path", FILES, ids=[p.stem for p in FILES])
def test_x2_capture_parses_one_byte_at_a_time(path):
    captured = load(path)
    check(parse_bytewise("".join(c["raw"] for c in captured).encode()), captured)


def test_x2_capture_connect_reply_is_one_header_block():
    captured = load(CAPTURES / "b_outbound.jsonl")
    frame = parse_whole(captured[0]["raw"].encode())[0]
    assert frame.headers["Event-Name"] == "CHANNEL_DATA"
    assert frame.headers["Reply-Text"] == "+OK\n"
    assert frame.headers["Socket-Mode"] == "async"
    assert frame.headers["Control"] == "full"
    assert frame.body == b""


def test_x2_capture_background_job_body():
    captured = load(CAPTURES / "a_inbound.jsonl")
    jobs = [c for c in captured if c.get("event", {}).get("Event-Name") == "BACKGROUND_JOB"]
    events = [parse_event(parse_whole(c["raw"].encode())[0]) for c in jobs]
    assert events[0].body == "-ERR NO_ANSWER\n"
    assert events[1].body.startswith("+OK ")

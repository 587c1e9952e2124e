"""X2: the sans-IO ESL codec -- framing, limits, errors, encoders round-trip, fuzz."""
from __future__ import annotations

import pytest
from hypothesis import given, settings
from hypothesis import strategies as st

from esl_dialer.esl import (
    NEED_DATA,
    FrameParser,
    ProtocolError,
    UsageError,
    encode_api_response,
    encode_auth_request,
    encode_command,
    encode_command_reply,
    encode_connect_reply,
    encode_disconnect_notice,
    encode_event_json,
    encode_event_plain,
    encode_rude_rejection,
    encode_sendmsg,
    parse_event,
    url_decode,
    url_encode,
)


def parse_all(data: bytes, **kw) -> list:
    parser = FrameParser(**kw)
    parser.receive_data(data)
    out = []
    while (frame := parser.next_frame()) is not NEED_DATA:
        out.append(frame)
    return out


def one(data: bytes, **kw):
    frames = parse_all(data, **kw)
    assert len(frames) == 1
    return frames[0]


def test_x2_need_data_until_blank_line_and_body_bytes():
    parser = FrameParser()
    parser.receive_data(b"Content-Type: api/response\nContent-Length: 5\n")
    assert parser.next_frame() is NEED_DATA
    parser.receive_data(b"\nh\xc3\xa9l")  # Content-Length counts BYTES (é is 2)
    assert parser.next_frame() is NEED_DATA
    parser.receive_data(b"lContent-Type: auth/request\n\n")
    frame = parser.next_frame()
    assert frame.body == "hél".encode() + b"l" and frame.text == "héll"
    assert parser.next_frame().content_type == "auth/request"
    assert parser.next_frame() is NEED_DATA


def test_x2_header_values_decoded_one_by_one():
    frame = one(b"Content-Type: command/reply\nReply-Text: %2BOK%0AFake: x\nOther: a%3Ab\n\n")
    # %0A decoded inside the value: it must not create a header "Fake"
    assert frame.headers == {"Content-Type": "command/reply", "Reply-Text": "+OK\nFake: x", "Other": "a:b"}
    assert frame.raw_headers["Reply-Text"] == "%2BOK%0AFake: x"


def test_x2_commands_mode_reads_command_line_and_crlf():
    frames = parse_all(b"auth ClueCon\r\n\r\n\napi status\n\nsendmsg abc\ncall-command: execute\n\n", commands=True)
    assert [f.command for f in frames] == ["auth ClueCon", "api status", "sendmsg abc"]
    assert frames[2].headers == {"call-command": "execute"}


def test_x2_sendmsg_with_body_round_trip():
    data = encode_sendmsg("u1", {"call-command": "execute", "execute-app-name": "playback"}, body="a\n\nb")
    frame = one(data, commands=True)
    assert frame.command == "sendmsg u1"
    assert frame.headers["execute-app-name"] == "playback"
    assert frame.body == b"a\n\nb"


def test_x2_header_block_limit_is_protocol_error():
    parser = FrameParser(max_header_bytes=100)
    parser.receive_data(b"X: " + b"a" * 200)
    with pytest.raises(ProtocolError):
        parser.next_frame()
    with pytest.raises(UsageError):  # poisoned afterwards
        parser.next_frame()


def test_x2_body_limit_is_protocol_error():
    parser = FrameParser(max_body_bytes=10)
    parser.receive_data(b"Content-Length: 11\n\n")
    with pytest.raises(ProtocolError):
        parser.next_frame()


@pytest.mark.parametrize(
    "data",
    [b"Content-Length: -1\n\n", b"Content-Length: abc\n\n", b"no colon here\n\n", b"\xff\xfe: x\n\n", b": x\n\n"],
)
def test_x2_malformed_frames_are_protocol_errors(data):
    with pytest.raises(ProtocolError):
        parse_all(data)


def test_x2_eof_mid_frame_is_protocol_error():
    parser = FrameParser()
    parser.receive_data(b"Content-Length: 5\n\nab")
    parser.receive_data(b"")
    with pytest.raises(ProtocolError):
        parser.next_frame()
    clean = FrameParser()
    clean.receive_data(b"Content-Type: auth/request\n\n\n")
    clean.receive_data(b"")
    assert clean.next_frame().content_type == "auth/request"
    assert clean.next_frame() is NEED_DATA


def test_x2_usage_errors():
    parser = FrameParser()
    with pytest.raises(UsageError):
        parser.receive_data("text")  # type: ignore[arg-type]
    parser.receive_data(b"")
    with pytest.raises(UsageError):
        parser.receive_data(b"x")
    with pytest.raises(UsageError):
        encode_command("api status\n\napi evil")
    with pytest.raises(UsageError):
        encode_command_reply("+OK\nInjected: yes")
    with pytest.raises(UsageError):
        encode_sendmsg("u", {"bad:name": "x"})


def test_x2_bytewise_scanning_is_linear():
    # 200 KB header block fed one byte at a time must not rescan from 0.
    import time

    data = b"".join(b"H%d: %s\n" % (i, b"v" * 40) for i in range(4000)) + b"\n"
    parser = FrameParser()
    started = time.perf_counter()
    for i in range(len(data)):
        parser.receive_data(data[i : i + 1])
        if i % 64 == 0 or i == len(data) - 1:
            frame = parser.next_frame()
    assert frame is not NEED_DATA and len(frame.headers) == 4000
    assert time.perf_counter() - started < 5


def test_x2_url_encode_like_freeswitch():
    assert url_encode("Mon, 23 Nov 2026 10:41:43 GMT") == "Mon,%2023%20Nov%202026%2010%3A41%3A43%20GMT"
    assert url_encode("{a=b}x &park()") == "%7Ba%3Db%7Dx%20%26park()"
    assert url_encode("+OK\n") == "%2BOK%0A"
    assert url_encode("tone_stream://%(500,0,440)") == "tone_stream%3A//%25(500,0,440)"
    assert url_decode(url_encode("héllo wörld\t\"#")) == "héllo wörld\t\"#"


def test_x2_server_encoders_round_trip():
    frames = parse_all(
        encode_auth_request()
        + encode_command_reply("+OK Job-UUID: j1", {"Job-UUID": "j1"})
        + encode_api_response("+OK abc\n")
        + encode_disconnect_notice({"Controlled-Session-UUID": "u", "Content-Disposition": "linger"})
        + encode_rude_rejection()
    )
    assert [f.content_type for f in frames] == [
        "auth/request", "command/reply", "api/response", "text/disconnect-notice", "text/rude-rejection"
    ]
    assert frames[1].headers == {"Content-Type": "command/reply", "Reply-Text": "+OK Job-UUID: j1", "Job-UUID": "j1"}
    assert frames[2].text == "+OK abc\n"
    assert frames[3].headers["Content-Length"] == "0"
    assert frames[4].text == "Access Denied, go away.\n"


@pytest.mark.parametrize("encoder", [encode_event_plain, encode_event_json])
def test_x2_event_encoders_round_trip(encoder):
    headers = {"Event-Name": "BACKGROUND_JOB", "Job-Command-Arg": "{x=1}error/busy &park()", "Odd": "a\nb: c%"}
    frame, second = parse_all(encoder(headers, "+OK done\n") + encoder({"Event-Name": "HEARTBEAT"}))
    assert parse_event(second).name == "HEARTBEAT" and parse_event(second).body is None
    event = parse_event(frame)
    assert {k: v for k, v in event.headers.items() if k != "Content-Length"} == headers
    assert event.body == "+OK done\n"
    assert event.name == "BACKGROUND_JOB"


def test_x2_connect_reply_round_trip():
    frame = one(encode_connect_reply({"Event-Name": "CHANNEL_DATA", "Unique-ID": "u1", "variable_x": "a b:c"}))
    assert frame.headers["variable_x"] == "a b:c"
    assert frame.raw_headers["Reply-Text"] == "%2BOK%0A"
    assert frame.headers["Socket-Mode"] == "async" and frame.headers["Control"] == "full"


@settings(max_examples=300, deadline=None)
@given(st.binary(max_size=600), st.integers(min_value=1, max_value=50), st.booleans())
def test_x2_fuzz_parse_or_protocol_error(data, chunk, commands):
    parser = FrameParser(commands=commands, max_header_bytes=256, max_body_bytes=256)
    try:
        for i in range(0, len(data), chunk):
            parser.receive_data(data[i : i + chunk])
            while (frame := parser.next_frame()) is not NEED_DATA:
                if frame.is_event:
                    try:
                        frame.event()
                    except ProtocolError:
                        pass
        parser.receive_data(b"")
        parser.next_frame()
    except ProtocolError:
        pass


@settings(max_examples=200, deadline=None)
@given(st.dictionaries(st.from_regex(r"[A-Za-z][A-Za-z0-9_-]{0,20}", fullmatch=True), st.text(max_size=40), max_size=8),
       st.one_of(st.none(), st.text(max_size=60)))
def test_x2_fuzz_event_plain_round_trip(headers, body):
    headers.pop("Content-Length", None)
    event = parse_event(one(encode_event_plain(headers, body)))
    got = dict(event.headers)
    got.pop("Content-Length", None)
    assert got == headers
    assert event.body == body

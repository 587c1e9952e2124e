"""The simulated switch's command set and parsing are mod_event_socket's and mod_commands'.

Each reply is compared with the real FreeSWITCH 1.10.12's in the e_timing
capture (tests/esl-captures/e_timing_commands.jsonl, cut from e_timing.jsonl);
recognition rules and texts the capture does not show come from
parse_command() in mod_event_socket.c and from mod_commands.c (cited where a
test checks them).  The stock fs_cli cannot be installed here, so
``test_fs_cli_start_up_sequence`` replays what libs/esl/fs_cli.c sends.
"""
from __future__ import annotations

import json
import re
import xml.etree.ElementTree as ET
from pathlib import Path
from types import SimpleNamespace
from urllib.parse import unquote

import gevent
import pytest
from greenswitch import InboundESL

from esl_dialer.esl import encode_event_xml, parse_event
from esl_dialer.sim.cmd_socket import filters_pass, log_str2level
from esl_dialer.sim.events import SimLogLine
from esl_dialer.sim.testing import RawEslClient, wait_until

CAPTURE = Path(__file__).resolve().parent / "esl-captures" / "e_timing_commands.jsonl"
UUID_RE = re.compile(r"[0-9a-f]{8}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{4}-[0-9a-f]{12}")
CAPTURED_A = "12f80783-6cff-4ff5-aa2f-9c8c4def96b0"  # the parked leg of e_timing's last commands
LOG_HEADERS = ["Content-Type", "Content-Length", "Log-Level", "Text-Channel", "Log-File", "Log-Func", "Log-Line",
               "User-Data"]


def frames() -> list[dict]:
    return [json.loads(line) for line in CAPTURE.open()]


def captured_reply(sent: str) -> dict:
    return next(f for f in frames() if f.get("sent") == sent)


def shape(text: str, hostname: str) -> str:
    """A reply with what legitimately differs between two switches (uuids, numbers, host) blanked out."""
    text = UUID_RE.sub("U", text)
    text = re.sub(r"\b(vm|%s)\b" % re.escape(hostname), "HOST", text)
    return re.sub(r"\d+", "9", text)


def parked_call(raw: RawEslClient) -> str:
    reply = raw.reply("api originate loopback/9993 &park()").text
    assert reply.startswith("+OK "), reply
    return reply.split()[1].strip()


def read_events(raw: RawEslClient, until, timeout: float = 5.0) -> list:
    got = []
    raw.read_until(lambda f: (got.append(f) or until(f)), timeout)
    return got


# -- replies compared with the capture ------------------------------------------------------
@pytest.mark.parametrize("sent", [
    "api json {\"command\":\"status\",\"data\":\"\"}", "api switchname", "api hostname", "api uptime",
    "api reloadxml", "api show channels count",
])
def test_api_reply_has_the_captured_shape(raw, sim, sent):
    parked_call(raw)  # two channels, like a switch with calls up
    real = captured_reply(sent)
    ours = raw.reply(sent)
    assert ours.content_type == real["headers"]["Content-Type"] == "api/response"
    assert shape(ours.text, sim.config.hostname) == shape(real["body"], "vm")


def test_json_status_has_every_field_of_the_real_one(raw):
    real = json.loads(captured_reply("api json {\"command\":\"status\",\"data\":\"\"}")["body"])
    ours = json.loads(raw.reply("api json {\"command\":\"status\",\"data\":\"\"}").text)

    def keys(obj, path=""):
        if isinstance(obj, dict):
            return {k2 for k, v in obj.items() for k2 in keys(v, f"{path}/{k}")} | {path}
        return {f"{path}:{type(obj).__name__}"}

    assert keys(ours) == keys(real)
    assert ours["status"] == "success" and ours["response"]["systemStatus"] == "ready"
    bad = json.loads(raw.reply("api json {\"command\":\"nosuch\",\"data\":\"\"}").text)
    assert bad["status"] == "error" and bad["response"] is None  # switch_json_api_execute
    assert raw.reply("api json").text == "-ERR No JSON supplied.\n"
    assert raw.reply("api json {oops").text == "-ERR Parse error.\n"


def test_hostname_switchname_uptime_global_getvar_module_exists(raw, sim):
    assert raw.reply("api switchname").text == raw.reply("api hostname").text == sim.config.hostname
    assert re.fullmatch(r"\d+\n", raw.reply("api uptime").text)
    assert re.fullmatch(r"\d+\n", raw.reply("api uptime ms").text)
    assert raw.reply("api uptime fortnights").text.startswith("-USAGE: [us|ms|s|")
    real_vars = captured_reply("api global_getvar")["body"]
    ours = raw.reply("api global_getvar").text
    assert ours.endswith("\n") and all(re.fullmatch(r"[\w-]+=.*", line) for line in ours.splitlines())
    real_names = [line.split("=", 1)[0] for line in real_vars.splitlines()]
    our_names = [line.split("=", 1)[0] for line in ours.splitlines()]
    assert our_names[:5] == real_names[:5] == ["hostname", "local_mask_v4", "local_ip_v6", "base_dir", "recordings_dir"]
    assert set(our_names) <= set(real_names) | {"external_sip_port"}
    assert raw.reply("api global_getvar hold_music").text == "local_stream://moh"  # no newline
    assert raw.reply("api global_getvar no_such_var").text == "-ERR no reply\n"
    assert captured_reply("api module_exists mod_callcenter")["body"] == "true"
    assert raw.reply("api module_exists mod_sofia").text == "true"
    assert raw.reply("api module_exists mod_callcenter").text == "true"  # the mod_callcenter subset
    assert raw.reply("api module_exists mod_conference").text == "false"  # not simulated


def test_status_is_the_real_text(raw, sim):
    real = next(json.loads(line) for line in (CAPTURE.parent / "a_inbound.jsonl").open()
                if json.loads(line).get("sent") == "api status")["body"]
    ours = raw.reply("api status").text
    assert [line.split(" ")[1:3] for line in ours.splitlines()[1:]] == \
        [line.split(" ")[1:3] for line in real.splitlines()[1:]]
    first = ours.splitlines()[0]
    assert re.fullmatch(r"UP \d+ years?, \d+ days?, \d+ hours?, \d+ minutes?, \d+ seconds?, \d+ milliseconds?, "
                        r"\d+ microseconds?", first)
    assert not re.search(r"\b1 \w+s\b", first)  # "1 minute", singular when 1 (status_function)


def test_uuid_park_hold_reloadxml_replies_and_events(raw, sim):
    assert raw.reply("api reloadxml").text == captured_reply("api reloadxml")["body"] == "+OK [Success]\n"
    raw.reply("event plain CHANNEL_HOLD CHANNEL_PARK CHANNEL_UNPARK CHANNEL_STATE CHANNEL_EXECUTE "
              "CHANNEL_EXECUTE_COMPLETE RELOADXML")
    uuid = parked_call(raw)

    def mine(f, name=None):
        return f.is_event and parse_event(f)["Unique-ID"] == uuid and name in (None, parse_event(f)["Event-Name"])

    raw.read_until(lambda f: mine(f, "CHANNEL_PARK"))
    assert raw.reply(f"api uuid_park {uuid}").text == captured_reply(f"api uuid_park {CAPTURED_A}")["body"]
    got = [parse_event(f) for f in read_events(raw, lambda f: mine(f, "CHANNEL_PARK")) if mine(f)]
    # e_timing.jsonl after `api uuid_park` (t=40.244): UNPARK, EXECUTE_COMPLETE park, STATE CS_PARK, PARK
    assert [(e["Event-Name"], e.get("Application") or e["Channel-State"]) for e in got] == [
        ("CHANNEL_UNPARK", "CS_EXECUTE"), ("CHANNEL_EXECUTE_COMPLETE", "park"), ("CHANNEL_STATE", "CS_PARK"),
        ("CHANNEL_PARK", "CS_PARK")]
    raw.reply("nixevent CHANNEL_STATE CHANNEL_EXECUTE CHANNEL_EXECUTE_COMPLETE CHANNEL_PARK CHANNEL_UNPARK")
    hold_real = [f for f in frames() if (f.get("sent") or "").startswith("api uuid_hold")]
    assert [f["body"] for f in hold_real] == ["+OK Success\n", "-ERR Operation failed\n"]
    assert raw.reply(f"api uuid_hold {uuid}").text == "+OK Success\n"
    hold = parse_event(raw.read_until(lambda f: f.is_event))
    assert hold["Event-Name"] == "CHANNEL_HOLD" and hold["Unique-ID"] == uuid
    assert hold["Event-Calling-Function"] == "switch_ivr_hold"
    assert raw.reply(f"api uuid_hold off {uuid}").text == "-ERR Operation failed\n"  # loopback: never HELD
    assert raw.reply(f"api uuid_hold toggle {uuid}").text == "+OK Success\n"
    assert parse_event(raw.read_until(lambda f: f.is_event))["Event-Name"] == "CHANNEL_HOLD"
    # mod_commands.c uuid_hold_function / switch_ivr_hold_uuid: unknown uuid -> SUCCESS; no args -> both lines
    assert raw.reply("api uuid_hold 00000000-0000-0000-0000-000000000000").text == "+OK Success\n"
    assert raw.reply("api uuid_hold").text == "-USAGE: [off|toggle] <uuid> [<display>]\n-ERR Operation failed\n"
    assert raw.reply("api uuid_park nosuch").text == "-ERR No such channel!\n"
    assert raw.reply("api reloadxml").text == "+OK [Success]\n"
    assert parse_event(raw.read_until(lambda f: f.is_event))["Event-Name"] == "RELOADXML"


def test_show_counts_and_formats(raw, sim):
    assert raw.reply("api show channels count").text == "\n0 total.\n"
    parked_call(raw)
    assert raw.reply("api show channels count").text == "\n2 total.\n"
    assert raw.reply("api show calls count").text == "\n1 total.\n"
    assert json.loads(raw.reply("api show channels count as json").text) == {"row_count": 2, "rows": []}
    rows = raw.reply("api show channels as delim |").text.splitlines()
    assert rows[0].startswith("uuid|direction|created|") and rows[-1] == "2 total." and rows[-2] == ""
    assert raw.reply("api show calls count as xml").text == '<result row_count="1"></result>\n'
    tree = ET.fromstring(raw.reply("api show channels as xml").text)
    assert tree.get("row_count") == "2" and [r.get("row_id") for r in tree] == ["1", "2"]
    assert tree.find("row/name").text.startswith("loopback/9993-")
    assert raw.reply("api show channels as yaml").text == "-ERR Cannot find format yaml\n"
    assert raw.reply("api show").text.startswith("-USAGE: codec|endpoint|")
    assert raw.reply("api show nonsense").text.startswith("-USAGE: codec|endpoint|")
    assert raw.reply("api show status").text.startswith("UP ")


def test_help_lists_the_api_commands_like_mod_commands(raw):
    text = raw.reply("api help").text
    assert text.startswith("\nValid Commands:\n\n")
    rows = text.splitlines()[3:]
    assert "status,,Show current status,mod_commands" in rows
    assert "uuid_hold,[off|toggle] <uuid> [<display>],Place call on hold,mod_commands" in rows
    assert rows == sorted(rows)  # "order by name"
    assert raw.reply("api help status").text == text[len("\nValid Commands:\n\n"):]


# -- recognition: prefixes, unknown, malformed, incomplete ------------------------------------
def test_commands_match_by_prefix_like_parse_command(raw):
    real = captured_reply("events plain ALL")["headers"]["Reply-Text"]
    assert raw.reply("events plain ALL").reply_text == real == "+OK event listener enabled plain"
    assert raw.reply("EVENT json heartbeat").reply_text == "+OK event listener enabled json"
    assert raw.reply("event plain SWITCH_EVENT_API").reply_text == "+OK event listener enabled plain"
    assert raw.reply("eventually").reply_text == "-ERR no keywords supplied"
    assert raw.reply("logx").reply_text == "-ERR invalid log level"  # strncasecmp(cmd, "log", 3)
    assert raw.reply("logs 7").reply_text == "-ERR invalid log level"  # the level is "s"
    assert raw.reply("log    7").reply_text == "+OK log level 7 [7]"  # spaces skipped
    assert raw.reply("nologging").reply_text == "+OK no longer logging"  # "nolog" prefix
    assert raw.reply("noevents please").reply_text == "+OK no longer listening for events"


@pytest.mark.parametrize("line,reply", [
    ("hello", "-ERR command not found"),
    ("api", "-ERR command not found"),  # "api " with its space
    ("bgapi", "-ERR command not found"),
    ("filter", "-ERR command not found"),  # "filter " with its space
    ("filter ", "-ERR invalid syntax"),
    ("filter Event-Name", "-ERR invalid syntax"),
    ("filter delete", "-ERR invalid syntax"),
    ("filter add Event-Name", "+OK filter added. [Event-Name]=[(null)]"),
    ("event", "-ERR no keywords supplied"),
    ("event plain", "-ERR no keywords supplied"),
    ("event plain NOT_AN_EVENT", "-ERR no keywords supplied"),
    ("nixevent", "-ERR no keywords supplied"),
    ("noevents", "-ERR not listening for events"),
    ("nolog", "-ERR not loging"),  # sic
    ("log", "+OK log level  [7]"),  # no level: SWITCH_LOG_DEBUG, empty name
    ("log debug", "+OK log level debug [7]"),
    ("log err", "+OK log level err [3]"),
    ("log error", "-ERR invalid log level"),  # LEVELS has "ERR", not "ERROR"
    ("log 100", "+OK log level 100 [63]"),
    ("log 64", "-ERR invalid log level"),
    ("connect", "-ERR command not found"),  # outbound-socket only
    ("getvar foo", "-ERR command not found"),
    ("resume", "-ERR command not found"),
    ("myevents", "-ERR command not found"),  # "myevents " needs its space on an inbound socket
    ("linger 5", "-ERR not controlling a session"),
    ("nolinger", "-ERR not controlling a session"),
    ("divert_events on", "-ERR not controlling a session."),
    ("sendmsg nosuch", "-ERR invalid session id [nosuch]"),
])
def test_unknown_malformed_and_incomplete_commands(raw, line, reply):
    assert raw.reply(line).reply_text == reply


def test_unknown_api_commands(raw):
    assert raw.reply("api nosuch").text == "-ERR nosuch Command not found!\n"
    assert raw.reply("api nosuch with args").text == "-ERR nosuch Command not found!\n"
    assert raw.reply("api  status").text == "-ERR  Command not found!\n"  # the command is "" before the space
    assert raw.reply("api STATUS").text.startswith("UP ")  # api names are case-insensitive
    assert raw.reply("api module_exists").text == "-ERR no reply\n"  # empty output


def test_before_auth_only_auth_and_exit(sim):
    c = RawEslClient("127.0.0.1", sim.port)
    try:
        c.read_frame()
        assert c.reply("auth").reply_text == "-ERR command not found"  # "auth " with its space
        assert c.reply("events plain ALL").reply_text == "-ERR command not found"
        assert c.reply("userauth x@y:z").reply_text == "-ERR invalid"  # no directory user: closes
        assert c.read_frame().content_type == "text/disconnect-notice"
    finally:
        c.close()
    c = RawEslClient("127.0.0.1", sim.port)
    try:
        c.auth()
        assert c.reply("exit now").reply_text == "+OK bye"  # strncasecmp(cmd, "exit", 4)
        assert c.read_frame().content_type == "text/disconnect-notice"
    finally:
        c.close()


def test_bgapi_of_any_api_command(raw):
    raw.reply("event plain BACKGROUND_JOB")
    for command, body in (("uptime", r"\d+\n"), ("hostname", "sim"), ("nosuch x", r"-ERR nosuch Command not found!\n"),
                          ("status", r"UP .*")):
        job = raw.reply(f"bgapi {command}").headers["Job-UUID"]
        ev = parse_event(raw.read_until(lambda f: f.is_event and parse_event(f)["Job-UUID"] == job))
        assert ev["Job-Command"] == command.split()[0]
        assert re.fullmatch(body, ev.body, re.S), ev.body
    real = captured_reply("bgapi status")["headers"]
    assert UUID_RE.fullmatch(real["Job-UUID"]) and real["Reply-Text"] == f"+OK Job-UUID: {real['Job-UUID']}"


def test_every_api_command_fires_an_api_event_after_its_reply(raw):
    real = [f["event"] for f in frames() if isinstance(f.get("event"), dict) and f["event"]["Event-Name"] == "API"]
    assert {"API-Command": "module_exists", "API-Command-Argument": "mod_callcenter"}.items() <= real[5].items()
    raw.reply("event plain API")
    raw.command("api module_exists mod_sofia")
    reply = raw.read_frame()
    assert reply.content_type == "api/response"  # the listener thread sends the reply first
    ev = parse_event(raw.read_until(lambda f: f.is_event))
    assert (ev["API-Command"], ev["API-Command-Argument"]) == ("module_exists", "mod_sofia")
    assert ev["Event-Calling-Function"] == real[5]["Event-Calling-Function"] == "switch_api_execute"


# -- event xml ----------------------------------------------------------------------------
def test_event_xml_encoder_reproduces_the_captured_frames_byte_for_byte():
    xml_frames = [f for f in frames() if f["headers"].get("Content-Type") == "text/event-xml"]
    assert len(xml_frames) >= 4 and any("<body>" in f["body"] for f in xml_frames)
    for f in xml_frames:
        root = ET.fromstring(f["body"])
        headers = [(e.tag, unquote(e.text or "")) for e in root.find("headers")]
        body = root.find("body")
        text = body.text[:-2] if body is not None else None  # the closing tag's indent follows a "\n"
        assert encode_event_xml(headers, text) == f["raw"].encode()


def test_event_xml_sends_text_event_xml_with_url_encoded_values(raw):
    real = captured_reply("event xml CHANNEL_CREATE")["headers"]["Reply-Text"]
    assert raw.reply("event xml CHANNEL_CREATE BACKGROUND_JOB").reply_text == real
    raw.reply("bgapi originate {origination_uuid=aaaaaaaa-0000-4000-8000-000000000001}loopback/9993 &park()")
    got = read_events(raw, lambda f: f.content_type == "text/event-xml" and "BACKGROUND_JOB" in f.text)
    xml_frames = [f for f in got if f.content_type == "text/event-xml"]
    create = next(ET.fromstring(f.text) for f in xml_frames if "CHANNEL_CREATE" in f.text)
    assert create.tag == "event" and create.find("headers/Event-Name").text == "CHANNEL_CREATE"
    assert "%20" in create.find("headers/Event-Date-GMT").text  # values URL-encoded, like the capture
    job = ET.fromstring(xml_frames[-1].text)
    assert job.find("headers/Job-Command-Arg").text.startswith("%7Borigination_uuid%3D")
    assert job.find("body").text.startswith("+OK aaaaaaaa-0000-4000-8000-000000000001\n")
    assert int(job.find("Content-Length").text) == len(job.find("body").text[:-2].encode())
    assert raw.reply("event plain ALL").reply_text == "+OK event listener enabled plain"
    assert raw.reply("api hupall").text.startswith("+OK")


# -- filters ------------------------------------------------------------------------------
def ev(**headers):
    h = {k.replace("_", "-").lower(): v for k, v in headers.items()}
    return SimpleNamespace(get=lambda name: h.get(name.lower()))


def test_filter_rules_of_event_handler():
    answer = ev(Event_Name="CHANNEL_ANSWER", Unique_ID="u1")
    hangup = ev(Event_Name="CHANNEL_HANGUP", Unique_ID="u2")
    job = ev(Event_Name="BACKGROUND_JOB")
    assert filters_pass([("Event-Name", "CHANNEL_ANSWER")], answer)
    assert not filters_pass([("Event-Name", "CHANNEL_ANSWER")], hangup)
    assert filters_pass([("event-name", "channel_answer")], answer)  # names and values case-insensitive
    both = [("Event-Name", "CHANNEL_ANSWER"), ("Event-Name", "CHANNEL_HANGUP")]
    assert filters_pass(both, answer) and filters_pass(both, hangup) and not filters_pass(both, job)
    assert filters_pass([("Unique-ID", "u2")], hangup) and not filters_pass([("Unique-ID", "u2")], job)
    regex = [("Event-Name", "/^CHANNEL_(ANSWER|HANGUP)$/")]
    assert filters_pass(regex, answer) and filters_pass(regex, hangup) and not filters_pass(regex, job)
    assert filters_pass([("Event-Name", "/answer/i")], answer)
    assert not filters_pass([("Event-Name", "/answer/")], answer)
    assert not filters_pass([("Event-Name", "/CHANNEL")], answer)  # no closing '/': an error, no match
    drop_u1 = [("Event-Name", "/^CHANNEL_/"), ("Unique-ID", "-u1")]
    assert filters_pass(drop_u1, hangup) and not filters_pass(drop_u1, answer)
    assert not filters_pass([("Unique-ID", "-u1")], hangup)  # only exclusions: nothing is let in
    assert not filters_pass([("Event-Name", "/^CHANNEL_/"), ("Event-Name", "-channel_answer")], answer)
    # the regex test looks at the raw value's first character: "-/x/" compares the text "/x/"
    assert filters_pass([("Event-Name", "/^CHANNEL_/"), ("Event-Name", "-/CHANNEL_ANSWER/")], answer)


def test_filter_add_and_delete_over_the_socket(raw):
    real_add = captured_reply("filter Event-Name CHANNEL_ANSWER")["headers"]["Reply-Text"]
    real_del = captured_reply("filter delete Event-Name CHANNEL_ANSWER")["headers"]["Reply-Text"]
    raw.reply("event plain ALL")
    assert raw.reply("filter Event-Name CHANNEL_ANSWER").reply_text == real_add
    assert raw.reply("filter add Event-Name CHANNEL_HANGUP").reply_text == \
        "+OK filter added. [Event-Name]=[CHANNEL_HANGUP]"
    raw.reply("bgapi originate loopback/9990 &park()")  # answers, hangs up after 1 s (0.05 s here)
    got = read_events(raw, lambda f: f.is_event and parse_event(f)["Event-Name"] == "CHANNEL_HANGUP", timeout=10)
    names = {parse_event(f)["Event-Name"] for f in got if f.is_event}
    assert names == {"CHANNEL_ANSWER", "CHANNEL_HANGUP"}  # no BACKGROUND_JOB, API, CHANNEL_STATE ...
    assert raw.reply("filter delete Event-Name CHANNEL_ANSWER").reply_text == real_del
    assert raw.reply("filter delete Event-Name").reply_text == "+OK filter deleted. [Event-Name][]"
    assert raw.reply("filter Unique-ID x").reply_text == "+OK filter added. [Unique-ID]=[x]"
    assert raw.reply("filter delete all").reply_text == "+OK filter deleted. [all][]"
    raw.command("api status")  # no filters left: everything flows again, API events too
    raw.read_until(lambda f: f.is_event and parse_event(f)["Event-Name"] == "API")


# -- log / nolog --------------------------------------------------------------------------
def test_log_line_format_matches_the_capture():
    real = [f for f in frames() if f["headers"].get("Content-Type") == "log/data"]
    new_channel = next(f for f in real if "New Channel" in f["body"])
    assert re.findall(r"^([\w-]+):", new_channel["raw"].split("\n\n")[0], re.M) == LOG_HEADERS
    line = SimLogLine(5, "switch_channel.c", "switch_channel_set_name", 1142,
                      "New Channel loopback/9990-a [696bf33e-02fa-49f0-97eb-b777636bb3ab]",
                      uuid="696bf33e-02fa-49f0-97eb-b777636bb3ab", ts=1796545986.046215, idle_cpu=91.4)
    ours = line.frame().decode()
    ours_head, real_head = ours.split("\n\n")[0], new_channel["raw"].split("\n\n")[0]
    assert ours_head == real_head
    stamp = re.compile(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} ")
    assert stamp.sub("", ours.split("\n\n", 1)[1]) == stamp.sub("", new_channel["body"])
    clean = next(f for f in real if f["headers"]["Text-Channel"] == "1" and "EXECUTE" in f["body"])
    assert clean["body"] == SimLogLine(6, "f.c", "f", 1, clean["body"], channel=1, ts=0).text


def _log_key(frame_headers: dict, body: str) -> tuple:
    text = re.sub(r"^\d{4}-\d\d-\d\d \d\d:\d\d:\d\d\.\d{6} \d+\.\d\d% ", "", body)
    text = re.sub(r"Session \d+ ", "Session N ", UUID_RE.sub("U", text))
    return tuple(frame_headers[h] for h in LOG_HEADERS[2:7]) + (text,)


def test_log_streams_log_data_until_nolog(raw, sim):
    real = captured_reply("log 7")["headers"]["Reply-Text"]
    assert raw.reply("log 7").reply_text == real == "+OK log level 7 [7]"
    raw.reply("event plain CHANNEL_DESTROY")
    uuid = raw.reply("api originate loopback/9990 &park()").text.split()[1].strip()
    got = read_events(raw, lambda f: f.content_type == "log/data" and "Close Channel" in f.text
                      and "9990-a" in f.text, timeout=10)
    logs = [f for f in got if f.content_type == "log/data"]
    for f in logs:
        assert list(f.raw_headers) == LOG_HEADERS
        assert int(f.raw_headers["Content-Length"]) == len(f.body)
        assert f.raw_headers["User-Data"] == "" or UUID_RE.fullmatch(f.raw_headers["User-Data"])
    assert any(f"New Channel loopback/9990-a [{uuid}]" in f.text for f in logs)
    # the same call on the real switch: every NOTICE/INFO line, with level, channel, file, function
    # and line, except the two the sim does not log (Rename Channel, Flipping CID)
    expected = {_log_key(f["headers"], f["body"]) for f in frames()
                if f["headers"].get("Content-Type") == "log/data" and f["headers"]["Log-Level"] in ("5", "6")
                and "Rename Channel" not in f["body"] and "Flipping CID" not in f["body"]}
    ours = {_log_key(f.raw_headers, f.text) for f in logs}
    assert len(expected) == 15 and expected - ours == set()
    assert raw.reply("log 5").reply_text == "+OK log level 5 [5]"  # NOTICE and above only
    uuid2 = raw.reply("api originate loopback/9990 &park()").text.split()[1].strip()
    got = read_events(raw, lambda f: f.content_type == "log/data" and "Close Channel" in f.text
                      and f.raw_headers["User-Data"] == uuid2, timeout=10)
    second = [f for f in got if f.content_type == "log/data" and f.raw_headers["User-Data"] == uuid2]
    assert len(second) >= 3 and all(f.raw_headers["Log-Level"] == "5" for f in second)  # no INFO EXECUTE lines
    real_nolog = captured_reply("nolog")["headers"]["Reply-Text"]
    assert raw.reply("nolog").reply_text == real_nolog == "+OK no longer logging"
    raw.reply("api originate loopback/9990 &park()")
    got = read_events(raw, lambda f: f.is_event and parse_event(f)["Event-Name"] == "CHANNEL_DESTROY", timeout=10)
    assert not [f for f in got if f.content_type == "log/data"]
    assert log_str2level("warning") == 4 and log_str2level("+3") == 3 and log_str2level("-2") == 0


# -- fs_cli and greenswitch ------------------------------------------------------------------
def test_fs_cli_start_up_sequence(sim):
    """What libs/esl/fs_cli.c main() sends with the built-in profile, and what it makes of the replies."""
    c = RawEslClient("127.0.0.1", sim.port)
    try:
        assert c.read_frame().content_type == "auth/request"  # esl_connect_timeout
        c.send("auth ClueCon\n\n")
        assert c.read_frame().reply_text == "+OK accepted"
        c.send("api switchname\n\n")  # the prompt: "freeswitch@<switchname>> "
        switchname = c.read_frame().text
        c.send("api hostname\n\n")
        hostname = c.read_frame().text
        assert f"freeswitch@{switchname}> " == f"freeswitch@{sim.config.hostname}> " and hostname == switchname
        c.send("log \n\n")  # snprintf("log %s\n\n", profile->loglevel) with the built-in profile's ""
        log_reply = c.read_frame().reply_text  # printed after the banner
        assert log_reply == "+OK log level  [7]"
        # a typed command: "api %s\nconsole_execute: true\n\n"
        c.send("api show channels count\nconsole_execute: true\n\n")
        assert c.read_until(lambda f: f.content_type == "api/response").text == "\n0 total.\n"
        c.send("api status;;hostname\nconsole_execute: true\n\n")
        text = c.read_until(lambda f: f.content_type == "api/response").text
        assert text.startswith("UP ") and text.endswith(f"8192K\n{sim.config.hostname}")
        c.send("api nosuch thing\nconsole_execute: true\n\n")  # the whole line in the error
        assert c.read_until(lambda f: f.content_type == "api/response").text == "-ERR nosuch thing Command not found!\n"
        for line in ("/event plain ALL", "/filter Unique-ID x", "/nolog", "/noevents"):  # fs_cli's /commands
            assert c.reply(line[1:]).reply_text.startswith("+OK"), line
        c.send("exit\n\n")
        assert c.read_until(lambda f: f.content_type == "command/reply").reply_text == "+OK bye"
    finally:
        c.close()


def test_greenswitch_drives_the_new_commands(sim):
    conn = InboundESL("127.0.0.1", sim.port, sim.password, timeout=5)
    conn.connect()
    logs: list = []
    conn.register_handle("log", logs.append)
    try:
        assert conn.send("api switchname").data == sim.config.hostname
        status = json.loads(conn.send('api json {"command":"status","data":""}').data)
        assert status["status"] == "success"
        assert conn.send("events plain CHANNEL_HOLD").headers["Reply-Text"] == "+OK event listener enabled plain"
        assert conn.send("log 6").headers["Reply-Text"] == "+OK log level 6 [6]"
        uuid = conn.send("api originate loopback/9993 &park()").data.split()[1]
        assert conn.send(f"api uuid_hold {uuid}").data == "+OK Success\n"
        assert wait_until(lambda: any(f"New Channel loopback/9993-a [{uuid}]" in e.data for e in logs), 5)
        assert all(e.headers["Log-Level"] in ("5", "6") for e in logs)
        assert conn.send("nolog").headers["Reply-Text"] == "+OK no longer logging"
        assert conn.send("api hupall").data.startswith("+OK")
    finally:
        conn.stop()
    gevent.sleep(0)


def test_uuid_hold_plays_hold_music_to_the_bridged_partner(raw, sim):
    """switch_ivr_hold: with hold_music set (vars.xml: local_stream://moh) the partner gets a broadcast."""
    a, b = parked_call(raw), parked_call(raw)
    raw.reply("event plain CHANNEL_BRIDGE CHANNEL_EXECUTE CHANNEL_HOLD")
    assert raw.reply(f"api uuid_bridge {a} {b}").text == f"+OK {b}\n"
    raw.read_until(lambda f: f.is_event and parse_event(f)["Event-Name"] == "CHANNEL_BRIDGE")
    assert raw.reply(f"api uuid_hold {a}").text == "+OK Success\n"
    got = [parse_event(f) for f in read_events(raw, lambda f: f.is_event and parse_event(f)["Event-Name"] ==
                                               "CHANNEL_EXECUTE" and parse_event(f)["Unique-ID"] == b) if f.is_event]
    assert (got[0]["Event-Name"], got[0]["Unique-ID"]) == ("CHANNEL_HOLD", a)
    assert (got[-1]["Application"], got[-1]["Application-Data"]) == ("playback", "local_stream://moh")
    raw.reply("api hupall")


def test_answer_of_an_outbound_sofia_leg_is_logged_where_sofia_marks_it(raw, sim):
    raw.reply("log notice")
    uuid = raw.reply("api originate sofia/gateway/gw/15551230000 &park()").text.split()[1].strip()
    line = raw.read_until(lambda f: f.content_type == "log/data" and "has been answered" in f.text, timeout=10)
    assert line.raw_headers["User-Data"] == uuid
    assert line.raw_headers["Log-File"] == "sofia.c" and line.raw_headers["Log-Func"] == "sofia_handle_sip_i_state"
    raw.reply("api hupall")


def test_outbound_socket_without_full_stops_at_the_single_channel_cut(sim):
    """parse_command: on an outbound socket without `full` nothing after `sendmsg` in its order of
    checks is allowed (not api, log, linger, event ...); filter, myevents, getvar, resume are."""
    from gevent.queue import Queue
    from gevent.server import StreamServer

    accepted: Queue = Queue()
    server = StreamServer(("127.0.0.1", 0), lambda sock, addr: (accepted.put(sock), gevent.sleep(30)))
    server.start()
    try:
        sim.dialplan = {**sim.dialplan, "7003": [("socket", f"127.0.0.1:{server.server_port} async")]}
        uuid = sim.inbound_call("7003", "15551230007")
        c = RawEslClient("127.0.0.1", 0, sock=accepted.get(timeout=5))
        try:
            c.command("connect")
            assert c.read_frame().headers["Control"] == "single-channel"
            for line in ("api status", "bgapi status", "log 7", "linger 5", "event plain ALL", "noevents"):
                assert c.reply(line).reply_text == "-ERR command not found", line
            assert c.reply("filter Unique-ID " + uuid).reply_text == f"+OK filter added. [Unique-ID]=[{uuid}]"
            assert c.reply("myevents").reply_text == "+OK Events Enabled"
            assert c.reply("getvar uuid").reply_text == uuid
            assert c.reply("getvar no_such_variable").reply_text == "-ERR command not found"  # empty reply
            assert c.reply("resume").reply_text == "+OK"
        finally:
            c.close()
        assert wait_until(lambda: uuid not in sim.channels, 7)
    finally:
        server.stop(timeout=1)

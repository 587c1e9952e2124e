"""Everything in freeswitch/ must be config a real FreeSWITCH 1.10 accepts.

FreeSWITCH itself cannot be installed here, so this checks what can be
checked without it: every XML file is well-formed, has a root FreeSWITCH
knows (configuration / include / document / extension / context / profile /
gateway / user / domain), and every dialplan action names an application that
ships with FreeSWITCH 1.10 (mod_dptools, mod_commands' apps, mod_conference,
mod_callcenter, mod_fifo, mod_event_socket, mod_sndfile ...).
"""
from __future__ import annotations

import xml.etree.ElementTree as ET
from pathlib import Path

import pytest

FS_DIR = Path(__file__).resolve().parent.parent / "freeswitch"
XML_FILES = sorted(FS_DIR.rglob("*.xml"))

KNOWN_ROOTS = {"configuration", "include", "document", "extension", "context", "profile",
               "gateway", "user", "domain", "section", "group"}

# Applications of a stock FreeSWITCH 1.10 build (mod_dptools, mod_conference,
# mod_callcenter, mod_fifo, mod_event_socket, mod_voicemail, mod_valet_parking, mod_db, mod_hash).
KNOWN_APPS = {
    "answer", "pre_answer", "ring_ready", "hangup", "playback", "play_and_get_digits", "bridge",
    "park", "transfer", "set", "export", "unset", "multiset", "sleep", "socket", "conference",
    "callcenter", "fifo", "voicemail", "record", "record_session", "stop_record_session",
    "eavesdrop", "three_way", "intercept", "log", "info", "echo", "delay_echo", "respond",
    "set_profile_var", "hash", "db", "limit", "lua", "valet_park", "endless_playback",
    "loop_playback", "gentones", "playback_terminators", "read", "say", "speak", "phrase",
    "sched_hangup", "sched_transfer", "set_zombie_exec", "hold", "unhold", "att_xfer",
    "deflect", "redirect", "send_display", "send_dtmf", "start_dtmf", "stop_dtmf",
    "event", "execute_extension", "wait_for_answer", "wait_for_silence", "detect_speech",
    "bind_meta_app", "bind_digit_action", "clear_digit_action", "digit_action_set_realm",
    "set_global", "set_user", "user_data", "push", "unshift", "jitterbuffer", "displace_session",
    "uuid_record", "originate", "mkdir", "rename", "system", "bgsystem", "group", "export_vars",
}


def test_there_is_config_to_check():
    assert XML_FILES, "freeswitch/ holds no XML config"


@pytest.mark.parametrize("path", XML_FILES, ids=lambda p: str(p.relative_to(FS_DIR)))
def test_xml_is_well_formed_with_known_root(path: Path):
    root = ET.parse(path).getroot()
    assert root.tag in KNOWN_ROOTS, f"{path}: unexpected root <{root.tag}>"


@pytest.mark.parametrize("path", XML_FILES, ids=lambda p: str(p.relative_to(FS_DIR)))
def test_dialplan_actions_use_real_applications(path: Path):
    root = ET.parse(path).getroot()
    for action in root.iter():
        if action.tag in ("action", "anti-action"):
            app = action.get("application")
            assert app, f"{path}: <{action.tag}> without application"
            assert app in KNOWN_APPS, f"{path}: unknown dialplan application {app!r}"


def test_event_socket_listens_where_workers_connect():
    root = ET.parse(FS_DIR / "autoload_configs" / "event_socket.conf.xml").getroot()
    params = {p.get("name"): p.get("value") for p in root.iter("param")}
    assert root.get("name") == "event_socket.conf"
    assert params["listen-port"] == "8021"
    assert params["password"]

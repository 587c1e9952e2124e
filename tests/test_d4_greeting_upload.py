"""D4: an agent can upload a WAV as the greeting the worker plays to both legs."""
from __future__ import annotations

import io
import wave

import pytest
from click.testing import CliRunner

from controller.cli import main
from esl_dialer.greetings import GreetingError, check_wav, install_greeting


def make_wav(seconds: float = 2.0, rate: int = 8000, width: int = 2, channels: int = 1) -> bytes:
    buf = io.BytesIO()
    with wave.open(buf, "wb") as wav:
        wav.setnchannels(channels)
        wav.setsampwidth(width)
        wav.setframerate(rate)
        wav.writeframes(b"\x00" * int(seconds * rate) * width * channels)
    return buf.getvalue()


def test_d4_upload_installs_the_greeting_the_worker_plays(tmp_path):
    info = install_greeting(make_wav(3.0, 16000), "1001", tmp_path / "greetings")
    assert info.path == tmp_path / "greetings" / "1001.wav"
    assert info.seconds == pytest.approx(3.0) and info.rate == 16000
    assert info.path.read_bytes() == make_wav(3.0, 16000)
    assert [p.name for p in info.path.parent.iterdir()] == ["1001.wav"]  # no temporary file left


def test_d4_upload_replaces_an_older_greeting(tmp_path):
    install_greeting(make_wav(2.0), "1001", tmp_path)
    install_greeting(make_wav(4.0), "1001", tmp_path)
    assert check_wav((tmp_path / "1001.wav").read_bytes())[0] == pytest.approx(4.0)


@pytest.mark.parametrize("data, reason", [
    (b"RIFF....WAVEjunk", "not a PCM WAV"),
    (b"", "not a PCM WAV"),
    (make_wav(width=1), "16-bit"),
    (make_wav(rate=11025), "sample rate"),
    (make_wav(seconds=0.1), "must last"),
    (make_wav(seconds=45), "must last"),
])
def test_d4_bad_greeting_files_are_refused_with_the_reason(tmp_path, data, reason):
    with pytest.raises(GreetingError, match=reason):
        install_greeting(data, "1001", tmp_path)
    assert not (tmp_path / "1001.wav").exists()


def test_d4_agent_names_cannot_escape_the_greetings_dir(tmp_path):
    with pytest.raises(GreetingError, match="extension"):
        install_greeting(make_wav(), "../1001", tmp_path)


def test_d4_cli_upload(tmp_path):
    src = tmp_path / "hello.wav"
    src.write_bytes(make_wav(2.5))
    runner = CliRunner()
    result = runner.invoke(main, ["agent", "greeting", "upload", "--agent", "1002",
                                  "--greetings-dir", str(tmp_path / "g"), str(src)])
    assert result.exit_code == 0, result.output
    assert result.output == f"greeting for agent 1002: {tmp_path / 'g' / '1002.wav'} (2.5 s, 8000 Hz)\n"
    bad = tmp_path / "bad.wav"
    bad.write_bytes(b"not audio")
    result = runner.invoke(main, ["agent", "greeting", "upload", "--agent", "1002",
                                  "--greetings-dir", str(tmp_path / "g"), str(bad)])
    assert result.exit_code == 1
    assert "not a PCM WAV file" in result.output


def test_d4_agent_uploads_the_greeting_from_the_console(tmp_path):
    import re

    from werkzeug.security import generate_password_hash

    from esl_dialer.console import PopHub, create_console_app

    folders = {"1001": str(tmp_path / "greetings")}
    app = create_console_app(PopHub(), {"1001": generate_password_hash("pw1")}, lambda a: "idle",
                             secret_key="k", greetings_dir_of=folders.get)
    c = app.test_client()
    page = c.get("/").get_data(as_text=True)
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)
    assert c.post("/", data={"agent": "1001", "password": "pw1", "csrf": csrf}).status_code == 302
    page = c.get("/agent/1001").get_data(as_text=True)
    assert 'name="greeting"' in page
    csrf = re.search(r'name="csrf" value="([^"]+)"', page).group(1)  # a new session after login

    def upload(data: bytes, token: str = csrf, agent: str = "1001"):
        return c.post(f"/agent/{agent}/greeting", content_type="multipart/form-data",
                      data={"csrf": token, "greeting": (io.BytesIO(data), "hello.wav")})

    r = upload(make_wav(2.0), token="forged")
    assert r.status_code == 400 and "CSRF" in r.get_data(as_text=True)
    assert not (tmp_path / "greetings" / "1001.wav").exists()
    r = upload(make_wav(seconds=60))  # too long: refused with the reason, nothing written
    assert r.status_code == 400 and "must last" in r.get_data(as_text=True)
    assert not (tmp_path / "greetings" / "1001.wav").exists()
    assert upload(make_wav(2.0), agent="1002").status_code == 403  # only one's own greeting
    r = upload(make_wav(2.0))
    assert r.status_code == 302, r.get_data(as_text=True)
    assert (tmp_path / "greetings" / "1001.wav").read_bytes() == make_wav(2.0)

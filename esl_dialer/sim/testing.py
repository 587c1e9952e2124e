"""Helpers for tests that talk to the simulated switch over raw TCP.

A minimal ESL client on gevent sockets and the sans-IO codec: it sees every
frame exactly as sent (greenswitch hides some), which tests of the wire
format need.
"""
from __future__ import annotations

import time
from typing import Callable

import gevent
from gevent import socket as gsocket

from esl_dialer.esl import NEED_DATA, Frame, FrameParser


class RawEslClient:
    def __init__(self, host: str, port: int, timeout: float = 5.0, sock=None) -> None:
        self.sock = sock or gsocket.create_connection((host, port), timeout=timeout)
        self.sock.settimeout(timeout)
        self.parser = FrameParser()
        self.frames: list[Frame] = []
        self.closed = False

    def send(self, data: bytes | str) -> None:
        self.sock.sendall(data.encode() if isinstance(data, str) else data)

    def command(self, line: str) -> None:
        self.send(line + "\n\n")

    def read_frame(self, timeout: float = 5.0) -> Frame | None:
        """Next frame, or None when the peer closed the connection."""
        deadline = time.monotonic() + timeout
        while True:
            frame = self.parser.next_frame()
            if frame is not NEED_DATA:
                self.frames.append(frame)
                return frame
            if self.closed:
                return None
            remaining = deadline - time.monotonic()
            if remaining <= 0:
                raise TimeoutError("no frame within timeout")
            self.sock.settimeout(remaining)
            try:
                data = self.sock.recv(65536)
            except gsocket.timeout as err:
                raise TimeoutError("no frame within timeout") from err
            except OSError:
                data = b""
            if not data:
                self.closed = True
                self.parser.receive_data(b"")
                continue
            self.parser.receive_data(data)

    def read_until(self, pred: Callable[[Frame], bool], timeout: float = 5.0) -> Frame:
        deadline = time.monotonic() + timeout
        while True:
            frame = self.read_frame(max(0.01, deadline - time.monotonic()))
            if frame is None:
                raise ConnectionError("connection closed")
            if pred(frame):
                return frame

    def reply(self, line: str, timeout: float = 5.0) -> Frame:
        """Send a command, return its reply (skipping events that arrive first)."""
        self.command(line)
        return self.read_until(lambda f: f.content_type in ("command/reply", "api/response"), timeout)

    def auth(self, password: str = "ClueCon") -> Frame:
        greeting = self.read_frame()
        assert greeting is not None and greeting.content_type == "auth/request", greeting
        return self.reply(f"auth {password}")

    def close(self) -> None:
        try:
            self.sock.close()
        except OSError:
            pass


def wait_until(pred: Callable[[], bool], timeout: float = 5.0, step: float = 0.01) -> bool:
    """Poll ``pred`` (cooperatively) until true; False on timeout."""
    deadline = time.monotonic() + timeout
    while time.monotonic() < deadline:
        if pred():
            return True
        gevent.sleep(step)
    return pred()

"""Helpers for the servers the tests start: free ports and stopping."""

from __future__ import annotations

import socket
import subprocess
from typing import Any


class MissingPart(RuntimeError):
    """A real part the tests run against (Redis, slapd, Go, Chromium) is not
    installed: a test error, never a skip, so that CI cannot pass without
    it.  ``make install`` installs them all."""

    def __init__(self, what: str, package: str) -> None:
        super().__init__(f"{what} is not installed (apt-get install {package}, "
                         "or `make install`): the tests need it")


def free_port(host: str = "127.0.0.1") -> int:
    """A TCP port nothing listens on (at the time of asking)."""
    with socket.socket() as s:
        s.bind((host, 0))
        return int(s.getsockname()[1])


def stop_process(process: subprocess.Popen[Any], grace: float = 10) -> None:
    """SIGTERM, then SIGKILL if it has not exited within ``grace`` seconds."""
    if process.poll() is None:
        process.terminate()
        try:
            process.wait(grace)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

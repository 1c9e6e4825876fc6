"""Helpers for the servers the tests start: free ports and stopping."""

from __future__ import annotations

import socket
import subprocess
from typing import Any


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

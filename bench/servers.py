"""A private Redis for a benchmark: no persistence, on a free port."""

from __future__ import annotations

import subprocess
import tempfile

from tests.processes import free_port


def start_redis() -> tuple[int, subprocess.Popen[bytes]]:
    """The port and process of a new Redis (stop it with stop_process)."""
    directory = tempfile.mkdtemp(prefix="vmpoolerd-bench-")
    port = free_port()
    process = subprocess.Popen(["redis-server", "--port", str(port), "--bind", "127.0.0.1",
                                "--save", "", "--appendonly", "no", "--dir", directory],
                               stdout=subprocess.DEVNULL)
    return port, process

"""The real daemon as tests start it: a twistd process of its own."""

from __future__ import annotations

import os
import resource
import socket
import subprocess
import sys

from twisted.trial.unittest import TestCase

from .processes import stop_process
from .waiting import until

TWISTD = os.path.join(os.path.dirname(sys.executable), "twistd")


class DaemonCase(TestCase):
    """Starts twistd processes (stopped when the test ends)."""

    def start(self, text: str, *options: str, descriptors: int | None = None
              ) -> subprocess.Popen[bytes]:
        path = self.mktemp()
        with open(path, "w") as f:
            f.write(text)
        self.log = self.mktemp()
        process = subprocess.Popen(
            [TWISTD, "-n", "--logfile", self.log, "--pidfile", "", "vmpoolerd", "--config", path,
             *options],
            stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            env={**os.environ, "VSPHERE_PASSWORD": "vsphere-secret"},
            preexec_fn=None if descriptors is None else lambda: resource.setrlimit(
                resource.RLIMIT_NOFILE, (descriptors, descriptors)))
        self.addCleanup(stop_process, process, 0)
        return process

    async def wait_listening(self, process: subprocess.Popen[bytes], port: int) -> None:
        def listening() -> bool:
            self.assertIsNone(process.poll(), "the daemon exited")
            try:
                socket.create_connection(("127.0.0.1", port), 0.1).close()
            except OSError:
                return False
            return True
        await until("the daemon to listen", listening, seconds=10)

    async def wait_exit(self, process: subprocess.Popen[bytes]) -> int:
        await until("the daemon to stop", lambda: process.poll() is not None, seconds=10)
        return process.returncode

"""
A simulated vCenter for the tests: govmomi's simulator, driven by
``tests/vcsim/main.go``.

:func:`start_vcsim` builds the binary when it is missing or older than its
source (``tests/vcsim/build.sh``, offline, about 30 s the first time),
writes the inventory to a temp dir, starts the simulator on 127.0.0.1 with
an ephemeral port and waits for its ``VCSIM_URL=`` line.  Pass the test
case to have it stopped (SIGTERM) on cleanup.  Without ``go`` or the
govmomi sources (Debian: ``golang-go golang-github-vmware-govmomi-dev``)
the tests fail.

The inventory schema is :data:`DEFAULT_INVENTORY`'s (see main.go): any
user name and password log in; the datastore is ``LocalDS_0``; hosts are
named ``DC0_C0_H<i>`` whatever the cluster is called.
"""

from __future__ import annotations

import copy
import json
import os
import shutil
import signal
import subprocess
import tempfile
from dataclasses import dataclass
from typing import Any
from urllib.parse import urlsplit

from .processes import MissingPart, stop_process
from .waiting import wait_for

VCSIM_DIR = os.path.join(os.path.dirname(os.path.abspath(__file__)), "vcsim")
BINARY = os.path.join(VCSIM_DIR, "vcsim")
SOURCE = os.path.join(VCSIM_DIR, "main.go")
BUILD = os.path.join(VCSIM_DIR, "build.sh")
GOVMOMI = "/usr/share/gocode/src/github.com/vmware/govmomi/simulator"

#: A datacenter with a 3-host cluster, a resource pool, two templates (a
#: real template and a plain VM) and two pool folders, one nested.
DEFAULT_INVENTORY: dict[str, Any] = {
    "datacenter": "dc1",
    "cluster": "cluster1",
    "hosts": 3,
    "resource_pools": ["pooler"],
    "templates": [
        {"path": "Templates/debian/debian-7-x86_64", "template": True},
        {"path": "Templates/centos-7-plain", "template": False},
    ],
    "folders": ["Pools/debian-7", "Pools/nested/centos-7"],
    "vms": [],
    "clone_delay_ms": 0,
    "boot_delay_ms": 0,
    "guest_ip": "127.0.0.1",
}

USERNAME = "vmpooler"
PASSWORD = "secret"


def inventory(**changes: Any) -> dict[str, Any]:
    """:data:`DEFAULT_INVENTORY` with some keys replaced."""
    inv = copy.deepcopy(DEFAULT_INVENTORY)
    inv.update(changes)
    return inv


def build_vcsim() -> str:
    """The path of an up-to-date simulator binary; MissingPart if it cannot be built."""
    if os.path.exists(BINARY) and os.path.getmtime(BINARY) >= max(
        os.path.getmtime(SOURCE), os.path.getmtime(BUILD)
    ):
        return BINARY
    if shutil.which("go") is None:
        raise MissingPart("go, for the vSphere simulator,", "golang-go")
    if not os.path.isdir(GOVMOMI):
        raise MissingPart(f"govmomi ({GOVMOMI}), for the vSphere simulator,",
                          "golang-github-vmware-govmomi-dev")
    result = subprocess.run(["sh", BUILD], capture_output=True, text=True, timeout=600)
    if result.returncode != 0:
        raise RuntimeError(
            f"building the vSphere simulator failed:\n{result.stdout}{result.stderr}"
        )
    return BINARY


@dataclass
class VcsimServer:
    url: str  # https://127.0.0.1:PORT/sdk
    host: str
    port: int
    directory: str  # inventory.json, stdout, stderr (the simulator's log)
    process: subprocess.Popen[bytes]
    username: str = USERNAME
    password: str = PASSWORD
    hung: bool = False
    toggles: int = 0

    def log(self) -> str:
        with open(os.path.join(self.directory, "stderr"), errors="replace") as f:
            return f.read()

    def client(self, **kwargs: Any):
        """A :class:`vmpoolerd.vsphere.VsphereClient` for this simulator."""
        from vmpoolerd.vsphere.client import VsphereClient

        kwargs.setdefault("insecure", True)
        kwargs.setdefault("timeout", 10)
        return VsphereClient(self.host, self.username, self.password, port=self.port, **kwargs)

    def _toggle_hang(self) -> None:
        self.process.send_signal(signal.SIGUSR1)
        self.hung = not self.hung
        self.toggles += 1
        # The signal is handled asynchronously; the log tells when it was.
        wait_for("the simulator to take SIGUSR1",
                 lambda: self.log().count("vcsim: hang mode") >= self.toggles,
                 seconds=5, interval=0.01)

    def end_sessions(self) -> int:
        """End every session but this call's own, as vCenter ends one that
        idled past its life (SessionManager.TerminateSession: the next call
        of its client is refused NotAuthenticated); how many were ended.
        No test waits out the simulator's once-a-second idle sweep."""
        from pyVim.connect import Disconnect, SmartConnect

        si = SmartConnect(host=self.host, port=self.port, user=self.username,
                          pwd=self.password, disableSslCertValidation=True)
        try:
            manager = si.content.sessionManager
            mine = manager.currentSession.key
            others = [s.key for s in manager.sessionList if s.key != mine]
            if others:
                manager.TerminateSession(others)
            return len(others)
        finally:
            Disconnect(si)

    def hang(self) -> None:
        """From now on requests block (the connection is accepted, no answer)."""
        if not self.hung:
            self._toggle_hang()

    def resume(self) -> None:
        """Answer again, blocked requests included."""
        if self.hung:
            self._toggle_hang()

    def stop(self) -> None:
        stop_process(self.process)
        shutil.rmtree(self.directory, ignore_errors=True)


def start_vcsim(
    inv: dict[str, Any] | None = None,
    testcase: Any = None,
    *,
    clone_delay_ms: int | None = None,
    boot_delay_ms: int | None = None,
    guest_ip: str | None = None,
    guest_hostname: str | None = None,
    no_hostname: bool | None = None,
    session_idle: str | None = None,
    startup_timeout: float = 30.0,
) -> VcsimServer:
    """Start a simulator with ``inv`` (default :data:`DEFAULT_INVENTORY`).

    Keyword arguments override the inventory's delays.  With ``testcase``,
    the simulator is stopped by its cleanup.
    """
    binary = build_vcsim()
    inv = copy.deepcopy(DEFAULT_INVENTORY if inv is None else inv)
    for key, value in (
        ("clone_delay_ms", clone_delay_ms),
        ("boot_delay_ms", boot_delay_ms),
        ("guest_ip", guest_ip),
        ("guest_hostname", guest_hostname),
        ("no_hostname", no_hostname),
        ("session_idle", session_idle),
    ):
        if value is not None:
            inv[key] = value
    directory = tempfile.mkdtemp(prefix="vmpoolerd-vcsim-")
    path = os.path.join(directory, "inventory.json")
    with open(path, "w") as f:
        json.dump(inv, f)
    stdout, stderr = os.path.join(directory, "stdout"), os.path.join(directory, "stderr")
    with open(stdout, "wb") as out, open(stderr, "wb") as err:
        process = subprocess.Popen(
            [binary, "-listen", "127.0.0.1:0", "-inventory", path],
            stdin=subprocess.DEVNULL,
            stdout=out,
            stderr=err,
            cwd=directory,
        )

    def started() -> VcsimServer | None:
        with open(stdout) as f:
            for line in f:
                if line.startswith("VCSIM_URL=") and line.endswith("\n"):
                    url = line.strip().split("=", 1)[1]
                    parts = urlsplit(url)
                    return VcsimServer(
                        url, parts.hostname or "", parts.port or 443, directory, process
                    )
        if process.poll() is not None:
            with open(stderr, errors="replace") as f:
                log = f.read()
            raise RuntimeError(f"the vSphere simulator exited ({process.returncode}):\n{log}")
        return None

    try:
        server: VcsimServer = wait_for("the vSphere simulator to start", started,
                                       seconds=startup_timeout, interval=0.01)
    except BaseException:
        process.kill()
        process.wait()
        shutil.rmtree(directory, ignore_errors=True)
        raise
    if testcase is not None:
        testcase.addCleanup(server.stop)
    return server

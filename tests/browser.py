"""
Debian's ``chromium``, headless, for the dashboard's browser tests.

Each call is one chromium process (``--dump-dom`` or ``--screenshot``)
run in a thread, so that the reactor keeps serving the page while the
browser loads it.  ``--virtual-time-budget`` lets the page's scripts run
(and fetch) for that many milliseconds of virtual time before the DOM is
read.  The process group is killed if it outlives its timeout.
"""

from __future__ import annotations

import os
import shutil
import signal
import subprocess
import tempfile
from html.parser import HTMLParser

from twisted.internet.threads import deferToThread

from .processes import MissingPart

FLAGS = [
    "--headless", "--no-sandbox", "--disable-gpu", "--disable-background-networking",
    "--disable-component-update", "--disable-sync", "--no-first-run",
    "--disable-dev-shm-usage", "--hide-scrollbars", "--mute-audio",
]


def chromium() -> str:
    path = shutil.which("chromium")
    if path is None:
        raise MissingPart("chromium", "chromium")
    return path


def _run(args: list[str], timeout: float) -> str:
    with tempfile.TemporaryDirectory(prefix="vmpoolerd-chromium-") as profile:
        process = subprocess.Popen(
            [chromium(), *FLAGS, f"--user-data-dir={profile}", *args],
            stdin=subprocess.DEVNULL, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
            start_new_session=True)
        try:
            out, err = process.communicate(timeout=timeout)
        except subprocess.TimeoutExpired:
            os.killpg(process.pid, signal.SIGKILL)
            process.communicate()
            raise RuntimeError(f"chromium took more than {timeout} s: {args}") from None
        finally:
            try:
                os.killpg(process.pid, signal.SIGKILL)  # helpers left behind, if any
            except ProcessLookupError:
                pass
    if process.returncode != 0:
        raise RuntimeError(f"chromium exited {process.returncode}: "
                           f"{err.decode(errors='replace')[-2000:]}")
    return out.decode("utf-8", errors="replace")


async def _in_thread(args: list[str], timeout: float) -> str:
    chromium()  # MissingPart here, not in the thread
    return await deferToThread(_run, args, timeout)


async def dump_dom(url: str, budget_ms: int = 3000, timeout: float = 60) -> str:
    """The DOM of ``url`` once its scripts have had ``budget_ms`` to run."""
    return await _in_thread([f"--virtual-time-budget={budget_ms}", "--dump-dom", url],
                            timeout)


async def screenshot(url: str, path: str, width: int = 1280, height: int = 800,
                     budget_ms: int = 3000, timeout: float = 60) -> None:
    """A PNG of ``url`` at ``path``."""
    await _in_thread([f"--virtual-time-budget={budget_ms}", f"--screenshot={path}",
                      f"--window-size={width},{height}", url], timeout)
    if not os.path.getsize(path):
        raise RuntimeError(f"chromium wrote no screenshot to {path}")


class Cards(HTMLParser):
    """
    The dashboard's pool cards in a dumped DOM: ``cards[pool][field]`` is
    the text of the card's element of class ``field`` (``name``, ``ready``,
    ``size``, ``running``, ``explain``).
    """

    FIELDS = ("name", "ready", "size", "running", "explain")

    def __init__(self, html: str) -> None:
        super().__init__()
        self.cards: dict[str, dict[str, str]] = {}
        self.charts: dict[str, int] = {}  # paths drawn in each card's chart
        self._pool: str | None = None
        self._field: str | None = None
        self.feed(html)
        self.close()

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        a = dict(attrs)
        classes = (a.get("class") or "").split()
        if "pool" in classes and a.get("data-pool") is not None:
            self._pool = a["data-pool"]
            self.cards[self._pool or ""] = {}
        elif self._pool is not None:
            field = next((c for c in classes if c in self.FIELDS), None)
            if field is not None:
                self._field = field
                self.cards[self._pool][field] = ""
            if tag == "path":
                self.charts[self._pool] = self.charts.get(self._pool, 0) + 1

    def handle_endtag(self, tag: str) -> None:
        if tag == "article":
            self._pool = None
        self._field = None

    def handle_data(self, data: str) -> None:
        if self._pool is not None and self._field is not None:
            self.cards[self._pool][self._field] += data

"""
Reading vSphere: properties through the session's PropertyCollector, and
task waits (which are property reads too).

No server-side view or filter is ever created: reads are
``RetrievePropertiesEx`` calls with a traversal spec, so nothing can leak.
Tasks are waited for by reading only ``info.state`` and ``info.error``
(plus ``info.result`` where needed): pyvmomi 9 cannot deserialise the whole
``info`` of some tasks (``RevertToSnapshot_Task``).
"""

from __future__ import annotations

import time
from typing import Any, Callable, Sequence

from pyVmomi import vmodl

from .errors import fault_message
from .pyvmomi_adapter import moid
from .session import Session
from .types import NotFound, TaskFailed, VsphereTimeout

__all__ = ["Collector", "PropertyCollector"]

PropertyCollector = vmodl.query.PropertyCollector

FIRST_POLL = 0.02  # seconds from a task's start to its first read


class Collector:
    """Property reads and task waits on one session."""

    def __init__(self, session: Session, task_timeout: float,
                 sleep: Callable[[float], None] = time.sleep) -> None:
        self._session = session
        self.task_timeout = task_timeout
        self._sleep = sleep

    def retrieve(self, spec: PropertyCollector.FilterSpec) -> list[Any]:
        """RetrievePropertiesEx, and its continuations: every object found."""
        collector = self._session.content.propertyCollector
        # no maxObjects: as many as vCenter allows
        result = collector.RetrievePropertiesEx(specSet=[spec],
                                                options=PropertyCollector.RetrieveOptions())
        objects: list[Any] = []
        while result is not None:
            objects.extend(result.objects)
            if not result.token:
                break
            result = collector.ContinueRetrievePropertiesEx(token=result.token)
        return objects

    def collect(self, obj: Any, kind: type, paths: Sequence[str],
                hop: tuple[type, str] | None = None, recurse: bool = False,
                ) -> list[tuple[Any, dict[str, Any]]]:
        """In one round trip: properties ``paths`` of ``obj`` itself or, with
        ``hop`` (a type and a property of it), of the ``kind`` objects that
        property of ``obj`` refers to; ``recurse`` follows the hop again from
        there (folders in folders)."""
        select = []
        if hop is not None:
            again = [PropertyCollector.SelectionSpec(name="hop")] if recurse else []
            select = [PropertyCollector.TraversalSpec(name="hop", type=hop[0], path=hop[1],
                                                      selectSet=again)]
        spec = PropertyCollector.FilterSpec(
            objectSet=[PropertyCollector.ObjectSpec(obj=obj, skip=hop is not None,
                                                    selectSet=select)],
            propSet=[PropertyCollector.PropertySpec(type=kind, pathSet=list(paths))],
        )
        return [(o.obj, {p.name: p.val for p in o.propSet or []}) for o in self.retrieve(spec)]

    def props(self, obj: Any, *paths: str) -> dict[str, Any]:
        """Properties ``paths`` of ``obj`` (one round trip)."""
        found = self.collect(obj, type(obj), paths)
        if not found:
            raise NotFound(f"{obj} no longer exists")
        return found[0][1]

    def snapshot_tree(self, vm: Any) -> list[Any]:
        """The VM's snapshot tree nodes, depth first (one round trip)."""
        info = self.props(vm, "snapshot").get("snapshot")
        nodes: list[Any] = []
        todo = list(info.rootSnapshotList or []) if info is not None else []
        while todo:
            node = todo.pop(0)
            nodes.append(node)
            todo[0:0] = list(node.childSnapshotList or [])
        return nodes

    def wait(self, task: Any, result: bool = False) -> Any:
        """Poll info.state/info.error (and info.result) until the task ends:
        first FIRST_POLL seconds after it started (no task is done as it
        starts: a read then is a round trip for nothing), then twice as
        long after each read, up to a second."""
        paths = ["info.state", "info.error"] + (["info.result"] if result else [])
        deadline = time.monotonic() + self.task_timeout
        delay = FIRST_POLL
        while True:
            self._sleep(delay)
            info = self.props(task, *paths)
            state = info.get("info.state")
            if state == "success":
                return info.get("info.result")
            if state == "error":
                error = info.get("info.error")
                fault = getattr(error, "fault", None)
                message = fault_message(fault) if fault is not None else str(error)
                raise TaskFailed(f"task {moid(task)} failed: {message}", fault)
            delay = min(delay * 2, 1.0)
            if time.monotonic() + delay > deadline:
                raise VsphereTimeout(f"task {moid(task)} still {state} after "
                                     f"{self.task_timeout} s")

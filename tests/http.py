"""
Requests to the API's Klein resource in memory, through treq's StubTreq.

StubTreq moves bytes between client and server only when flushed; the
handlers here wait on a real Redis, so a request is flushed on a short
timer until its answer is complete.
"""

from __future__ import annotations

import json
from dataclasses import dataclass
from typing import Any

from treq.testing import StubTreq
from twisted.internet import reactor
from twisted.internet.task import LoopingCall
from twisted.web.resource import IResource


@dataclass
class Answer:
    code: int
    body: Any
    headers: Any

    @property
    def ok(self) -> bool:
        return isinstance(self.body, dict) and self.body.get("ok") is True


class Client:
    def __init__(self, resource: IResource) -> None:
        self.stub: Any = StubTreq(resource)  # its verbs are looked up at run time

    async def request(self, method: str, path: str, body: Any = None,
                      headers: dict[str, str] | None = None,
                      auth: tuple[str, str] | None = None) -> Answer:
        data = body if isinstance(body, bytes) or body is None else json.dumps(body).encode()
        pump = LoopingCall(self.stub.flush)
        pump.clock = reactor
        pump.start(0.002)
        try:
            response = await self.stub.request(
                method, "http://vmpooler.test" + path, data=data,
                headers={k: [v] for k, v in (headers or {}).items()}, auth=auth)
            raw = await response.content()
        finally:
            pump.stop()
        assert response.headers.getRawHeaders("content-type") == ["application/json"], \
            (method, path, response.code, raw[:200])
        return Answer(response.code, json.loads(raw), response.headers)

    async def get(self, path: str, **kw: Any) -> Answer:
        return await self.request("GET", path, **kw)

    async def post(self, path: str, body: Any = None, **kw: Any) -> Answer:
        return await self.request("POST", path, body, **kw)

    async def put(self, path: str, body: Any = None, **kw: Any) -> Answer:
        return await self.request("PUT", path, body, **kw)

    async def delete(self, path: str, **kw: Any) -> Answer:
        return await self.request("DELETE", path, **kw)

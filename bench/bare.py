"""
The reference for the checkout benchmark: a bare Klein handler that parses
nothing, touches nothing and answers a small JSON body (for the checkout,
``GET /api/v1/vm/<host>`` and ``GET /api/v3/status``), served by
twisted.web's Site as the daemon's is, in one process, with no access log
and start-up objects frozen out of the garbage collector.  With
``--api-site`` it is served by the daemon's own site instead (Note [Idle
connections] in vmpoolerd/api/site.py), for a second reference.  With
``--resource`` the checkout's answer comes from a plain twisted.web
Resource, no Klein: what Klein's resource costs (``python -m
bench.framework``).

    python -m bench.bare PORT [--api-site] [--resource]
"""

import gc
import json
import sys

from klein import Klein
from twisted.internet import endpoints, reactor
from twisted.web.resource import Resource

from vmpoolerd.api.site import ApiSite, QuietSite

app = Klein()


@app.route("/api/v1/vm/<string:pool>", methods=["POST"])
async def checkout(request, pool):  # type: ignore[no-untyped-def]
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps({"ok": True, pool: {"hostname": "abcdefghijklmno"},
                       "domain": "example.com"}).encode()


@app.route("/api/v1/vm/<string:host>", methods=["GET"])
async def vm(request, host):  # type: ignore[no-untyped-def]
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps({"ok": True, host: {"template": "debian-7-i386", "lifetime": 24,
                                          "running": 0.0, "state": "running"}}).encode()


@app.route("/api/v3/status", methods=["GET"])
async def status(request):  # type: ignore[no-untyped-def]
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps({"status": {"ok": True, "message": "Battle station fully armed"},
                       "capacity": {"current": 5, "total": 5, "percent": 100.0}}).encode()


class Checkout(Resource):
    """The checkout's answer, with no Klein around it."""

    isLeaf = True

    def render_POST(self, request):  # type: ignore[no-untyped-def]
        pool = request.postpath[-1].decode()
        request.setHeader(b"Content-Type", b"application/json")
        return json.dumps({"ok": True, pool: {"hostname": "abcdefghijklmno"},
                           "domain": "example.com"}).encode()


if __name__ == "__main__":
    resource = Checkout() if "--resource" in sys.argv[2:] else app.resource()
    site = ApiSite(resource, reactor) if "--api-site" in sys.argv[2:] else QuietSite(resource)
    gc.freeze()  # as the daemon: start-up objects out of the collector's sight
    endpoints.TCP4ServerEndpoint(reactor, int(sys.argv[1]), interface="127.0.0.1").listen(site)
    reactor.run()

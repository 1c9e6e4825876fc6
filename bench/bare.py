"""
The reference for the checkout benchmark: a bare Klein handler that parses
nothing, touches nothing and answers a small JSON body, served the same way
as the daemon (twisted.web Site, one process, no access log, start-up
objects frozen out of the garbage collector).

    python -m bench.bare PORT
"""

import gc
import json
import sys

from klein import Klein
from twisted.internet import endpoints, reactor

from vmpoolerd.web import QuietSite

app = Klein()


@app.route("/api/v1/vm/<string:pool>", methods=["POST"])
async def checkout(request, pool):  # type: ignore[no-untyped-def]
    request.setHeader(b"Content-Type", b"application/json")
    return json.dumps({"ok": True, pool: {"hostname": "abcdefghijklmno"},
                       "domain": "example.com"}).encode()


if __name__ == "__main__":
    site = QuietSite(app.resource())  # as the daemon: no access log
    gc.freeze()  # as the daemon: start-up objects out of the collector's sight
    endpoints.TCP4ServerEndpoint(reactor, int(sys.argv[1]), interface="127.0.0.1").listen(site)
    reactor.run()

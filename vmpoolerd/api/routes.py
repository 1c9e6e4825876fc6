"""
What the API's resources share: mounting a handler on the app, and
reading a body (who the caller is: callers.py; the time as the API writes
it: timestamps.py).

Each resource (vms.py, tokens.py, reports.py, meta.py, ...) is a class
whose ``mount`` routes its handlers, bound methods, with :func:`route`;
app.py builds them and mounts them on one Klein app.
"""

from __future__ import annotations


from typing import Any, Callable, Sequence

from klein import Klein
from twisted.web.iweb import IRequest

from .errors import ApiError
from .site import BODY_TOO_LARGE, MAX_BODY


def route(app: Klein, methods: Sequence[str] | None, path: str,
          handler: Callable[..., Any], branch: bool = False) -> None:
    """
    Route ``path`` (``methods``; None: any) to ``handler``, a bound method.
    Its endpoint is named for its class and itself, so that two resources
    cannot take each other's.
    """
    options: dict[str, Any] = {"endpoint": handler.__qualname__, "branch": branch}
    if methods is not None:
        options["methods"] = list(methods)
    app.route(path, **options)(handler)


def read_body(request: IRequest) -> bytes:
    """The request's body; 413 past MAX_BODY (for a site other than ApiSite)."""
    body: bytes = request.content.read(MAX_BODY + 1)
    if len(body) > MAX_BODY:
        raise ApiError(413, BODY_TOO_LARGE)
    return body

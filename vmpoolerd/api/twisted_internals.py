"""
Everything vmpoolerd takes from Twisted that Twisted does not make public,
in one place.  tests/test_twisted_internals.py drives each of them as it is
used here, and fails the day an upgrade removes or changes one.

- :class:`HeadRefusingChannel`: Twisted's ``HTTPChannel`` answers a request
  head it will not take (too large, too many headers, a line it cannot
  parse) with a bare 400 from its private
  ``_respondToBadRequestAndDisconnect``; the sizes it judged by are its
  private ``_receivedHeaderSize`` and ``_receivedHeaderCount``.  A subclass
  gets :meth:`HeadRefusingChannel.head_refused` instead, and
  :meth:`HeadRefusingChannel.head_size` for the head being read.
- :data:`IOpenSSLTrustRoot`: what ``platformTrust()`` and
  ``trustRootFromCertificates()`` return, an interface Twisted keeps in
  its private ``_sslverify`` module.
"""

from __future__ import annotations

from twisted.internet._sslverify import IOpenSSLTrustRoot
from twisted.web.http import HTTPChannel

__all__ = ["HeadRefusingChannel", "IOpenSSLTrustRoot"]


class HeadRefusingChannel(HTTPChannel):
    """An HTTP channel told, with the sizes Twisted judged by, when Twisted
    refuses a request head."""

    def head_refused(self, head_size: int, header_count: int) -> None:
        """The head being read is refused: ``head_size`` bytes of it so far
        (compare ``totalHeadersSize``) in ``header_count`` headers (compare
        ``maxHeaders``); neither over its limit means a line Twisted could
        not parse.  The default is Twisted's own bare 400."""
        super()._respondToBadRequestAndDisconnect()

    def head_size(self) -> int:
        """The bytes of the request head read so far (0: not one line of it;
        Twisted starts again from 0 for each request)."""
        return self._receivedHeaderSize  # type: ignore[no-any-return]

    def _respondToBadRequestAndDisconnect(self) -> None:
        self.head_refused(self._receivedHeaderSize, self._receivedHeaderCount)

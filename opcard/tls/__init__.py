"""TLS client authentication with the card's certificate and key (tlslite-ng; the ``tls`` extra).

The package:

- :mod:`opcard.tls.client` — :class:`TlsClient`, :class:`TlsConnection`, :func:`connect`,
  :class:`TlsVersion` (the example and the version rules are in its docstring);
- :mod:`opcard.tls.keys` — the tlslite-ng key classes whose signatures the card makes;
- :mod:`opcard.tls.verify` — the server's certificate chain, verified with ``cryptography``;
- :mod:`opcard.tls.sessions` — :class:`SessionCache` and :class:`TlsSession`: session
  resumption (no card signature on a reconnect).

The exceptions (:class:`~opcard.errors.TlsError` and its subclasses) live in
:mod:`opcard.errors` with every other opcard exception and are re-exported here. Importing this
package loads tlslite-ng; nothing else in opcard imports it (``import opcard`` does not).
"""

from opcard.tls.client import (
    ClientRejectedError,
    ServerCertificateError,
    ServerVerifier,
    SessionCache,
    TlsClient,
    TlsConnectError,
    TlsConnection,
    TlsError,
    TlsHandshakeError,
    TlsSession,
    TlsVersion,
    TlsVersionError,
    connect,
)

__all__ = [
    "ClientRejectedError",
    "ServerCertificateError",
    "ServerVerifier",
    "SessionCache",
    "TlsClient",
    "TlsConnectError",
    "TlsConnection",
    "TlsError",
    "TlsHandshakeError",
    "TlsSession",
    "TlsVersion",
    "TlsVersionError",
    "connect",
]

"""Verifying the TLS server's certificate chain: trust anchors, path, validity, name.

tlslite-ng checks that the server's handshake signature matches the certificate it sent, but
it does not validate the certificate itself (no X.509 path validation, no host name check:
its optional ``Checker`` compares fingerprints only). opcard does that with ``cryptography``'s
verifier (``cryptography.x509.verification``, RFC 5280 path building with the CA/Browser
Forum profile):

- the chain must lead from the server's certificate, through the intermediates it sent, to a
  certificate of the CA file (trust anchors);
- every certificate must be valid now, CAs must be CAs (basic constraints, key usage), name
  constraints and path lengths hold, signatures verify;
- the server certificate must name the host in its subjectAltName (a DNS name, or an IP
  address when the host is an IP literal; the common name is not used, as RFC 6125 and the
  CA/Browser Forum require), and allow serverAuth when it has an extended key usage;
- one relaxation of the CA/Browser Forum profile: the authority key identifier extension may
  be missing (certificates of private CAs made with older tools often lack it).

:class:`ServerVerifier` does it; :class:`ServerCertificateError` says why a chain was refused
and carries the TLS alert the client sends before closing.
"""

from __future__ import annotations

import datetime
import ipaddress
import os
import re
import ssl
import warnings
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

from cryptography import x509
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import verification

from opcard.errors import AlertCode, ServerCertificateError, TlsError

__all__ = ["ServerVerifier", "default_cafile", "server_subject"]


def default_cafile() -> Path | None:
    """The system's CA bundle (``ssl.get_default_verify_paths()``), or None."""
    paths = ssl.get_default_verify_paths()
    for candidate in (paths.cafile, paths.openssl_cafile):
        if candidate and os.path.isfile(candidate):
            return Path(candidate)
    return None


def _load_certificates(data: bytes, source: str) -> list[x509.Certificate]:
    try:
        # system bundles hold old roots cryptography warns about (e.g. a serial number 0)
        with warnings.catch_warnings():
            warnings.simplefilter("ignore", CryptographyDeprecationWarning)
            if b"-----BEGIN" in data:
                return x509.load_pem_x509_certificates(data)
            return [x509.load_der_x509_certificate(data)]
    except ValueError as e:
        raise TlsError(f"{source}: no X.509 certificate could be read ({e})") from e


@dataclass(frozen=True, slots=True)
class ServerVerifier:
    """Trust anchors and the rules to verify a server's chain with (see the module text)."""

    trust_anchors: tuple[x509.Certificate, ...]
    #: where the anchors came from (for messages)
    source: str = "the CA file"

    @classmethod
    def from_cafile(cls, path: str | os.PathLike[str]) -> ServerVerifier:
        """Trust anchors from a PEM bundle (or one DER certificate)."""
        try:
            data = Path(path).read_bytes()
        except OSError as e:
            raise TlsError(f"cannot read the CA file {os.fspath(path)}: {e.strerror}") from e
        anchors = _load_certificates(data, os.fspath(path))
        return cls(tuple(anchors), os.fspath(path))

    @classmethod
    def from_pem(cls, data: bytes, source: str = "the CA certificates") -> ServerVerifier:
        return cls(tuple(_load_certificates(data, source)), source)

    def verify(
        self,
        chain: Sequence[bytes],
        host: str,
        *,
        now: datetime.datetime | None = None,
    ) -> list[x509.Certificate]:
        """Verify the server's ``chain`` (DER, server certificate first) for ``host``.

        Returns the validated path (server certificate first, trust anchor last); raises
        :class:`ServerCertificateError` with the reason otherwise.
        """
        if not chain:
            raise ServerCertificateError("the server sent no certificate")
        try:
            certificates = [x509.load_der_x509_certificate(der) for der in chain]
        except ValueError as e:
            raise ServerCertificateError(f"the server's certificate is malformed: {e}") from e
        leaf, intermediates = certificates[0], certificates[1:]
        subject = server_subject(host)
        when = now or datetime.datetime.now(datetime.UTC)
        builder = (
            verification.PolicyBuilder()
            .store(verification.Store(list(self.trust_anchors)))
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
        )
        try:
            verifier = builder.time(when).build_server_verifier(subject)
        except ValueError as e:  # a name the verifier does not take
            raise TlsError(f"cannot verify a certificate for {host!r}: {e}") from e
        try:
            return verifier.verify(leaf, intermediates)
        except verification.VerificationError as e:
            raise _explain(str(e), leaf, host, when, self.source) from e


# The CA/Browser Forum profile, except that the authority key identifier may be absent: it
# only helps path building (issuers are matched by name and verified by signature anyway), and
# certificates of private CAs made with older tools often lack it.
_AKI = (x509.AuthorityKeyIdentifier, verification.Criticality.NON_CRITICAL, None)
_CA_POLICY = verification.ExtensionPolicy.webpki_defaults_ca().may_be_present(*_AKI)
_EE_POLICY = verification.ExtensionPolicy.webpki_defaults_ee().may_be_present(*_AKI)


def server_subject(host: str) -> verification.Subject:
    """The name the server certificate must carry: an IP address or a DNS name."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    name = text.rstrip(".")
    if not _DNS_NAME.fullmatch(name) or len(name) > 253:
        raise TlsError(f"{host!r} is neither a DNS name nor an IP address")
    return x509.DNSName(name)


_DNS_NAME = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*")


def _explain(
    reason: str, leaf: x509.Certificate, host: str, now: datetime.datetime, source: str
) -> ServerCertificateError:
    """A message that says what is wrong, and the alert that tells the server."""
    subject = leaf.subject.rfc4514_string() or "(empty subject)"
    if leaf.not_valid_after_utc < now or leaf.not_valid_before_utc > now:
        return ServerCertificateError(
            f"the server certificate ({subject}) is not valid now: valid from "
            f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC "
            f"to {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC ({reason})",
            AlertCode.CertificateExpired,
        )
    if "subjectAltName" in reason or "no matching" in reason:
        return ServerCertificateError(
            f"the server certificate ({subject}) is not valid for {host!r}: {reason}",
            AlertCode.BadCertificate,
        )
    if "candidates exhausted" in reason or "issuer" in reason.lower():
        return ServerCertificateError(
            f"the server certificate ({subject}, issued by "
            f"{leaf.issuer.rfc4514_string()}) does not chain to a CA of {source}: {reason}",
            AlertCode.UnknownCa,
        )
    return ServerCertificateError(
        f"the server certificate ({subject}) failed verification: {reason}",
        AlertCode.BadCertificate,
    )

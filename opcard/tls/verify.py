"""Verifying the TLS server's certificate chain: trust anchors, path, validity, name.

tlslite-ng checks that the server's handshake signature matches the certificate it sent, but
it does not validate the certificate itself (no X.509 path validation, no host name check:
its optional ``Checker`` compares fingerprints only). opcard does that with ``cryptography``'s
verifier (``cryptography.x509.verification``, RFC 5280 path building), with extension policies
that accept exactly what OpenSSL's default verifier accepts (``openssl s_client
-verify_return_error -CAfile``, Python's ``ssl`` with ``CERT_REQUIRED`` and host name checks;
tests/tls/test_tls_parity.py compares the two on a table of chains):

- the chain must lead from the server's certificate, through the intermediates it sent (and
  any non-root certificates of the CA file), to a self-issued certificate of the CA file; a
  self-signed server certificate given as its own trust anchor is accepted, as OpenSSL does;
- every certificate must be valid now; CAs must say CA:TRUE (critical or not) — a trust
  anchor may instead lack basicConstraints when its keyUsage allows keyCertSign, as OpenSSL's
  check_ca (not strict) takes it —; their keyUsage,
  when present, must allow keyCertSign (a CA without keyUsage is accepted), their
  extendedKeyUsage, when present, must allow serverAuth; path lengths and name constraints
  hold; signatures verify with the web PKI algorithms (no SHA-1, no Ed25519 signatures);
  keys have at least 112 bits of security (RSA 2048, OpenSSL's security level 2);
- the authority and subject key identifiers may be missing;
- the server certificate's keyUsage, when present, allows a TLS use; its extendedKeyUsage,
  when present, allows serverAuth; it may say CA:TRUE;
- the host name is checked as OpenSSL's ``X509_check_host`` does for Python's ``ssl``: the
  DNS names of subjectAltName, or the common name when there is no DNS name; a wildcard only
  as the whole leftmost label, matching one label, over at least two more labels (no partial
  wildcards, as Python's ``ssl`` and curl); a trailing dot is compared like any other
  character (``localhost.`` matches only ``localhost.``, never a wildcard); an IP address only
  against the IP addresses of subjectAltName;
- with :meth:`ServerVerifier.with_revocation`: CRLs and a stapled OCSP answer
  (:mod:`opcard.tls.revocation`).

:class:`ServerVerifier` does it; :class:`ServerCertificateError` says why a chain was refused
and carries the TLS alert the client sends before closing, and its ``cause`` (for hints).
"""

from __future__ import annotations

import dataclasses
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
from cryptography.exceptions import UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import dsa, ec, rsa
from cryptography.utils import CryptographyDeprecationWarning
from cryptography.x509 import verification
from cryptography.x509.oid import ExtendedKeyUsageOID

from opcard.errors import AlertCode, ServerCertificateError, TlsError

__all__ = ["ServerVerifier", "default_cafile", "parse_pins", "server_subject", "spki_sha256"]


def spki_sha256(certificate: x509.Certificate) -> bytes:
    """SHA-256 of the certificate's SubjectPublicKeyInfo (what curl's --pinnedpubkey pins)."""
    from cryptography.hazmat.primitives import hashes, serialization

    spki = certificate.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    digest = hashes.Hash(hashes.SHA256())
    digest.update(spki)
    return digest.finalize()


def parse_pins(text: str) -> tuple[bytes, ...]:
    """curl's ``--pinnedpubkey`` hashes: ``sha256//BASE64`` (SHA-256 of the server's
    SubjectPublicKeyInfo), several separated by ``;``."""
    import base64
    import binascii

    pins: list[bytes] = []
    for item in text.split(";"):
        item = item.strip()
        if not item.startswith("sha256//"):
            raise ValueError(
                f"{item!r} is not a public key pin: give sha256//BASE64 (the SHA-256 of the "
                "server's SubjectPublicKeyInfo, in base64), several separated by ';'"
            )
        try:
            digest = base64.b64decode(item[len("sha256//") :], validate=True)
        except binascii.Error as e:
            raise ValueError(f"{item!r}: the hash is not base64 ({e})") from e
        if len(digest) != 32:
            raise ValueError(f"{item!r}: a SHA-256 hash has 32 bytes, this one {len(digest)}")
        pins.append(digest)
    return tuple(pins)


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
    except (ValueError, x509.InvalidVersion) as e:  # InvalidVersion is no ValueError
        raise TlsError(f"{source}: no X.509 certificate could be read ({e})") from e


@dataclass(frozen=True, slots=True)
class ServerVerifier:
    """Trust anchors and the rules to verify a server's chain with (see the module text)."""

    trust_anchors: tuple[x509.Certificate, ...]
    #: where the anchors came from (for messages)
    source: str = "the CA file"
    #: SHA-256 hashes of public keys (SubjectPublicKeyInfo), one of which the server's
    #: certificate must hold (curl's --pinnedpubkey); empty: no pin
    pins: tuple[bytes, ...] = ()
    #: False: only the pin is checked (no chain, dates or name: curl -k --pinnedpubkey)
    check_chain: bool = True
    #: CRLs (``--crlfile``) and what they check: None (no CRL check), ``"leaf"`` (the
    #: server certificate, ``openssl -crl_check``) or ``"all"`` (the whole path,
    #: ``-crl_check_all``); see :mod:`opcard.tls.revocation`
    crls: tuple[x509.CertificateRevocationList, ...] = ()
    crl_check: str | None = None
    #: a stapled OCSP answer saying "good" is required (``--status``)
    require_ocsp: bool = False

    @classmethod
    def pinned(cls, pins: Sequence[bytes]) -> ServerVerifier:
        """Only the server's public key is checked, against ``pins``."""
        if not pins:
            raise ValueError("no public key pin given")
        return cls((), "--pinnedpubkey", tuple(pins), check_chain=False)

    def with_pins(self, pins: Sequence[bytes]) -> ServerVerifier:
        """This verifier, and the server's key must also match one of ``pins``."""
        return dataclasses.replace(self, pins=tuple(pins))

    def with_revocation(
        self,
        *,
        crls: Sequence[x509.CertificateRevocationList] = (),
        crl_check: str | None = None,
        require_ocsp: bool = False,
    ) -> ServerVerifier:
        """This verifier with revocation checks: ``crls`` for the server certificate
        (``crl_check="leaf"``, the default when CRLs are given) or the whole path
        (``"all"``), and/or a stapled OCSP answer (``require_ocsp``)."""
        from opcard.tls.revocation import CRL_CHECKS

        if crls and crl_check is None:
            crl_check = "leaf"
        if crl_check is not None and crl_check not in CRL_CHECKS:
            raise ValueError(f"crl_check is 'leaf' or 'all', not {crl_check!r}")
        if crl_check is not None and not crls:
            raise ValueError("a CRL check needs CRLs (a CRL file)")
        if (crl_check or require_ocsp) and not self.check_chain:
            raise ValueError(
                "revocation checks need the chain verified (a CA file), not only a pinned key"
            )
        return dataclasses.replace(
            self, crls=tuple(crls), crl_check=crl_check, require_ocsp=require_ocsp
        )

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
        ocsp_response: bytes | None = None,
    ) -> list[x509.Certificate]:
        """Verify the server's ``chain`` (DER, server certificate first) for ``host``.

        ``ocsp_response`` is the OCSP answer the server stapled (DER), if any: checked when
        the verifier requires one. Returns the validated path (server certificate first,
        trust anchor last); raises :class:`ServerCertificateError` with the reason otherwise.
        """
        if not chain:
            raise ServerCertificateError("the server sent no certificate")
        try:
            return self._verify(chain, host, now, ocsp_response)
        except (ValueError, x509.InvalidVersion, UnsupportedAlgorithm) as e:
            # a hostile server's bytes: cryptography parses a certificate's names, extensions
            # and key when they are first read (the pin, the name check, the explanation)
            raise ServerCertificateError(f"the server's certificate is malformed: {e}") from e

    def _verify(
        self,
        chain: Sequence[bytes],
        host: str,
        now: datetime.datetime | None,
        ocsp_response: bytes | None,
    ) -> list[x509.Certificate]:
        certificates = [x509.load_der_x509_certificate(der) for der in chain]
        leaf, intermediates = certificates[0], certificates[1:]
        if self.pins and spki_sha256(leaf) not in self.pins:
            import base64

            raise ServerCertificateError(
                f"the server's public key (sha256//{base64.b64encode(spki_sha256(leaf)).decode()}"
                f", in the certificate {_subject(leaf)}) matches no pinned key",
                AlertCode.BadCertificate,
                "pin",
            )
        if not self.check_chain:
            return [leaf]
        subject = server_subject(host)
        when = now or datetime.datetime.now(datetime.UTC)
        if when.tzinfo is None:  # a naive time is UTC (as cryptography's verifier takes it)
            when = when.replace(tzinfo=datetime.UTC)
        # OpenSSL (without -partial_chain) ends a path at a self-issued certificate of the CA
        # file; the file's other certificates may only serve as intermediates
        roots = [a for a in self.trust_anchors if a.subject == a.issuer]
        helpers = [a for a in self.trust_anchors if a.subject != a.issuer]
        if not roots:
            raise ServerCertificateError(
                f"{self.source} holds no root CA (no self-issued certificate: "
                + ", ".join(_subject(a) for a in self.trust_anchors)
                + "), so no chain can end there",
                AlertCode.UnknownCa,
                "no_ca",
            )
        stand_ins = {id(r): _stand_in(r) for r in roots if _bare_anchor(r)}
        real = {s.fingerprint(hashes.SHA256()): r for i, s in stand_ins.items() for r in roots
                if id(r) == i}  # fmt: skip
        builder = (
            verification.PolicyBuilder()
            .store(verification.Store([stand_ins.get(id(r), r) for r in roots]))
            .extension_policies(ca_policy=_CA_POLICY, ee_policy=_EE_POLICY)
        )
        try:
            # the client verifier checks no name (the name is checked below, as OpenSSL does)
            # and no extended key usage of its own (the policies check serverAuth)
            path = builder.time(when).build_client_verifier().verify(leaf, intermediates + helpers)
        except verification.VerificationError as e:
            others = [*intermediates, *self.trust_anchors]
            raise _explain(str(e), leaf, others, host, when, self.source) from e
        for certificate in path.chain:
            _check_key(certificate)
        if not _names_match(leaf, subject):
            raise _name_error(leaf, host)
        validated = list(path.chain)
        validated[-1] = real.get(validated[-1].fingerprint(hashes.SHA256()), validated[-1])
        if self.crl_check is not None or self.require_ocsp:
            from opcard.tls import revocation

            if self.crl_check is not None:
                revocation.check_crls(validated, self.crls, when, self.crl_check)
            if self.require_ocsp:
                revocation.check_ocsp(ocsp_response, validated, when)
        return validated


def _subject(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"


# OpenSSL's default verifier (X509_verify_cert, purpose sslserver), not the CA/Browser Forum
# profile: cryptography's web PKI policies with the relaxations OpenSSL makes, each replaced by
# a check of what OpenSSL still checks.
_SERVER_AUTH = {
    ExtendedKeyUsageOID.SERVER_AUTH,
    x509.ObjectIdentifier("1.3.6.1.4.1.311.10.3.3"),  # Microsoft SGC (OpenSSL's XKU_SGC)
    x509.ObjectIdentifier("2.16.840.1.113730.4.1"),  # Netscape SGC
}
_AGNOSTIC = verification.Criticality.AGNOSTIC


def _refuse(message: str) -> None:
    raise ValueError(message)


def _ca_basic_constraints(
    _policy: object, _cert: x509.Certificate, ext: x509.BasicConstraints
) -> None:
    # a CA must say CA:TRUE; OpenSSL does not require the extension to be critical
    if not ext.ca:
        _refuse("basicConstraints.cA is not asserted in a CA certificate")


def _bare_anchor(certificate: x509.Certificate) -> bool:
    """A trust anchor OpenSSL's check_ca (not strict, its default) takes as a CA although it
    has no basicConstraints: its keyUsage is present and allows keyCertSign. (Intermediates
    must say CA:TRUE: "X509_V_FLAG_X509_STRICT is implicit for intermediate CAs".)"""
    try:
        certificate.extensions.get_extension_for_class(x509.BasicConstraints)
        return False
    except x509.ExtensionNotFound:
        pass
    try:
        return bool(
            certificate.extensions.get_extension_for_class(x509.KeyUsage).value.key_cert_sign
        )
    except x509.ExtensionNotFound:
        return False


_STAND_IN_KEY: list[ec.EllipticCurvePrivateKey] = []


def _stand_in(anchor: x509.Certificate) -> x509.Certificate:
    """The anchor with basicConstraints CA:TRUE added, for cryptography's verifier (which
    requires the extension on every CA): same subject, key, validity and other extensions.
    Trust anchors are not checked by their own signature (by OpenSSL neither), so a
    throw-away key signs it; the path returned names the real anchor again."""
    if not _STAND_IN_KEY:
        _STAND_IN_KEY.append(ec.generate_private_key(ec.SECP256R1()))
    builder = (
        x509.CertificateBuilder()
        .subject_name(anchor.subject)
        .issuer_name(anchor.issuer)
        .public_key(anchor.public_key())
        .serial_number(anchor.serial_number)
        .not_valid_before(anchor.not_valid_before_utc)
        .not_valid_after(anchor.not_valid_after_utc)
        .add_extension(x509.BasicConstraints(ca=True, path_length=None), critical=True)
    )
    for extension in anchor.extensions:
        builder = builder.add_extension(extension.value, extension.critical)
    return builder.sign(_STAND_IN_KEY[0], hashes.SHA256())


def _ca_key_usage(_policy: object, _cert: x509.Certificate, ext: x509.KeyUsage | None) -> None:
    # absent: any use (RFC 5280 and OpenSSL); present: it must allow signing certificates
    if ext is not None and not ext.key_cert_sign:
        _refuse("the CA's keyUsage does not allow keyCertSign")


def _ca_eku(_policy: object, _cert: x509.Certificate, ext: x509.ExtendedKeyUsage | None) -> None:
    # OpenSSL applies a CA's extended key usage to the certificates below it
    if ext is not None and not _SERVER_AUTH & set(ext):
        _refuse("the CA's extendedKeyUsage does not allow serverAuth")


def _ee_eku(_policy: object, _cert: x509.Certificate, ext: x509.ExtendedKeyUsage | None) -> None:
    if ext is not None and ExtendedKeyUsageOID.SERVER_AUTH not in ext:
        _refuse("the server certificate's extendedKeyUsage does not allow serverAuth")


def _ee_key_usage(_policy: object, _cert: x509.Certificate, ext: x509.KeyUsage | None) -> None:
    # OpenSSL (purpose sslserver): digitalSignature, keyEncipherment or keyAgreement
    if ext is not None and not (ext.digital_signature or ext.key_encipherment or ext.key_agreement):
        _refuse("the server certificate's keyUsage allows no TLS use")


def _any(_policy: object, _cert: x509.Certificate, _ext: object) -> None:
    return None


_CA_POLICY = (
    verification.ExtensionPolicy.webpki_defaults_ca()
    .may_be_present(x509.AuthorityKeyIdentifier, _AGNOSTIC, _any)
    # cryptography requires the extension on every CA; a trust anchor without it that OpenSSL
    # takes goes in as a stand-in with it (_bare_anchor, _stand_in)
    .require_present(x509.BasicConstraints, _AGNOSTIC, _ca_basic_constraints)
    .may_be_present(x509.KeyUsage, _AGNOSTIC, _ca_key_usage)
    .may_be_present(x509.ExtendedKeyUsage, _AGNOSTIC, _ca_eku)
)
_EE_POLICY = (
    verification.ExtensionPolicy.webpki_defaults_ee()
    .may_be_present(x509.AuthorityKeyIdentifier, _AGNOSTIC, _any)
    # a server certificate may say CA:TRUE (openssl req -x509 makes such self-signed ones)
    .may_be_present(x509.BasicConstraints, _AGNOSTIC, _any)
    # names are checked by _names_match (the common name when there is no DNS name)
    .may_be_present(x509.SubjectAlternativeName, _AGNOSTIC, _any)
    .may_be_present(x509.KeyUsage, _AGNOSTIC, _ee_key_usage)
    .may_be_present(x509.ExtendedKeyUsage, _AGNOSTIC, _ee_eku)
)


def _check_key(certificate: x509.Certificate) -> None:
    """OpenSSL's security level 2 (Debian's default): keys of at least 112 bits of security."""
    key = certificate.public_key()
    size = getattr(key, "key_size", None)
    weak = (
        isinstance(key, (rsa.RSAPublicKey, dsa.DSAPublicKey)) and size is not None and size < 2048
    ) or (isinstance(key, ec.EllipticCurvePublicKey) and key.key_size < 224)
    if weak:
        raise ServerCertificateError(
            f"the certificate {_subject(certificate)} has a {size}-bit "
            f"{type(key).__name__.removesuffix('PublicKey').removeprefix('_')} key, too weak "
            "(at least 2048-bit RSA or a 224-bit curve, as OpenSSL's security level 2)",
            AlertCode.BadCertificate,
            "weak",
        )


def _names_match(leaf: x509.Certificate, subject: verification.Subject) -> bool:
    """OpenSSL's X509_check_host / X509_check_ip with its default flags (Python's ssl and
    ``openssl s_client -verify_hostname`` use them): the DNS names of subjectAltName, or the
    common names when it has no DNS name; IP addresses only from subjectAltName."""
    try:
        names = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
    except x509.ExtensionNotFound:
        names = None
    if isinstance(subject, x509.IPAddress):
        return names is not None and subject.value in names.get_values_for_type(x509.IPAddress)
    host = subject.value.lower()
    dns = names.get_values_for_type(x509.DNSName) if names is not None else []
    if not dns:
        dns = [str(a.value) for a in leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)]
    return any(_dns_match(pattern, host) for pattern in dns)


def _dns_match(pattern: str, host: str) -> bool:
    # a trailing dot is compared like any other character, as X509_check_host does:
    # "localhost." matches only "localhost.", and a wildcard never matches a name with one
    pattern = pattern.lower()
    if pattern == host:
        return True
    if pattern.endswith(".") or host.endswith("."):
        return False
    first, _, rest = pattern.partition(".")
    # a wildcard only as the whole leftmost label, over at least two more labels, matching
    # exactly one label (OpenSSL's rules with X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS, the flag
    # Python's ssl sets and curl's own check follows: "a*.example.test" matches nothing)
    if first != "*" or "*" in rest or rest.count(".") < 1:
        return False
    label, _, host_rest = host.partition(".")
    return bool(label) and host_rest == rest


def _name_error(leaf: x509.Certificate, host: str) -> ServerCertificateError:
    try:
        alt = leaf.extensions.get_extension_for_class(x509.SubjectAlternativeName).value
        names = [str(n.value) for n in alt]
    except x509.ExtensionNotFound:
        names = []
    if not names:
        names = [
            str(a.value) for a in leaf.subject.get_attributes_for_oid(x509.NameOID.COMMON_NAME)
        ]
    return ServerCertificateError(
        f"the server certificate ({_subject(leaf)}) is not valid for {host!r}: it names "
        + (", ".join(names) if names else "no host"),
        AlertCode.BadCertificate,
        "name",
    )


def server_subject(host: str) -> verification.Subject:
    """The name the server certificate must carry: an IP address or a DNS name."""
    text = host[1:-1] if host.startswith("[") and host.endswith("]") else host
    try:
        return x509.IPAddress(ipaddress.ip_address(text))
    except ValueError:
        pass
    name = text[:-1] if text.endswith(".") else text  # one trailing dot: a rooted name
    if not _DNS_NAME.fullmatch(name) or len(name) > 253:
        raise TlsError(f"{host!r} is neither a DNS name nor an IP address")
    # the dot is kept: the certificate must name the host as given (OpenSSL's comparison)
    return x509.DNSName(text)


_DNS_NAME = re.compile(r"(?!-)[A-Za-z0-9_-]{1,63}(?<!-)(\.(?!-)[A-Za-z0-9_-]{1,63}(?<!-))*")


def _explain(
    reason: str,
    leaf: x509.Certificate,
    others: Sequence[x509.Certificate],
    host: str,
    now: datetime.datetime,
    source: str,
) -> ServerCertificateError:
    """A message that says what is wrong, and the alert that tells the server."""
    subject = _subject(leaf)

    def out_of_date(c: x509.Certificate) -> bool:
        return c.not_valid_after_utc < now or c.not_valid_before_utc > now

    if out_of_date(leaf):
        return ServerCertificateError(
            f"the server certificate ({subject}) is not valid now: valid from "
            f"{leaf.not_valid_before_utc:%Y-%m-%d %H:%M} UTC "
            f"to {leaf.not_valid_after_utc:%Y-%m-%d %H:%M} UTC ({reason})",
            AlertCode.CertificateExpired,
            "expired",
        )
    stale = [c for c in others if out_of_date(c) and c.subject == leaf.issuer]
    if stale and "exhausted" in reason:
        c = stale[0]
        return ServerCertificateError(
            f"the CA certificate {_subject(c)} that issued the server certificate "
            f"({subject}) is not valid now: valid from "
            f"{c.not_valid_before_utc:%Y-%m-%d %H:%M} UTC "
            f"to {c.not_valid_after_utc:%Y-%m-%d %H:%M} UTC ({reason})",
            AlertCode.CertificateExpired,
            "expired",
        )
    known = {c.subject for c in others}
    if "candidates exhausted" in reason or "issuer" in reason.lower():
        if leaf.issuer not in known:
            return ServerCertificateError(
                f"the server certificate ({subject}, issued by "
                f"{leaf.issuer.rfc4514_string()}) does not chain to a CA of {source}: "
                f"its issuer is neither in {source} nor sent by the server ({reason})",
                AlertCode.UnknownCa,
                "unknown_ca",
            )
        return ServerCertificateError(
            f"the server certificate ({subject}, issued by "
            f"{leaf.issuer.rfc4514_string()}) does not chain to a CA of {source}: {reason}",
            AlertCode.UnknownCa,
            "unknown_ca",
        )
    return ServerCertificateError(
        f"the server certificate ({subject}) failed verification: {reason}",
        AlertCode.BadCertificate,
    )

"""Revocation of the server's certificates: CRLs (``--crlfile``) and stapled OCSP answers
(``--status``).

CRLs follow OpenSSL's verifier with ``-crl_check`` / ``-crl_check_all`` (``openssl verify``,
``openssl s_client -CRLfile``; tests/tls/test_tls_revocation.py judges a table of chains and
CRLs with both):

- ``"leaf"`` checks the server certificate, ``"all"`` every certificate of the validated path,
  the trust anchor included (a root's CRL is one it issued itself);
- each checked certificate needs a CRL from its issuer (issuer name, and the CRL's authority
  key identifier, when it has one, names the issuer's key); none: refused, as OpenSSL
  ("unable to get certificate CRL") — fail closed;
- of several CRLs of one issuer, the one in scope and in date with the latest thisUpdate (the
  first of equals) is used; its signature must verify with the issuer's key, the issuer's
  keyUsage (when present) must allow cRLSign, thisUpdate must not be in the future and
  nextUpdate not in the past, and it may carry no unknown critical extension;
- a CRL whose issuingDistributionPoint says it covers only CA (or only end-entity)
  certificates does not cover the others ("different CRL scope"); indirect CRLs, CRLs for
  some reasons only and delta CRLs are not used (OpenSSL's default, without
  ``-extended_crl`` / ``-use_deltas``); distribution point names are not compared;
- a certificate listed in the CRL is revoked (reason removeFromCRL excepted).

A stapled OCSP answer (RFC 6066 status_request, the ``CertificateStatus`` message in TLS 1.2,
the status_request extension of the server certificate's entry in TLS 1.3) is checked as
``curl --cert-status`` checks it (OpenSSL's ``OCSP_basic_verify`` and
``OCSP_check_validity`` with 5 minutes of leeway): a successful basic response, signed by the
server certificate's issuer or by a responder certificate that issuer issued for OCSP
signing (extendedKeyUsage OCSPSigning), in date, with an answer for the server certificate
(serial number, issuer name and key hashes), and that answer "good". No answer at all when
one was asked for is refused too (curl's behaviour; ``openssl s_client -status`` only prints
what came).
"""

from __future__ import annotations

import datetime
import os
from collections.abc import Sequence
from pathlib import Path

from cryptography import x509
from cryptography.exceptions import InvalidSignature, UnsupportedAlgorithm
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, ed448, ed25519, padding, rsa
from cryptography.x509 import ocsp
from cryptography.x509.oid import CRLEntryExtensionOID, ExtendedKeyUsageOID, ExtensionOID

from opcard.errors import AlertCode, ServerCertificateError, TlsError

__all__ = ["CRL_CHECKS", "check_crls", "check_ocsp", "load_crls"]

#: the values of ``crl_check``: the server certificate only, or the whole path
CRL_CHECKS = ("leaf", "all")
#: OpenSSL's leeway for OCSP times (OCSP_check_validity's nsec, as curl and s_client use)
OCSP_LEEWAY = datetime.timedelta(minutes=5)

_PEM_CRL = b"-----BEGIN X509 CRL-----"


def load_crls(path: str | os.PathLike[str]) -> tuple[x509.CertificateRevocationList, ...]:
    """The CRLs of a file: PEM (one or several ``X509 CRL`` blocks) or one DER CRL."""
    name = os.fspath(path)
    try:
        data = Path(path).read_bytes()
    except OSError as e:
        raise TlsError(f"cannot read the CRL file {name}: {e.strerror}") from e
    return parse_crls(data, name)


def parse_crls(
    data: bytes, source: str = "the CRL data"
) -> tuple[x509.CertificateRevocationList, ...]:
    """CRLs from PEM (several blocks) or DER bytes."""
    try:
        if b"-----BEGIN" in data:
            crls = []
            for block in data.split(_PEM_CRL)[1:]:
                end = block.find(b"-----END X509 CRL-----")
                if end < 0:
                    raise ValueError("a PEM CRL block has no END line")
                pem = _PEM_CRL + block[: end + len(b"-----END X509 CRL-----")] + b"\n"
                crls.append(_parsed_through(x509.load_pem_x509_crl(pem)))
            if not crls:
                raise ValueError("no '-----BEGIN X509 CRL-----' block")
            return tuple(crls)
        return (_parsed_through(x509.load_der_x509_crl(data)),)
    except (ValueError, x509.InvalidVersion) as e:  # InvalidVersion is no ValueError
        raise TlsError(f"{source}: no CRL could be read ({e})") from e


def _parsed_through(crl: x509.CertificateRevocationList) -> x509.CertificateRevocationList:
    """``crl`` once every part the checks read has been parsed: cryptography parses a CRL's
    issuer, extensions and entries when they are first used, and raises ValueError then (in
    the middle of a handshake, not when the file is loaded)."""
    _ = crl.issuer, crl.last_update_utc, crl.next_update_utc, list(crl.extensions)
    for entry in crl:
        _ = entry.serial_number, entry.revocation_date_utc, list(entry.extensions)
    return crl


def _aware(when: datetime.datetime) -> datetime.datetime:
    """``when`` comparable with cryptography's ``*_utc`` times: a naive time is UTC."""
    return when if when.tzinfo is not None else when.replace(tzinfo=datetime.UTC)


def _subject(certificate: x509.Certificate) -> str:
    return certificate.subject.rfc4514_string() or "(empty subject)"


def _key_id(certificate: x509.Certificate) -> bytes:
    try:
        return certificate.extensions.get_extension_for_class(
            x509.SubjectKeyIdentifier
        ).value.digest
    except x509.ExtensionNotFound:
        return x509.SubjectKeyIdentifier.from_public_key(certificate.public_key()).digest


def _extension(crl: x509.CertificateRevocationList, kind: type[x509.ExtensionType]) -> object:
    try:
        return crl.extensions.get_extension_for_class(kind).value
    except x509.ExtensionNotFound:
        return None


def _is_ca(certificate: x509.Certificate) -> bool:
    try:
        return bool(certificate.extensions.get_extension_for_class(x509.BasicConstraints).value.ca)
    except x509.ExtensionNotFound:
        return False


def _in_scope(crl: x509.CertificateRevocationList, certificate: x509.Certificate) -> bool:
    idp = _extension(crl, x509.IssuingDistributionPoint)
    if not isinstance(idp, x509.IssuingDistributionPoint):
        return True
    if idp.indirect_crl or idp.only_some_reasons or idp.only_contains_attribute_certs:
        return False
    if idp.only_contains_ca_certs and not _is_ca(certificate):
        return False
    return not (idp.only_contains_user_certs and _is_ca(certificate))


_KNOWN_CRL_EXTENSIONS = {
    ExtensionOID.ISSUING_DISTRIBUTION_POINT,
    ExtensionOID.CRL_NUMBER,
    ExtensionOID.AUTHORITY_KEY_IDENTIFIER,
    ExtensionOID.DELTA_CRL_INDICATOR,
    ExtensionOID.FRESHEST_CRL,
}
_KNOWN_ENTRY_EXTENSIONS = {
    CRLEntryExtensionOID.CRL_REASON,
    CRLEntryExtensionOID.INVALIDITY_DATE,
    CRLEntryExtensionOID.CERTIFICATE_ISSUER,
}


def _crl_error(
    message: str, alert: AlertCode = AlertCode.CertificateUnknown
) -> ServerCertificateError:
    return ServerCertificateError(message, alert, "crl")


def check_crls(
    path: Sequence[x509.Certificate],
    crls: Sequence[x509.CertificateRevocationList],
    when: datetime.datetime,
    scope: str = "leaf",
) -> None:
    """Check the validated ``path`` (server certificate first, trust anchor last) against
    ``crls``: the server certificate (``scope="leaf"``) or every certificate (``"all"``).
    Raises :class:`ServerCertificateError` (cause ``"revoked"``, or ``"crl"`` when no usable
    CRL decides) otherwise."""
    if scope not in CRL_CHECKS:
        raise ValueError(f"crl_check must be one of {', '.join(CRL_CHECKS)}, not {scope!r}")
    when = _aware(when)
    last = len(path) if scope == "all" else 1
    for depth in range(last):
        certificate = path[depth]
        issuer = path[depth + 1] if depth + 1 < len(path) else certificate
        _check_one(certificate, issuer, crls, when, depth)


def _check_one(
    certificate: x509.Certificate,
    issuer: x509.Certificate,
    crls: Sequence[x509.CertificateRevocationList],
    when: datetime.datetime,
    depth: int,
) -> None:
    what = "the server certificate" if depth == 0 else "the CA certificate"
    name = f"{what} {_subject(certificate)}"
    key_id = _key_id(issuer)
    candidates: list[
        tuple[tuple[bool, bool, datetime.datetime, int], x509.CertificateRevocationList]
    ] = []
    for index, crl in enumerate(crls):
        if crl.issuer != certificate.issuer or _extension(crl, x509.DeltaCRLIndicator) is not None:
            continue
        aki = _extension(crl, x509.AuthorityKeyIdentifier)
        if isinstance(aki, x509.AuthorityKeyIdentifier) and aki.key_identifier not in (
            None,
            key_id,
        ):
            continue
        in_date = crl.last_update_utc <= when and (
            crl.next_update_utc is None or crl.next_update_utc >= when
        )
        candidates.append(
            ((_in_scope(crl, certificate), in_date, crl.last_update_utc, -index), crl)
        )
    if not candidates:
        raise _crl_error(
            f"no CRL from {certificate.issuer.rfc4514_string()} (the issuer of {name}) in the "
            "CRL file: its revocation cannot be checked"
        )
    (in_scope, _, _, _), crl = max(candidates, key=lambda c: c[0])
    issued_by = f"the CRL of {crl.issuer.rfc4514_string()}"
    if not in_scope:
        raise _crl_error(f"{issued_by} does not cover {name} (different CRL scope)")
    if crl.last_update_utc > when:
        raise _crl_error(
            f"{issued_by} is not valid yet: its thisUpdate is "
            f"{crl.last_update_utc:%Y-%m-%d %H:%M} UTC"
        )
    if crl.next_update_utc is not None and crl.next_update_utc < when:
        raise _crl_error(
            f"{issued_by} has expired: its nextUpdate was "
            f"{crl.next_update_utc:%Y-%m-%d %H:%M} UTC (a newer CRL is needed)"
        )
    try:
        usage = issuer.extensions.get_extension_for_class(x509.KeyUsage).value
        if not usage.crl_sign:
            raise _crl_error(f"{issued_by}: its issuer's keyUsage does not allow cRLSign")
    except x509.ExtensionNotFound:
        pass
    try:
        valid = crl.is_signature_valid(issuer.public_key())  # type: ignore[arg-type]
    except (TypeError, ValueError, UnsupportedAlgorithm):
        valid = False
    if not valid:
        raise _crl_error(
            f"{issued_by}: its signature does not verify with the key of "
            f"{_subject(issuer)} (CRL signature failure)"
        )
    unknown = [
        e.oid.dotted_string
        for e in crl.extensions
        if e.critical and e.oid not in _KNOWN_CRL_EXTENSIONS
    ]
    entry = crl.get_revoked_certificate_by_serial_number(certificate.serial_number)
    if entry is not None:
        unknown += [
            e.oid.dotted_string
            for e in entry.extensions
            if e.critical and e.oid not in _KNOWN_ENTRY_EXTENSIONS
        ]
    if unknown:
        raise _crl_error(f"{issued_by} has an unhandled critical extension ({', '.join(unknown)})")
    if entry is None:
        return
    reasons = [e.value.reason for e in entry.extensions if isinstance(e.value, x509.CRLReason)]
    reason = reasons[0] if reasons else None
    if reason is x509.ReasonFlags.remove_from_crl:
        return
    raise ServerCertificateError(
        f"{name} (serial {certificate.serial_number:x}) is revoked: {issued_by} lists it, "
        f"revoked on {entry.revocation_date_utc:%Y-%m-%d %H:%M} UTC"
        + (f", reason {reason.value}" if reason is not None else ""),
        AlertCode.CertificateRevoked,
        "revoked",
    )


# --- OCSP -------------------------------------------------------------------------------------


def _ocsp_error(message: str) -> ServerCertificateError:
    return ServerCertificateError(message, AlertCode.BadCertificateStatusResponse, "ocsp")


def _verify_signature(
    key: object, signature: bytes, data: bytes, algorithm: hashes.HashAlgorithm | None
) -> bool:
    try:
        if isinstance(key, rsa.RSAPublicKey) and algorithm is not None:
            key.verify(signature, data, padding.PKCS1v15(), algorithm)
        elif isinstance(key, ec.EllipticCurvePublicKey) and algorithm is not None:
            key.verify(signature, data, ec.ECDSA(algorithm))
        elif isinstance(key, ed25519.Ed25519PublicKey | ed448.Ed448PublicKey):
            key.verify(signature, data)
        else:
            return False
    except (InvalidSignature, ValueError, TypeError, UnsupportedAlgorithm):
        return False
    return True


def _matches(
    single: ocsp.OCSPSingleResponse, leaf: x509.Certificate, issuer: x509.Certificate
) -> bool:
    if single.serial_number != leaf.serial_number:
        return False
    try:
        algorithm = single.hash_algorithm
    except UnsupportedAlgorithm:  # a CertID hashed with an algorithm cryptography lacks
        return False
    name = hashes.Hash(algorithm)
    name.update(issuer.subject.public_bytes())
    key = issuer.public_key().public_bytes(
        serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
    )
    # the hash of the subjectPublicKey BIT STRING's value: the SPKI without its algorithm
    key_hash = hashes.Hash(algorithm)
    key_hash.update(_spki_bits(key))
    return (
        single.issuer_name_hash == name.finalize() and single.issuer_key_hash == key_hash.finalize()
    )


def _spki_bits(spki: bytes) -> bytes:
    """The subjectPublicKey bits of a DER SubjectPublicKeyInfo (SEQUENCE { algorithm, BIT
    STRING }): what OCSP's issuerKeyHash hashes."""

    def header(data: bytes, at: int) -> tuple[int, int]:  # (content start, content length)
        length = data[at + 1]
        if length < 0x80:
            return at + 2, length
        count = length & 0x7F
        return at + 2 + count, int.from_bytes(data[at + 2 : at + 2 + count], "big")

    start, _ = header(spki, 0)
    algorithm_start, algorithm_length = header(spki, start)
    bits_at = algorithm_start + algorithm_length
    bits_start, bits_length = header(spki, bits_at)
    return spki[bits_start + 1 : bits_start + bits_length]  # without the unused-bits byte


def check_ocsp(
    response: bytes | None,
    path: Sequence[x509.Certificate],
    when: datetime.datetime,
) -> ocsp.OCSPResponse:
    """Check a stapled OCSP ``response`` (DER) for the server certificate of the validated
    ``path``; returns the parsed response when it says "good", raises
    :class:`ServerCertificateError` (cause ``"revoked"``, or ``"ocsp"``) otherwise."""
    if not response:
        raise _ocsp_error(
            "the server sent no OCSP answer (no stapled certificate status) although one was "
            "asked for"
        )
    try:
        return _check_ocsp(response, path, _aware(when))
    except (ValueError, TypeError, x509.InvalidVersion, UnsupportedAlgorithm) as e:
        # cryptography parses the parts of a response (certificates, names, keys, algorithms)
        # when they are first read: a hostile server's bytes fail there
        raise _ocsp_error(f"the server's OCSP answer is malformed: {e}") from e


def _check_ocsp(
    response: bytes, path: Sequence[x509.Certificate], when: datetime.datetime
) -> ocsp.OCSPResponse:
    leaf = path[0]
    issuer = path[1] if len(path) > 1 else leaf
    parsed = ocsp.load_der_ocsp_response(response)
    if parsed.response_status is not ocsp.OCSPResponseStatus.SUCCESSFUL:
        raise _ocsp_error(
            f"the server's OCSP answer is an error: {parsed.response_status.name.lower()}"
        )
    signer = _responder(parsed, issuer, when)
    if not _verify_signature(
        signer.public_key(),
        parsed.signature,
        parsed.tbs_response_bytes,
        parsed.signature_hash_algorithm,
    ):
        raise _ocsp_error(
            f"the server's OCSP answer has a bad signature (it does not verify with the key of "
            f"{_subject(signer)})"
        )
    single = next((s for s in parsed.responses if _matches(s, leaf, issuer)), None)
    if single is None:
        raise _ocsp_error(
            f"the server's OCSP answer says nothing about its certificate {_subject(leaf)} "
            f"(serial {leaf.serial_number:x})"
        )
    if single.this_update_utc > when + OCSP_LEEWAY:
        raise _ocsp_error(
            f"the server's OCSP answer is not valid yet (thisUpdate "
            f"{single.this_update_utc:%Y-%m-%d %H:%M:%S} UTC)"
        )
    if single.next_update_utc is not None and single.next_update_utc < when - OCSP_LEEWAY:
        raise _ocsp_error(
            f"the server's OCSP answer is stale: its nextUpdate was "
            f"{single.next_update_utc:%Y-%m-%d %H:%M:%S} UTC"
        )
    status = single.certificate_status
    if status is ocsp.OCSPCertStatus.REVOKED:
        reason = single.revocation_reason
        revoked_at = single.revocation_time_utc
        raise ServerCertificateError(
            f"the server certificate {_subject(leaf)} (serial {leaf.serial_number:x}) is "
            "revoked: its OCSP answer says so"
            + (f", revoked on {revoked_at:%Y-%m-%d %H:%M} UTC" if revoked_at else "")
            + (f", reason {reason.value}" if reason is not None else ""),
            AlertCode.CertificateRevoked,
            "revoked",
        )
    if status is not ocsp.OCSPCertStatus.GOOD:
        raise _ocsp_error(
            f"the server's OCSP answer gives the status of its certificate {_subject(leaf)} as "
            "unknown"
        )
    return parsed


def _responder(
    parsed: ocsp.OCSPResponse, issuer: x509.Certificate, when: datetime.datetime
) -> x509.Certificate:
    """The certificate whose key signed the answer: the issuer itself, or a responder
    certificate in the answer that the issuer issued for OCSP signing."""
    if _names_responder(parsed, issuer):
        return issuer
    for candidate in parsed.certificates:
        if not _names_responder(parsed, candidate):
            continue
        if candidate.issuer != issuer.subject or not _signed_by(candidate, issuer):
            raise _ocsp_error(
                f"the server's OCSP answer is signed by {_subject(candidate)}, which its "
                f"certificate's issuer {_subject(issuer)} did not issue (wrong responder)"
            )
        try:
            usage = candidate.extensions.get_extension_for_class(x509.ExtendedKeyUsage).value
        except x509.ExtensionNotFound:
            usage = None
        if usage is None or ExtendedKeyUsageOID.OCSP_SIGNING not in usage:
            raise _ocsp_error(
                f"the server's OCSP answer is signed by {_subject(candidate)}, whose "
                "certificate does not allow OCSP signing (extendedKeyUsage OCSPSigning)"
            )
        if not candidate.not_valid_before_utc <= when <= candidate.not_valid_after_utc:
            raise _ocsp_error(
                f"the OCSP responder certificate {_subject(candidate)} is not valid now"
            )
        return candidate
    named = (
        parsed.responder_name.rfc4514_string()
        if parsed.responder_name is not None
        else f"key hash {(parsed.responder_key_hash or b'').hex()}"
    )
    raise _ocsp_error(
        f"the server's OCSP answer is signed by a responder ({named}) that is neither its "
        f"certificate's issuer {_subject(issuer)} nor authorised by it (wrong responder)"
    )


def _names_responder(parsed: ocsp.OCSPResponse, certificate: x509.Certificate) -> bool:
    if parsed.responder_name is not None:
        return parsed.responder_name == certificate.subject
    digest = hashes.Hash(hashes.SHA1())
    digest.update(
        _spki_bits(
            certificate.public_key().public_bytes(
                serialization.Encoding.DER, serialization.PublicFormat.SubjectPublicKeyInfo
            )
        )
    )
    return parsed.responder_key_hash == digest.finalize()


def _signed_by(certificate: x509.Certificate, issuer: x509.Certificate) -> bool:
    try:
        certificate.verify_directly_issued_by(issuer)
    except (ValueError, TypeError, InvalidSignature, UnsupportedAlgorithm):
        return False
    return True

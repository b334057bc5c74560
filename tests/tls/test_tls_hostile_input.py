"""Hostile bytes where opcard reads them: a server's stapled OCSP answer, a CRL file and a
session file (``--sess-in``). Each is refused with opcard's own error naming what is wrong,
never one of cryptography's exceptions (``ValueError``, ``UnsupportedAlgorithm``,
``InvalidVersion``, ``OverflowError``) escaping the handshake or the command.
"""

from __future__ import annotations

import base64
import json
import os
import time
from pathlib import Path
from typing import Any

import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509 import ocsp
from cryptography.x509.oid import ExtendedKeyUsageOID, ExtensionOID
from test_tls_parity import DAY, NOW, Cert, make, root

from opcard.errors import ServerCertificateError, TlsError
from opcard.tls import revocation
from opcard.tls.sessions import TlsSession
from opcard.tls.verify import ServerVerifier

ECDSA_SHA256 = bytes.fromhex("06082a8648ce3d040302")


@pytest.fixture(scope="module")
def pki() -> dict[str, Cert]:
    ca = root("hostile root", key="ec-hostile-root")
    leaf = make("localhost", ca, san=["localhost"], key="ec-hostile-leaf")
    responder = make("hostile responder", ca, ku=("digital_signature",),
                     eku=[ExtendedKeyUsageOID.OCSP_SIGNING], key="ec-hostile-resp")  # fmt: skip
    return {"ca": ca, "leaf": leaf, "responder": responder}


def _answer(pki: dict[str, Cert], signer: str) -> bytes:
    builder = (
        ocsp.OCSPResponseBuilder()
        .add_response(
            cert=pki["leaf"].certificate,
            issuer=pki["ca"].certificate,
            algorithm=hashes.SHA1(),
            cert_status=ocsp.OCSPCertStatus.GOOD,
            this_update=NOW - DAY,
            next_update=NOW + DAY,
            revocation_time=None,
            revocation_reason=None,
        )
        .responder_id(ocsp.OCSPResponderEncoding.HASH, pki[signer].certificate)
    )
    if signer != "ca":
        builder = builder.certificates([pki[signer].certificate])
    response = builder.sign(pki[signer].key, hashes.SHA256())  # type: ignore[arg-type]
    return response.public_bytes(serialization.Encoding.DER)


def _replace_last(data: bytes, old: bytes, new: bytes) -> bytes:
    at = data.rindex(old)
    return data[:at] + new + data[at + len(old) :]


def _path(pki: dict[str, Cert]) -> list[x509.Certificate]:
    return [pki["leaf"].certificate, pki["ca"].certificate]


def test_good_answers_pass(pki: dict[str, Cert]) -> None:
    for signer in ("ca", "responder"):
        revocation.check_ocsp(_answer(pki, signer), _path(pki), NOW)
        # a naive time is UTC (it was a TypeError comparing it with cryptography's times)
        revocation.check_ocsp(_answer(pki, signer), _path(pki), NOW.replace(tzinfo=None))
    with pytest.raises(ServerCertificateError, match="stale"):
        revocation.check_ocsp(_answer(pki, "ca"), _path(pki), (NOW + 3 * DAY).replace(tzinfo=None))


@pytest.mark.parametrize(
    ("signer", "old", "new"),
    [
        # the answer's signature algorithm: an OID cryptography does not know
        ("ca", ECDSA_SHA256, bytes.fromhex("06082a8648ce3d040309")),
        # the responder certificate's subject: not a Name
        ("responder", bytes.fromhex("0c11") + b"hostile responder", b"\x05\x11" + b"x" * 17),
    ],
    ids=["unknown-signature-algorithm", "responder-bad-subject"],
)
def test_malformed_ocsp_answer_is_a_certificate_error(
    pki: dict[str, Cert], signer: str, old: bytes, new: bytes
) -> None:
    answer = _replace_last(_answer(pki, signer), old, new)
    with pytest.raises(ServerCertificateError, match="OCSP answer is malformed") as caught:
        revocation.check_ocsp(answer, _path(pki), NOW)
    assert caught.value.cause == "ocsp"


def _crl(pki: dict[str, Cert], extensions: list[x509.ExtensionType]) -> bytes:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(pki["ca"].certificate.subject)
        .last_update(NOW - DAY)
        .next_update(NOW + DAY)
    )
    for extension in extensions:
        builder = builder.add_extension(extension, False)
    crl = builder.sign(pki["ca"].key, hashes.SHA256())  # type: ignore[arg-type]
    return crl.public_bytes(serialization.Encoding.DER)


def test_crl_with_malformed_extension_is_refused_when_loaded(pki: dict[str, Cert]) -> None:
    # a CRL number that is a NULL, not an INTEGER: cryptography parses it when first read
    bad = _crl(pki, [x509.UnrecognizedExtension(ExtensionOID.CRL_NUMBER, b"\x05\x00")])
    with pytest.raises(TlsError, match=r"crl.der: no CRL could be read"):
        revocation.parse_crls(bad, "crl.der")
    pem = b"-----BEGIN X509 CRL-----\n" + base64.encodebytes(bad) + b"-----END X509 CRL-----\n"
    with pytest.raises(TlsError, match=r"crl.pem: no CRL could be read"):
        revocation.parse_crls(pem, "crl.pem")


def test_crl_with_unknown_version_is_refused(pki: dict[str, Cert]) -> None:
    good = _crl(pki, [])
    bad = good.replace(bytes.fromhex("020101"), bytes.fromhex("020105"), 1)
    assert bad != good
    with pytest.raises(TlsError, match=r"crl.der: no CRL could be read"):
        revocation.parse_crls(bad, "crl.der")


def test_naive_now_is_utc_with_a_crl_check(pki: dict[str, Cert]) -> None:
    crls = revocation.parse_crls(_crl(pki, [x509.CRLNumber(1)]))
    verifier = ServerVerifier.from_pem(
        pki["ca"].certificate.public_bytes(serialization.Encoding.PEM)
    ).with_revocation(crls=crls)
    chain = [c.public_bytes(serialization.Encoding.DER) for c in _path(pki)[:1]]
    naive = NOW.replace(tzinfo=None)
    assert verifier.verify(chain, "localhost", now=naive) == verifier.verify(
        chain, "localhost", now=NOW
    )
    with pytest.raises(ServerCertificateError, match="expired"):
        verifier.verify(chain, "localhost", now=naive + 3 * DAY)
    revocation.check_crls(_path(pki), crls, naive)  # the module's own entry too


# --- session files ---------------------------------------------------------------------------


def _document(pki: dict[str, Cert], version: int = 0x0304) -> dict[str, Any]:
    now = time.time()
    ders = [
        base64.b64encode(c.public_bytes(serialization.Encoding.DER)).decode() for c in _path(pki)
    ]
    document: dict[str, Any] = {
        "format": "opcard-tls-session",
        "format_version": 1,
        "host": "127.0.0.1",
        "port": 4433,
        "server_name": "localhost",
        "sni": "localhost",
        "client": "ab" * 32,
        "trust": "cd" * 32,
        "version": version,
        "cipher_suite": 0x1301 if version == 0x0304 else 0xC02B,
        "created": now,
        "expires": now + 3600,
        "extended_master_secret": True,
        "encrypt_then_mac": False,
        "server_chain": ders,
    }
    ticket = base64.b64encode(b"t" * 40).decode()
    if version == 0x0304:
        document["resumption_master_secret"] = "11" * 32
        document["tickets"] = [
            {"ticket": ticket, "lifetime": 7200, "age_add": 5, "nonce": "00", "received": now}
        ]
    else:
        document["master_secret"] = "22" * 48
        document["session_id"] = "33" * 32
        document["tickets"] = [{"ticket": ticket, "lifetime": 7200, "received": now}]
    return document


def _load(document: dict[str, Any]) -> TlsSession:
    return TlsSession.from_bytes(json.dumps(document).encode(), "s.json")


@pytest.mark.parametrize("version", [0x0303, 0x0304])
def test_session_document_round_trip(pki: dict[str, Cert], version: int) -> None:
    session = _load(_document(pki, version))
    assert session.resumable
    assert TlsSession.from_bytes(session.to_bytes()).resumable


@pytest.mark.parametrize("field", ["created", "expires", "received"])
def test_session_huge_timestamp_is_a_tls_error(pki: dict[str, Cert], field: str) -> None:
    document = _document(pki)
    # a JSON integer too large for a float (float() raised OverflowError)
    (document["tickets"][0] if field == "received" else document)[field] = 10**400
    with pytest.raises(TlsError, match=f"s.json: the field '{field}' is out of range"):
        _load(document)


def test_session_huge_integer_not_in_the_message(pki: dict[str, Cert]) -> None:
    document = _document(pki)
    document["port"] = 10**4000
    with pytest.raises(TlsError, match="'port' is out of range") as caught:
        _load(document)
    assert len(str(caught.value)) < 200


@pytest.mark.parametrize(
    ("field", "value"),
    [
        ("host", "127.0.0.1\x1b[2J"),
        ("server_name", "localhost\u202e"),
        ("sni", "local host"),
        ("server_name", "a\nb"),
    ],
)
def test_session_names_with_control_characters_refused(
    pki: dict[str, Cert], field: str, value: str
) -> None:
    document = _document(pki)
    document[field] = value
    with pytest.raises(TlsError, match=f"the field '{field}' holds control"):
        _load(document)


@pytest.mark.parametrize(
    ("version", "changes", "message"),
    [
        (0x0304, {"cipher_suite": 0xC02B}, "cipher suite 0xc02b is not one of a TLS 1.3"),
        (0x0303, {"cipher_suite": 0x1301}, "cipher suite 0x1301 is not one of a TLS 1.2"),
        # TLS_AES_256_GCM_SHA384: a 48-byte resumption secret
        (0x0304, {"cipher_suite": 0x1302}, "'resumption_master_secret' has the wrong length"),
        (0x0304, {"format_version": ["\x1b[2J" * 3000]}, "format version this is not"),
    ],
)
def test_session_inconsistent_fields_refused(
    pki: dict[str, Cert], version: int, changes: dict[str, Any], message: str
) -> None:
    document = _document(pki, version)
    document.update(changes)
    with pytest.raises(TlsError, match=message) as caught:
        _load(document)
    assert len(str(caught.value)) < 200


# --- a server's certificates ------------------------------------------------------------------


def _server_chains() -> dict[str, list[bytes]]:
    ca = root("hostile root", key="ec-hostile-root")
    other = root("other root", key="ec-hostile-other")
    leaf = make("localhost", other, san=["localhost"], key="ec-hostile-leaf")
    own = make("localhost", ca, san=["localhost"], key="ec-hostile-leaf")
    der = {n: c.certificate.public_bytes(serialization.Encoding.DER) for n, c in
           (("other", other), ("leaf", leaf), ("own", own))}  # fmt: skip
    return {
        # an intermediate whose names cryptography parses only when they are read (the
        # explanation of the failed chain): its subject's common name is not a string
        "bad-intermediate-name": [
            der["leaf"],
            der["other"].replace(b"\x0c\x0aother root", b"\x05\x0aother root"),
        ],
        # the server's key on a curve cryptography does not know (read for the pin)
        "unknown-curve": [
            der["own"].replace(
                bytes.fromhex("06082a8648ce3d030107"), bytes.fromhex("06082a1348ce3d030107")
            )
        ],
    }


@pytest.mark.parametrize(
    ("name", "mode"),
    [("bad-intermediate-name", "ca"), ("unknown-curve", "pin")],
)
def test_malformed_server_certificate_is_a_certificate_error(
    pki: dict[str, Cert], name: str, mode: str
) -> None:
    verifier = ServerVerifier.from_pem(
        pki["ca"].certificate.public_bytes(serialization.Encoding.PEM)
    )
    if mode == "pin":
        verifier = verifier.with_pins([b"\x00" * 32])
    with pytest.raises(ServerCertificateError, match="the server's certificate is malformed"):
        verifier.verify(_server_chains()[name], "localhost")


def test_session_load_refuses_what_is_not_a_private_file(
    pki: dict[str, Cert], tmp_path: Path
) -> None:
    good = tmp_path / "good.json"
    good.write_bytes(json.dumps(_document(pki)).encode())
    good.chmod(0o600)
    assert TlsSession.load(good).resumable
    directory = tmp_path / "dir"
    directory.mkdir()
    link = tmp_path / "link.json"
    link.symlink_to(good)
    fifo = tmp_path / "fifo"
    os.mkfifo(fifo)
    # a directory was an IsADirectoryError escaping from os.fdopen
    for path, message in (
        (directory, "is not a regular file"),
        (fifo, "is not a regular file"),
        (link, "is a symbolic link: refused"),
    ):
        with pytest.raises(TlsError, match=f"the session file {path} {message}"):
            TlsSession.load(path)

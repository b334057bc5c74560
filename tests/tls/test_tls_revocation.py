"""Revocation with CRLs, judged side by side with OpenSSL.

Every row is a chain, trust anchors and a CRL file made here with ``cryptography``; OpenSSL
judges it with ``openssl verify -crl_check`` (the server certificate) or ``-crl_check_all``
(the whole path) ``-CRLfile``, and opcard's :class:`ServerVerifier` with
``with_revocation(crls=…, crl_check="leaf" | "all")``. The two verdicts must agree on every
row, and each row states the verdict it must have (and opcard's cause when it refuses).
"""

from __future__ import annotations

import datetime
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path

import pytest
from conftest import require_tool
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.x509.oid import ObjectIdentifier
from test_tls_parity import CA_KU, DAY, NOW, Cert, _pem, make, root

from opcard.errors import TlsError
from opcard.tls import ServerCertificateError
from opcard.tls.revocation import load_crls, parse_crls
from opcard.tls.verify import ServerVerifier

Crl = x509.CertificateRevocationList


def crl(
    issuer: Cert,
    revoked: Sequence[Cert] = (),
    *,
    this: datetime.datetime | None = None,
    next_: datetime.datetime | None = None,
    key: Cert | None = None,
    reason: x509.ReasonFlags | None = None,
    extensions: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> Crl:
    builder = (
        x509.CertificateRevocationListBuilder()
        .issuer_name(issuer.certificate.subject)
        .last_update(this or NOW - DAY)
        .next_update(next_ or NOW + DAY)
    )
    for cert in revoked:
        entry = (
            x509.RevokedCertificateBuilder()
            .serial_number(cert.certificate.serial_number)
            .revocation_date(NOW - DAY)
        )
        if reason is not None:
            entry = entry.add_extension(x509.CRLReason(reason), False)
        builder = builder.add_revoked_certificate(entry.build())
    for ext, critical in extensions:
        builder = builder.add_extension(ext, critical)
    return builder.sign((key or issuer).key, hashes.SHA256())


@dataclass
class Row:
    name: str
    scope: str  # "leaf" (-crl_check) or "all" (-crl_check_all)
    chain: list[Cert]
    anchors: list[Cert]
    crls: list[Crl]
    cause: str | None  # None: accepted; else opcard's cause


def _rows() -> list[Row]:
    r = root("revocation root", key="ec-rev-root")
    i = make("revocation intermediate", r, ca=True, ku=CA_KU, eku=None, key="ec-rev-int")
    leaf = make("localhost", i, san=["localhost"], key="ec-rev-leaf")
    other = root("unrelated root", key="ec-rev-other")
    chain, anchors = [leaf, i], [r]
    rows: list[Row] = []

    def add(name: str, scope: str, crls: list[Crl], cause: str | None, **kw: object) -> None:
        rows.append(
            Row(name, scope, kw.get("chain", chain), kw.get("anchors", anchors), crls, cause)  # type: ignore[arg-type]
        )

    add("unrevoked leaf, CRL of its issuer", "leaf", [crl(i)], None)
    add("revoked leaf", "leaf", [crl(i, [leaf])], "revoked")
    add("revoked leaf, reason keyCompromise", "leaf",
        [crl(i, [leaf], reason=x509.ReasonFlags.key_compromise)], "revoked")  # fmt: skip
    add("revoked leaf, reason certificateHold", "leaf",
        [crl(i, [leaf], reason=x509.ReasonFlags.certificate_hold)], "revoked")  # fmt: skip
    add("listed with reason removeFromCRL", "leaf",
        [crl(i, [leaf], reason=x509.ReasonFlags.remove_from_crl)], None)  # fmt: skip
    add("revoked intermediate, leaf checked only", "leaf", [crl(i), crl(r, [i])], None)
    add("revoked intermediate, whole path", "all", [crl(i), crl(r, [i])], "revoked")
    add("whole path, nothing revoked", "all", [crl(i), crl(r)], None)
    add("whole path, no CRL of the root", "all", [crl(i)], "crl")
    add("whole path, root revoked in its own CRL", "all", [crl(i), crl(r, [r])], "revoked")
    add("CRL from the wrong issuer", "leaf", [crl(other, [leaf])], "crl")
    add("only the root's CRL, leaf checked", "leaf", [crl(r)], "crl")
    add("CRL under the issuer's name, signed by another key", "leaf",
        [crl(i, key=other)], "crl")  # fmt: skip
    add("expired CRL", "leaf", [crl(i, this=NOW - 3 * DAY, next_=NOW - DAY)], "crl")
    add("CRL not yet valid", "leaf", [crl(i, this=NOW + DAY, next_=NOW + 3 * DAY)], "crl")
    add("expired CRL and a current one", "leaf",
        [crl(i, [leaf], this=NOW - 3 * DAY, next_=NOW - DAY), crl(i)], None)  # fmt: skip
    add("newer CRL revokes, older does not", "leaf",
        [crl(i, this=NOW - 2 * DAY), crl(i, [leaf], this=NOW - DAY / 2)], "revoked")  # fmt: skip
    add("older CRL revokes, newer does not", "leaf",
        [crl(i, [leaf], this=NOW - 2 * DAY), crl(i, this=NOW - DAY / 2)], None)  # fmt: skip
    add("unknown critical CRL extension", "leaf",
        [crl(i, extensions=[(x509.UnrecognizedExtension(
            ObjectIdentifier("1.3.6.1.4.1.55555.2"), b"\x05\x00"), True)])], "crl")  # fmt: skip
    add("CRL number and the issuer's key identifier", "leaf",
        [crl(i, [leaf], extensions=[(x509.CRLNumber(7), False), (
            x509.AuthorityKeyIdentifier.from_issuer_public_key(i.key.public_key()), False)])],
        "revoked")  # fmt: skip
    add("CRL whose key identifier names another key", "leaf",
        [crl(i, [leaf], extensions=[(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(other.key.public_key()), False)])],
        "crl")  # fmt: skip
    only_ca = x509.IssuingDistributionPoint(None, None, False, True, None, False, False)
    only_user = x509.IssuingDistributionPoint(None, None, True, False, None, False, False)
    add("CRL only for CA certificates, leaf checked", "leaf",
        [crl(i, [leaf], extensions=[(only_ca, True)])], "crl")  # fmt: skip
    add("CRL only for end-entity certificates, revoked leaf", "leaf",
        [crl(i, [leaf], extensions=[(only_user, True)])], "revoked")  # fmt: skip
    i_nocrl = make("intermediate without cRLSign", r, ca=True, ku=("key_cert_sign",), eku=None,
                   key="ec-rev-int2")  # fmt: skip
    leaf2 = make("localhost", i_nocrl, san=["localhost"], key="ec-rev-leaf")
    add("issuer's keyUsage without cRLSign", "leaf", [crl(i_nocrl)], "crl",
        chain=[leaf2, i_nocrl])  # fmt: skip
    ss = make("localhost", ca=False, san=["localhost"], ku=("digital_signature", "crl_sign"),
              key="ec-rev-self")  # fmt: skip
    add("self-signed server = anchor, its own CRL", "leaf", [crl(ss)], None,
        chain=[ss], anchors=[ss])  # fmt: skip
    add("self-signed server = anchor, revoked in its own CRL", "leaf", [crl(ss, [ss])],
        "revoked", chain=[ss], anchors=[ss])  # fmt: skip
    add("self-signed server = anchor, no CRL of its own", "leaf", [crl(i)], "crl",
        chain=[ss], anchors=[ss])  # fmt: skip
    return rows


def _crl_pem(crls: Sequence[Crl]) -> bytes:
    return b"".join(c.public_bytes(serialization.Encoding.PEM) for c in crls)


def openssl_verdict(row: Row, directory: Path) -> tuple[bool, str]:
    openssl = require_tool("openssl")
    (directory / "ca.pem").write_bytes(_pem(row.anchors))
    (directory / "leaf.pem").write_bytes(_pem(row.chain[:1]))
    (directory / "crl.pem").write_bytes(_crl_pem(row.crls))
    argv = [openssl, "verify", "-CAfile", str(directory / "ca.pem"), "-purpose", "sslserver",
            "-crl_check" if row.scope == "leaf" else "-crl_check_all",
            "-CRLfile", str(directory / "crl.pem")]  # fmt: skip
    if len(row.chain) > 1:
        (directory / "untrusted.pem").write_bytes(_pem(row.chain[1:]))
        argv += ["-untrusted", str(directory / "untrusted.pem")]
    argv += ["-verify_hostname", "localhost", str(directory / "leaf.pem")]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    lines = (done.stdout + done.stderr).strip().splitlines()
    reason = next((ln for ln in lines if "error" in ln), lines[-1] if lines else "")
    return done.returncode == 0, reason


def opcard_verdict(row: Row) -> tuple[bool, str, str | None]:
    verifier = ServerVerifier.from_pem(_pem(row.anchors), "ca.pem").with_revocation(
        crls=parse_crls(_crl_pem(row.crls), "crl.pem"), crl_check=row.scope
    )
    der = [c.certificate.public_bytes(serialization.Encoding.DER) for c in row.chain]
    try:
        verifier.verify(der, "localhost")
    except ServerCertificateError as e:
        return False, str(e), e.cause
    return True, "ok", None


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    return _rows()


def test_crl_parity_with_openssl(
    rows: list[Row], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    assert len(rows) >= 20
    out: list[str] = []
    wrong: list[str] = []
    for n, row in enumerate(rows):
        d = tmp_path / str(n)
        d.mkdir()
        ossl, why_ossl = openssl_verdict(row, d)
        ours, why_ours, cause = opcard_verdict(row)
        expected = row.cause is None
        ok = ossl == ours == expected and cause == row.cause
        out.append(
            f"{'ok ' if ok else '!! '}{row.name:55} {row.scope:4} "
            f"openssl={'accept' if ossl else 'refuse':6} opcard={'accept' if ours else 'refuse':6}"
            + (f" ({cause})" if cause else "")
        )
        if not ok:
            wrong.append(
                f"{row.name}: expected {row.cause or 'accept'}, openssl {ossl} ({why_ossl}), "
                f"opcard {ours} ({cause}: {why_ours})"
            )
    with capsys.disabled():
        print("\n" + "\n".join(out))
    assert not wrong, "\n".join(wrong)


def test_crl_file_pem_several_and_der(rows: list[Row], tmp_path: Path) -> None:
    """A PEM file with several CRLs (and text around them, as ``openssl crl -text`` writes)
    and a DER file read to the same CRLs."""
    crls = rows[5].crls  # two CRLs
    pem = tmp_path / "crls.pem"
    pem.write_bytes(b"comment\n" + _crl_pem(crls[:1]) + b"more text\n" + _crl_pem(crls[1:]))
    loaded = load_crls(pem)
    assert [c.public_bytes(serialization.Encoding.DER) for c in loaded] == [
        c.public_bytes(serialization.Encoding.DER) for c in crls
    ]
    der = tmp_path / "crl.der"
    der.write_bytes(crls[0].public_bytes(serialization.Encoding.DER))
    assert load_crls(der) == (crls[0],)
    for bad, text in ((b"not a crl", "no CRL could be read"),
                      (_pem(rows[0].anchors), "no '-----BEGIN X509 CRL-----' block")):  # fmt: skip
        (tmp_path / "bad").write_bytes(bad)
        with pytest.raises(TlsError, match=text):
            load_crls(tmp_path / "bad")
    with pytest.raises(TlsError, match="cannot read the CRL file"):
        load_crls(tmp_path / "missing.pem")


def test_revoked_message_names_certificate_and_date(rows: list[Row]) -> None:
    row = next(r for r in rows if r.name == "revoked leaf, reason keyCompromise")
    ok, message, cause = opcard_verdict(row)
    assert not ok and cause == "revoked"
    serial = f"{row.chain[0].certificate.serial_number:x}"
    assert "the server certificate CN=localhost,O=opcard parity" in message
    assert serial in message and "reason keyCompromise" in message
    row = next(r for r in rows if r.name == "expired CRL")
    assert "has expired" in opcard_verdict(row)[1]


def test_with_revocation_arguments(rows: list[Row]) -> None:
    verifier = ServerVerifier.from_pem(_pem(rows[0].anchors))
    with pytest.raises(ValueError, match="'leaf' or 'all'"):
        verifier.with_revocation(crls=rows[0].crls, crl_check="chain")
    with pytest.raises(ValueError, match="needs CRLs"):
        verifier.with_revocation(crl_check="all")
    assert verifier.with_revocation(crls=rows[0].crls).crl_check == "leaf"
    with pytest.raises(ValueError, match="not only a pinned key"):
        ServerVerifier.pinned([b"\0" * 32]).with_revocation(require_ocsp=True)

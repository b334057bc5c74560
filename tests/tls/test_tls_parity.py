"""opcard's server verifier judged side by side with OpenSSL's default verifier and Python's
``ssl``.

Every row is a server certificate chain made here with ``cryptography``; OpenSSL judges it as
``openssl s_client`` does by default (``openssl verify -CAfile CA [-untrusted CHAIN]
-verify_hostname NAME | -verify_ip IP -purpose sslserver -auth_level 2``: security level 2 is
Debian's default for TLS, which ``s_client`` passes on to the verifier as its authentication
level), Python's ``ssl`` (``create_default_context``, a handshake in memory with a server that
sends the chain) and opcard's :class:`ServerVerifier` judge the same chain. The three verdicts
must agree on every row, and each row also states the verdict it must have, so that a change
on any side shows up.
"""

from __future__ import annotations

import contextlib
import datetime
import ipaddress
import ssl
import subprocess
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path

import pytest
from conftest import require_tool
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec, rsa
from cryptography.x509.oid import ExtendedKeyUsageOID, NameOID, ObjectIdentifier

from opcard.tls import ServerCertificateError, TlsError
from opcard.tls.verify import ServerVerifier

NOW = datetime.datetime.now(datetime.UTC)
DAY = datetime.timedelta(days=1)
Key = ec.EllipticCurvePrivateKey | rsa.RSAPrivateKey

_KEYS: dict[str, Key] = {}


def _key(kind: str = "ec") -> Key:
    """Keys are shared between rows of the same kind (making them is the slow part)."""
    if kind not in _KEYS:
        if kind.startswith("rsa"):
            _KEYS[kind] = rsa.generate_private_key(65537, int(kind.split("-")[1].split(".")[0]))
        else:
            _KEYS[kind] = ec.generate_private_key(ec.SECP256R1())
    return _KEYS[kind]


@dataclass
class Cert:
    certificate: x509.Certificate
    key: Key


def make(
    cn: str | None,
    issuer: Cert | None = None,
    *,
    key: str = "ec",
    ca: bool | None = False,
    bc_critical: bool = True,
    pathlen: int | None = None,
    ku: Sequence[str] | None = ("digital_signature",),
    eku: Sequence[ObjectIdentifier] | None = (ExtendedKeyUsageOID.SERVER_AUTH,),
    san: Sequence[str] | None = None,
    ski: bool = True,
    aki: bool = True,
    start: datetime.datetime | None = None,
    end: datetime.datetime | None = None,
    hash_: hashes.HashAlgorithm | None = None,
    extra: Sequence[tuple[x509.ExtensionType, bool]] = (),
) -> Cert:
    subject_key = _key(key)
    attrs = [x509.NameAttribute(NameOID.ORGANIZATION_NAME, "opcard parity")]
    if cn is not None:
        attrs.append(x509.NameAttribute(NameOID.COMMON_NAME, cn))
    name = x509.Name(attrs)
    signer = issuer.key if issuer else subject_key
    builder = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(issuer.certificate.subject if issuer else name)
        .public_key(subject_key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(start or NOW - DAY)
        .not_valid_after(end or NOW + 30 * DAY)
    )
    if ski:
        builder = builder.add_extension(
            x509.SubjectKeyIdentifier.from_public_key(subject_key.public_key()), False
        )
    if aki:
        builder = builder.add_extension(
            x509.AuthorityKeyIdentifier.from_issuer_public_key(signer.public_key()), False
        )
    if ca is not None:
        builder = builder.add_extension(x509.BasicConstraints(ca, pathlen), bc_critical)
    if ku is not None:
        flags = dict.fromkeys(
            [
                "digital_signature",
                "content_commitment",
                "key_encipherment",
                "data_encipherment",
                "key_agreement",
                "key_cert_sign",
                "crl_sign",
                "encipher_only",
                "decipher_only",
            ],
            False,
        )
        flags.update(dict.fromkeys(ku, True))
        builder = builder.add_extension(x509.KeyUsage(**flags), True)
    if eku is not None:
        builder = builder.add_extension(x509.ExtendedKeyUsage(list(eku)), False)
    if san is not None:
        alt: list[x509.GeneralName] = []
        for n in san:
            try:
                alt.append(x509.IPAddress(ipaddress.ip_address(n)))
            except ValueError:
                alt.append(x509.DNSName(n))
        builder = builder.add_extension(x509.SubjectAlternativeName(alt), False)
    for ext, critical in extra:
        builder = builder.add_extension(ext, critical)
    algorithm = hash_ if hash_ is not None else hashes.SHA256()
    return Cert(builder.sign(signer, algorithm), subject_key)


def sha1_sign(cert: Cert, issuer: Cert | None) -> Cert:
    """``cert`` (self-signed) signed again with SHA-1 (cryptography no longer signs with it):
    ``openssl x509 -sha1``, by ``issuer`` (which it then names) or by its own key."""
    import tempfile

    openssl = require_tool("openssl")
    signer = issuer.key if issuer else cert.key
    with tempfile.TemporaryDirectory() as tmp:
        d = Path(tmp)
        (d / "c.pem").write_bytes(cert.certificate.public_bytes(serialization.Encoding.PEM))
        (d / "k.pem").write_bytes(
            signer.private_bytes(
                serialization.Encoding.PEM,
                serialization.PrivateFormat.PKCS8,
                serialization.NoEncryption(),
            )
        )
        argv = [openssl, "x509", "-in", str(d / "c.pem"), "-sha1", "-preserve_dates"]
        if issuer is None:
            argv += ["-key", str(d / "k.pem")]
        else:
            (d / "ca.pem").write_bytes(issuer.certificate.public_bytes(serialization.Encoding.PEM))
            argv += ["-CA", str(d / "ca.pem"), "-CAkey", str(d / "k.pem"), "-set_serial", "4242"]
        done = subprocess.run(argv, capture_output=True, timeout=30)
        assert done.returncode == 0, done.stderr
    new = x509.load_pem_x509_certificate(done.stdout)
    assert new.signature_hash_algorithm is not None
    assert new.signature_hash_algorithm.name == "sha1", new.signature_hash_algorithm
    kept = {e.oid for e in cert.certificate.extensions}
    assert kept <= {e.oid for e in new.extensions}, new.extensions
    return Cert(new, cert.key)


CA_KU = ("key_cert_sign", "crl_sign")


def root(cn: str = "parity root", **kw: object) -> Cert:
    args: dict[str, object] = {"ca": True, "ku": CA_KU, "eku": None}
    args.update(kw)
    return make(cn, **args)  # type: ignore[arg-type]


@dataclass
class Row:
    name: str
    host: str
    anchors: list[Cert]
    chain: list[Cert]  # server certificate first, then what the server sends
    expected: bool
    note: str = field(default="")


def _rows() -> list[Row]:
    r = root()
    rows: list[Row] = []

    def add(
        name: str,
        expected: bool,
        chain: list[Cert],
        anchors: list[Cert] | None = None,
        host: str = "localhost",
    ) -> None:
        rows.append(Row(name, host, anchors if anchors is not None else [r], chain, expected))

    leaf = make("localhost", r, san=["localhost"])
    add("ordinary: root -> leaf (DNS SAN)", True, [leaf])
    # openssl req -x509 -subj /CN=localhost: CA:TRUE (not critical), SKI, AKI, no SAN/KU/EKU
    req = make("localhost", ca=True, bc_critical=False, ku=None, eku=None)
    add("self-signed leaf = anchor, CA:TRUE, CN only", True, [req], [req])
    ss = make("localhost", ca=None, ku=None, eku=None, san=["localhost"])
    add("self-signed leaf = anchor, no basicConstraints", True, [ss], [ss])
    ssf = make("localhost", ca=False, san=["localhost"])
    add("self-signed leaf = anchor, CA:FALSE, SAN", True, [ssf], [ssf])
    add("self-signed leaf = anchor, wrong name", False, [ssf], [ssf], host="other.test")
    ssx = make("localhost", ca=True, san=["localhost"], end=NOW - DAY, start=NOW - 3 * DAY)
    add("self-signed leaf = anchor, expired", False, [ssx], [ssx])
    ssc = make("localhost", ca=True, san=["localhost"], eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    add("self-signed leaf = anchor, clientAuth only", False, [ssc], [ssc])
    add("self-signed leaf, not in the CA file", False, [ss])
    r_noku = root("root without keyUsage", ku=None, bc_critical=False)
    add("CA without keyUsage", True, [make("localhost", r_noku, san=["localhost"])], [r_noku])
    r_noid = root("root without SKI", ski=False, aki=False)
    add(
        "CA and leaf without AKI/SKI",
        True,
        [make("localhost", r_noid, san=["localhost"], ski=False, aki=False)],
        [r_noid],
    )
    r_badku = root("root with keyUsage digitalSignature", ku=("digital_signature",))
    add(
        "CA keyUsage without keyCertSign",
        False,
        [make("localhost", r_badku, san=["localhost"])],
        [r_badku],
    )
    add(
        "leaf expired",
        False,
        [make("localhost", r, san=["localhost"], start=NOW - 9 * DAY, end=NOW - DAY)],
    )
    add(
        "leaf not yet valid",
        False,
        [make("localhost", r, san=["localhost"], start=NOW + DAY, end=NOW + 9 * DAY)],
    )
    r_old = root("expired root", start=NOW - 9 * DAY, end=NOW - DAY)
    add("root expired", False, [make("localhost", r_old, san=["localhost"])], [r_old])
    add("wrong name", False, [make("www.example.test", r, san=["www.example.test"])])
    ip = make(None, r, san=["127.0.0.1"])
    add("IP SAN, IP host", True, [ip], host="127.0.0.1")
    add("IP SAN, DNS host", False, [ip], host="localhost")
    add(
        "DNS SAN '127.0.0.1', IP host",
        False,
        [make("x", r, san=["127.0.0.1.test"])],
        host="127.0.0.1",
    )
    add("IP SAN ::1, IPv6 host", True, [make(None, r, san=["::1"])], host="::1")
    add("CN only (no SAN)", True, [make("localhost", r)])
    add("CN only, wrong CN", False, [make("otherhost", r)])
    add("CN matches but DNS SAN does not", False, [make("localhost", r, san=["other.test"])])
    add("CN matches, only an IP SAN", True, [make("localhost", r, san=["127.0.0.1"])])
    add("CN = IP address, IP host", False, [make("127.0.0.1", r)], host="127.0.0.1")
    wild = make(None, r, san=["*.example.test"])
    add("wildcard *.example.test for a.example.test", True, [wild], host="a.example.test")
    add("wildcard *.example.test for a.b.example.test", False, [wild], host="a.b.example.test")
    add("wildcard *.example.test for example.test", False, [wild], host="example.test")
    add(
        "wildcard *.test (too few labels)",
        False,
        [make(None, r, san=["*.test"])],
        host="example.test",
    )
    add(
        "wildcard not leftmost a.*.example.test",
        False,
        [make(None, r, san=["a.*.example.test"])],
        host="a.b.example.test",
    )
    add("host name case", True, [make(None, r, san=["LocalHost"])], host="LOCALHOST")
    inter = make("parity intermediate", r, ca=True, ku=CA_KU, eku=None)
    il = make("localhost", inter, san=["localhost"])
    add("intermediate missing", False, [il])
    add("intermediate supplied by the server", True, [il, inter])
    add("intermediate in the CA file, root not", False, [il], [inter])
    add("intermediate and root in the CA file", True, [il], [r, inter])
    r0 = root("root pathlen 0", pathlen=0)
    i0 = make("intermediate under pathlen 0", r0, ca=True, ku=CA_KU, eku=None)
    add(
        "path length violated (root pathlen 0)",
        False,
        [make("localhost", i0, san=["localhost"]), i0],
        [r0],
    )
    ip0 = make("intermediate pathlen 0", r, ca=True, ku=CA_KU, eku=None, pathlen=0)
    add("intermediate pathlen 0 -> leaf", True, [make("localhost", ip0, san=["localhost"]), ip0])
    i_nca = make("not a CA", r, ca=False, ku=CA_KU, eku=None)
    add("issuer CA:FALSE", False, [make("localhost", i_nca, san=["localhost"]), i_nca])
    i_nobc = make("no basicConstraints", r, ca=None, ku=CA_KU, eku=None)
    add(
        "issuer without basicConstraints",
        False,
        [make("localhost", i_nobc, san=["localhost"]), i_nobc],
    )
    i_eku = make(
        "intermediate clientAuth", r, ca=True, ku=CA_KU, eku=[ExtendedKeyUsageOID.CLIENT_AUTH]
    )
    add(
        "intermediate EKU clientAuth only",
        False,
        [make("localhost", i_eku, san=["localhost"]), i_eku],
    )
    add(
        "leaf EKU clientAuth only",
        False,
        [make("localhost", r, san=["localhost"], eku=[ExtendedKeyUsageOID.CLIENT_AUTH])],
    )
    add(
        "leaf EKU serverAuth + clientAuth",
        True,
        [
            make(
                "localhost",
                r,
                san=["localhost"],
                eku=[ExtendedKeyUsageOID.CLIENT_AUTH, ExtendedKeyUsageOID.SERVER_AUTH],
            )
        ],
    )
    add(
        "leaf without EKU and keyUsage",
        True,
        [make("localhost", r, san=["localhost"], eku=None, ku=None)],
    )
    add(
        "leaf keyUsage keyCertSign only",
        False,
        [make("localhost", r, san=["localhost"], ku=("key_cert_sign",))],
    )
    add(
        "leaf CA:TRUE issued by the root",
        True,
        [make("localhost", r, san=["localhost"], ca=True, ku=None)],
    )
    r_rsa = root("RSA-2048 root", key="rsa-2048.root")
    add(
        "leaf signed with SHA-1 (RSA)",
        False,
        [sha1_sign(make("localhost", san=["localhost"], aki=False), r_rsa)],
        [r_rsa],
    )
    r_sha1 = sha1_sign(root("SHA-1 self-signed root", key="rsa-2048.root"), None)
    add(
        "root self-signed with SHA-1 (anchor)",
        True,
        [make("localhost", r_sha1, san=["localhost"])],
        [r_sha1],
    )
    add("leaf RSA-1024", False, [make("localhost", r, san=["localhost"], key="rsa-1024")])
    add("leaf RSA-2048", True, [make("localhost", r, san=["localhost"], key="rsa-2048")])
    add(
        "RSA root, SHA-384 leaf",
        True,
        [make("localhost", r_rsa, san=["localhost"], hash_=hashes.SHA384())],
        [r_rsa],
    )
    add(
        "unknown critical extension",
        False,
        [
            make(
                "localhost",
                r,
                san=["localhost"],
                extra=[
                    (
                        x509.UnrecognizedExtension(
                            ObjectIdentifier("1.3.6.1.4.1.55555.1"), b"\x05\x00"
                        ),
                        True,
                    )
                ],
            )
        ],
    )
    other = root("other root", key="ec-other")
    add("issued by an unknown CA", False, [make("localhost", other, san=["localhost"])])
    add("CA file holds another CA too", True, [leaf], [other, r])
    for name, kw in [
        ("root without basicConstraints and keyUsage", {"ca": None, "ku": None}),
        ("root CA:FALSE", {"ca": False}),
    ]:
        bad_root = root(name, **kw)
        add(name, False, [make("localhost", bad_root, san=["localhost"])], [bad_root])
    i_kcs = make("no basicConstraints, keyCertSign", r, ca=None, ku=CA_KU, eku=None)
    add("intermediate without basicConstraints, keyCertSign", False,
        [make("localhost", i_kcs, san=["localhost"]), i_kcs])  # fmt: skip
    any_eku = [ExtendedKeyUsageOID.ANY_EXTENDED_KEY_USAGE]
    i_any = make("intermediate anyEKU", r, ca=True, ku=CA_KU, eku=any_eku)
    add("intermediate EKU anyExtendedKeyUsage only", False,
        [make("localhost", i_any, san=["localhost"]), i_any])  # fmt: skip
    add("leaf EKU anyExtendedKeyUsage only", False,
        [make("localhost", r, san=["localhost"], eku=any_eku)])  # fmt: skip
    r_eku = root("root EKU clientAuth", eku=[ExtendedKeyUsageOID.CLIENT_AUTH])
    add("root EKU clientAuth only", False,
        [make("localhost", r_eku, san=["localhost"])], [r_eku])  # fmt: skip
    add("leaf keyUsage keyEncipherment only", True,
        [make("localhost", r, san=["localhost"], ku=("key_encipherment",))])  # fmt: skip
    # OpenSSL's check_ca without X509_V_FLAG_X509_STRICT: a trust anchor without
    # basicConstraints is a CA when its keyUsage allows keyCertSign
    bare = root("root without basicConstraints, keyCertSign", ca=None, key="ec-bare")
    add("root without basicConstraints, keyCertSign", True,
        [make("localhost", bare, san=["localhost"])], [bare])  # fmt: skip
    add("root without basicConstraints, keyCertSign, via an intermediate", True,
        [make("localhost", ib := make("intermediate under a bare root", bare, ca=True, ku=CA_KU,
              eku=None), san=["localhost"]), ib], [bare])  # fmt: skip
    bare_ds = root("root without basicConstraints, digitalSignature", ca=None,
                   ku=("digital_signature",), key="ec-bare")  # fmt: skip
    add("root without basicConstraints, keyUsage without keyCertSign", False,
        [make("localhost", bare_ds, san=["localhost"])], [bare_ds])  # fmt: skip
    # a trailing dot is one more character for X509_check_host
    for names, host, ok in (
        (["localhost"], "localhost.", False),
        (["localhost."], "localhost", False),
        (["localhost."], "localhost.", True),
        (["*.example.test"], "a.example.test.", False),
        (["*.example.test."], "a.example.test.", False),
    ):
        add(f"trailing dot: {names[0]} for {host}", ok,
            [make("localhost", r, san=names)], host=host)  # fmt: skip
    add("trailing dot: CN localhost. (no SAN) for localhost.", True,
        [make("localhost.", r)], host="localhost.")  # fmt: skip
    return rows


def _pem(certs: Sequence[Cert]) -> bytes:
    return b"".join(c.certificate.public_bytes(serialization.Encoding.PEM) for c in certs)


def openssl_verdict(row: Row, directory: Path) -> tuple[bool, str]:
    openssl = require_tool("openssl")
    (directory / "ca.pem").write_bytes(_pem(row.anchors))
    (directory / "leaf.pem").write_bytes(_pem(row.chain[:1]))
    argv = [
        openssl,
        "verify",
        "-CAfile",
        str(directory / "ca.pem"),
        "-purpose",
        "sslserver",
        "-auth_level",
        "2",
    ]
    if len(row.chain) > 1:
        (directory / "untrusted.pem").write_bytes(_pem(row.chain[1:]))
        argv += ["-untrusted", str(directory / "untrusted.pem")]
    host = row.host.rstrip(".") if row.host.endswith(".") else row.host
    try:
        ipaddress.ip_address(host)
        argv += ["-verify_ip", host]
    except ValueError:
        argv += ["-verify_hostname", row.host]
    argv.append(str(directory / "leaf.pem"))
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30)
    lines = (done.stdout + done.stderr).strip().splitlines()
    reason = next((ln for ln in lines if "error" in ln), lines[-1] if lines else "")
    return done.returncode == 0, reason


def python_ssl_verdict(row: Row, directory: Path) -> tuple[bool, str]:
    """Python's ``ssl`` (``create_default_context``: CERT_REQUIRED, check_hostname) as the
    client of a handshake in memory with a server that sends ``row.chain``."""
    (directory / "ca.pem").write_bytes(_pem(row.anchors))
    (directory / "chain.pem").write_bytes(_pem(row.chain))
    (directory / "key.pem").write_bytes(
        row.chain[0].key.private_bytes(
            serialization.Encoding.PEM,
            serialization.PrivateFormat.PKCS8,
            serialization.NoEncryption(),
        )
    )
    server = ssl.SSLContext(ssl.PROTOCOL_TLS_SERVER)
    server.set_ciphers("DEFAULT:@SECLEVEL=0")  # the server must be able to send weak chains
    server.load_cert_chain(directory / "chain.pem", directory / "key.pem")
    client = ssl.create_default_context(cafile=str(directory / "ca.pem"))
    c_in, c_out, s_in, s_out = (ssl.MemoryBIO() for _ in range(4))
    c = client.wrap_bio(c_in, c_out, server_hostname=row.host)
    s = server.wrap_bio(s_in, s_out, server_side=True)
    for _ in range(10):
        try:
            c.do_handshake()
            return True, "ok"
        except ssl.SSLWantReadError:
            pass
        except ssl.SSLError as e:
            return False, str(e)
        s_in.write(c_out.read())
        with contextlib.suppress(ssl.SSLError):
            s.do_handshake()
        c_in.write(s_out.read())
    raise AssertionError(f"{row.name}: the in-memory handshake did not finish")


def opcard_verdict(row: Row) -> tuple[bool, str]:
    verifier = ServerVerifier.from_pem(_pem(row.anchors), "ca.pem")
    der = [c.certificate.public_bytes(serialization.Encoding.DER) for c in row.chain]
    try:
        verifier.verify(der, row.host)
    except (ServerCertificateError, TlsError) as e:
        return False, str(e)
    return True, "ok"


ROWS: list[Row] = []


@pytest.fixture(scope="module")
def rows() -> list[Row]:
    if not ROWS:
        ROWS.extend(_rows())
    return ROWS


def test_table_is_large_enough(rows: list[Row]) -> None:
    assert len(ROWS) >= 30
    assert {r.expected for r in ROWS} == {True, False}


def test_parity_with_openssl(
    rows: list[Row], tmp_path: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    out: list[str] = []
    wrong: list[str] = []
    for i, row in enumerate(ROWS):
        d = tmp_path / str(i)
        d.mkdir()
        ossl, why_ossl = openssl_verdict(row, d)
        py, why_py = python_ssl_verdict(row, d)
        ours, why_ours = opcard_verdict(row)
        mark = "ok " if ossl == py == ours == row.expected else "!! "
        out.append(
            f"{mark}{row.name:52} openssl={'accept' if ossl else 'refuse':6} "
            f"python-ssl={'accept' if py else 'refuse':6} opcard={'accept' if ours else 'refuse':6}"
        )
        if mark == "!! ":
            wrong.append(
                f"{row.name}: expected {row.expected}, openssl {ossl} ({why_ossl}), "
                f"python ssl {py} ({why_py}), opcard {ours} ({why_ours})"
            )
    with capsys.disabled():
        print("\n" + "\n".join(out))
    assert not wrong, "\n".join(wrong)


CAUSES = {
    "wrong name": "name",
    "CN only, wrong CN": "name",
    "wildcard *.example.test for a.b.example.test": "name",
    "leaf expired": "expired",
    "leaf not yet valid": "expired",
    "root expired": "expired",
    "issued by an unknown CA": "unknown_ca",
    "intermediate missing": "unknown_ca",
    "intermediate in the CA file, root not": "no_ca",
    "leaf RSA-1024": "weak",
}


def test_refusals_name_their_cause(rows: list[Row]) -> None:
    """The cause (and so the hint `opcard tls connect` gives) matches what is wrong."""
    by_name = {r.name: r for r in rows}
    for name, cause in CAUSES.items():
        row = by_name[name]
        verifier = ServerVerifier.from_pem(_pem(row.anchors), "ca.pem")
        der = [c.certificate.public_bytes(serialization.Encoding.DER) for c in row.chain]
        with pytest.raises(ServerCertificateError) as info:
            verifier.verify(der, row.host)
        assert info.value.cause == cause, (name, str(info.value))


def test_known_difference_partial_wildcard(tmp_path: Path) -> None:
    """``openssl verify -verify_hostname`` takes a partial wildcard (``a*.example.test`` for
    ``ab.example.test``); Python's ssl (X509_CHECK_FLAG_NO_PARTIAL_WILDCARDS) and curl do not,
    and neither does opcard."""
    r = root()
    row = Row("partial wildcard", "ab.example.test", [r],
              [make(None, r, san=["a*.example.test"])], False)  # fmt: skip
    assert openssl_verdict(row, tmp_path)[0] is True
    assert python_ssl_verdict(row, tmp_path)[0] is False
    assert opcard_verdict(row)[0] is False

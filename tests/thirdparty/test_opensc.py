"""OpenSC (openpgp-tool, pkcs15-tool, pkcs11-tool + opensc-pkcs11.so) as a judge of the card.

OpenSC runs with its own configuration (``OPENSC_CONF``): PC/SC reader driver, no file
caching (a cache would hide what the card answers). Set OPENSC_DEBUG=9 in the environment to
get OpenSC's trace on stderr, which the assertion messages include.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path
from typing import Any

import pytest
from conftest import OPENSC_PKCS11, PW1, require_file, require_tool
from cryptography import x509
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fixtures.profiles import PROFILES as CARD_PROFILES
from fixtures.profiles import supported_pairs

pytestmark = [pytest.mark.pcsc, pytest.mark.opensc, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "fixtures" / "demo"
SELECT = bytes.fromhex("00A4040006D27600012401")
PROFILES = sorted(CARD_PROFILES)  # every profile of the emulated card


def opensc_handles(profile: str, variant: str) -> bool:
    """What OpenSC 0.23 (Debian 12) does with the real cards too: it knows Ed25519/X25519 keys
    only on spec 3.4 cards and Gnuk (card-openpgp.c ec_curves_openpgp / ec_curves_gnuk), and its
    PKCS#15 layer sends SELECT DATA to Gnuk, which Gnuk 1.2 does not know (OpenSC issue #2752,
    fixed in 0.24): the gnuk12 profile answers 6D00 as the real token does."""
    p = CARD_PROFILES[profile]
    if p.family == "Gnuk":
        return False
    return not (variant == "demo-25519" and p.version < 0x0304)


# (profile, personalisation): the generic profiles with every personalisation, each card
# family with the richest one it can hold (fixtures.profiles.supports) that OpenSC handles
PAIRS = supported_pairs(
    ["demo", "demo-ecc", "demo-25519"], one_per_family=True, where=opensc_handles
)
PAIRS_RSA_ECC = supported_pairs(["demo", "demo-ecc"], one_per_family=True, where=opensc_handles)
# three certificates (SELECT DATA): spec 3.x cards; the one-certificate families are checked
# in test_card_families.py
PAIRS_3_CERTS = [(p, v) for p, v in PAIRS if CARD_PROFILES[p].cert_slots == 3]
# openpgp-tool reads the card without PKCS#15 (no SELECT DATA): Gnuk too
PAIRS_TOOL = supported_pairs(["demo", "demo-ecc", "demo-25519"], one_per_family=True)
VARIANTS = {"demo": "demo-rsa", "demo-ecc": "demo-ecc", "demo-25519": "demo-25519"}
SLOTS = {"01": "sig", "02": "dec", "03": "aut"}  # OpenSC's PKCS#15 ids of the OpenPGP keys

OPENSC_CONF = """app default {
  reader_driver pcsc {
  }
  framework pkcs15 {
    use_file_caching = no;
  }
}
"""


class OpenSC:
    """Runs OpenSC tools against one reader with a private configuration."""

    def __init__(self, reader: str, workdir: Path) -> None:
        self.reader = reader
        self.workdir = workdir
        conf = workdir / "opensc.conf"
        conf.write_text(OPENSC_CONF)
        self.env = dict(os.environ, OPENSC_CONF=str(conf), LC_ALL="C")

    def run(self, *argv: str, check: bool = True) -> subprocess.CompletedProcess[bytes]:
        proc = subprocess.run(argv, env=self.env, capture_output=True, timeout=120)
        if check:
            assert proc.returncode == 0, (
                f"{' '.join(argv)} exited {proc.returncode}:\n"
                f"{proc.stdout.decode(errors='replace')}\n{proc.stderr.decode(errors='replace')}"
            )
        return proc

    def pkcs15(self, *args: str) -> bytes:
        return self.run("pkcs15-tool", "--reader", self.reader, *args).stdout

    def pkcs11(self, *args: str) -> bytes:
        return self.run("pkcs11-tool", "--module", OPENSC_PKCS11, *args).stdout

    def slot_for(self, label_suffix: str) -> str:
        """The PKCS#11 slot id of this reader whose token label ends with ``label_suffix``.

        OpenSC shows an OpenPGP card as two tokens: "(User PIN)" (DEC, AUT keys: PW1 82)
        and "(User PIN (sig))" (SIG key: PW1 81).
        """
        listing = self.pkcs11("--list-slots").decode()
        slot = None
        for line in listing.splitlines():
            m = re.match(r"Slot \d+ \((0x[0-9a-f]+)\): (.*)$", line)
            if m:
                slot = m.group(1) if m.group(2).strip() == self.reader else None
                continue
            m = re.match(r"\s+token label\s+:\s+(.*)$", line)
            if m and slot and m.group(1).strip().endswith(label_suffix):
                return slot
        raise AssertionError(f"no slot with token {label_suffix!r} on {self.reader}:\n{listing}")


@pytest.fixture
def opensc(tmp_path: Path) -> Any:
    for tool in ("openpgp-tool", "pkcs15-tool", "pkcs11-tool", "openssl"):
        require_tool(tool)
    require_file(OPENSC_PKCS11)

    def make(reader: str) -> OpenSC:
        return OpenSC(reader, tmp_path)

    return make


def demo_cert(personalization: str, slot: str) -> x509.Certificate:
    pem = (DEMO / VARIANTS[personalization] / f"{slot}-cert.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem)


def _tlv_values(data: bytes) -> dict[int, bytes]:
    """Flat BER-TLV walk (constructed tags are descended into); first value of each tag."""
    found: dict[int, bytes] = {}
    i = 0
    while i < len(data):
        first = data[i]
        tag = first
        i += 1
        if first & 0x1F == 0x1F:
            while True:
                tag = tag << 8 | data[i]
                i += 1
                if not data[i - 1] & 0x80:
                    break
        length = data[i]
        i += 1
        if length & 0x80:
            n = length & 0x7F
            length = int.from_bytes(data[i : i + n], "big")
            i += n
        value = data[i : i + length]
        i += length
        found.setdefault(tag, value)
        if first & 0x20:
            for k, v in _tlv_values(value).items():
                found.setdefault(k, v)
    return found


def _colon_hex(b: bytes) -> str:
    return ":".join(f"{x:02x}" for x in b)


@pytest.mark.parametrize(("profile", "personalization"), PAIRS_TOOL)
def test_openpgp_tool_reads_card_user_and_key_info(
    emulator: Any, opensc: Any, profile: str, personalization: str
) -> None:
    emu = emulator(profile=profile, personalize=personalization)
    with emu.connect() as conn:
        assert conn.transmit(SELECT)[-2:] == b"\x90\x00"
        app = _tlv_values(conn.get_data(0x006E))
        holder = _tlv_values(conn.get_data(0x0065))
        url = conn.get_data(0x5F50)
        login = conn.get_data(0x005E)
    out = opensc(emu.reader).run("openpgp-tool", "--reader", emu.reader, "-C", "-U", "-K")
    info: dict[str, str] = {}
    for line in out.stdout.decode().splitlines():
        key, sep, value = line.partition(":")
        if sep:
            info[key.strip()] = value.strip()
    aid = app[0x4F]
    assert info["AID"] == _colon_hex(aid)
    assert info["Version"] == f"{aid[6]}.{aid[7]}"
    assert info["Serial number"] == aid[10:14].hex()
    assert info["Name"] == holder[0x5B].decode().replace("<<", " ").replace("<", " ")
    assert info["Language"] == holder[0x5F2D].decode()
    assert info["URL"] == url.decode()
    assert info["Account"] == login.decode()
    fprs = app[0xC5]
    for i, slot in enumerate(("Sig", "Dec", "Aut")):
        assert info[f"{slot} Fingerprint"] == _colon_hex(fprs[20 * i : 20 * i + 20])
        algo = info[f"{slot} Algorithm"]
        attrs = app[0xC1 + i]
        if attrs[0] == 0x01:
            assert algo == f"RSA{int.from_bytes(attrs[1:3])}"
        else:
            assert algo == {0x12: "ECDH", 0x13: "ECDSA", 0x16: "EDDSA"}[attrs[0]]


@pytest.mark.parametrize(("profile", "personalization"), PAIRS_3_CERTS)
def test_pkcs15_dump_and_certificates_byte_for_byte(
    emulator: Any, opensc: Any, profile: str, personalization: str
) -> None:
    emu = emulator(profile=profile, personalize=personalization)
    tool = opensc(emu.reader)
    dump = tool.pkcs15("--dump").decode()
    private_keys = re.findall(r"^Private (?:RSA|EC|EDDSA|XEDDSA) Key \[(.*)\]$", dump, re.M)
    certificates = re.findall(r"^X\.509 Certificate \[(.*)\]$", dump, re.M)
    assert sorted(private_keys) == ["Authentication key", "Encryption key", "Signature key"]
    assert sorted(certificates) == ["AUT certificate", "DEC certificate", "SIG certificate"]
    for cert_id, slot in SLOTS.items():
        pem = tool.pkcs15("--read-certificate", cert_id)
        got = x509.load_pem_x509_certificate(pem).public_bytes(Encoding.DER)
        assert got == demo_cert(personalization, slot).public_bytes(Encoding.DER), slot


@pytest.mark.parametrize(("profile", "personalization"), PAIRS)
def test_pkcs11_tool_signatures_verify_with_openssl(
    emulator: Any, opensc: Any, tmp_path: Path, profile: str, personalization: str
) -> None:
    emu = emulator(profile=profile, personalize=personalization)
    tool = opensc(emu.reader)
    data = tmp_path / "data.txt"
    data.write_bytes(f"signed through OpenSC on the {profile} card\n".encode())
    mechanism = {"demo": "SHA256-RSA-PKCS", "demo-ecc": "ECDSA-SHA256", "demo-25519": "EDDSA"}[
        personalization
    ]
    before = emu.commands()
    for key_id, token in (("01", "(User PIN (sig))"), ("03", "(User PIN)")):
        slot = SLOTS[key_id]
        signature = tmp_path / f"{slot}.sig"
        args = ["--slot", tool.slot_for(token), "--login", "--pin", PW1, "--sign"]
        args += ["-m", mechanism, "--id", key_id, "-i", str(data), "-o", str(signature)]
        if mechanism.startswith("ECDSA"):
            args += ["--signature-format", "openssl"]  # DER, as openssl wants it
        tool.pkcs11(*args)
        public = tmp_path / f"{slot}-pub.pem"
        public.write_bytes(
            demo_cert(personalization, slot)
            .public_key()
            .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
        )
        other = tmp_path / "other.txt"
        other.write_bytes(b"something else\n")
        if mechanism == "EDDSA":  # Ed25519 signs the message itself
            verify = ["openssl", "pkeyutl", "-verify", "-pubin", "-inkey", str(public), "-rawin"]
            ok = tool.run(*verify, "-in", str(data), "-sigfile", str(signature))
            assert b"Signature Verified Successfully" in ok.stdout
            bad = tool.run(*verify, "-in", str(other), "-sigfile", str(signature), check=False)
        else:
            verify = ["openssl", "dgst", "-sha256", "-verify", str(public)]
            ok = tool.run(*verify, "-signature", str(signature), str(data))
            assert b"Verified OK" in ok.stdout
            bad = tool.run(*verify, "-signature", str(signature), str(other), check=False)
        assert bad.returncode != 0  # the signature is bound to the data
    # the signatures were made by the card: PSO:CDS for SIG, INTERNAL AUTHENTICATE for AUT
    commands = [e.text for e in emu.log_entries() if e.direction == ">"][before:]
    inss = [c[2:4] for c in commands]
    assert "2A" in inss and "88" in inss


@pytest.mark.parametrize(("profile", "personalization"), PAIRS_RSA_ECC)
def test_pkcs11_tool_decrypts_and_derives_with_the_dec_key(
    emulator: Any, opensc: Any, tmp_path: Path, profile: str, personalization: str
) -> None:
    """PSO:DECIPHER through OpenSC: RSA-PKCS decryption, or ECDH1-DERIVE (checked by openssl)."""
    emu = emulator(profile=profile, personalize=personalization)
    tool = opensc(emu.reader)
    slot = tool.slot_for("(User PIN)")
    public = tmp_path / "dec-pub.pem"
    public.write_bytes(
        demo_cert(personalization, "dec")
        .public_key()
        .public_bytes(Encoding.PEM, PublicFormat.SubjectPublicKeyInfo)
    )
    login = ["--slot", slot, "--login", "--pin", PW1, "--id", "02"]
    out = tmp_path / "out.bin"
    if personalization == "demo":
        secret = tmp_path / "secret.bin"
        secret.write_bytes(os.urandom(32))
        ciphertext = tmp_path / "ct.bin"
        tool.run(
            "openssl", "pkeyutl", "-encrypt", "-pubin", "-inkey", str(public),
            "-pkeyopt", "rsa_padding_mode:pkcs1", "-in", str(secret), "-out", str(ciphertext),
        )  # fmt: skip
        tool.pkcs11(*login, "--decrypt", "-m", "RSA-PKCS", "-i", str(ciphertext), "-o", str(out))
        assert out.read_bytes() == secret.read_bytes()
    else:
        ephemeral = tmp_path / "eph.pem"
        peer = tmp_path / "eph-pub.der"
        expected = tmp_path / "expected.bin"
        tool.run("openssl", "ecparam", "-name", "prime256v1", "-genkey", "-noout",
                 "-out", str(ephemeral))  # fmt: skip
        tool.run("openssl", "ec", "-in", str(ephemeral), "-pubout", "-outform", "der",
                 "-out", str(peer))  # fmt: skip
        tool.run("openssl", "pkeyutl", "-derive", "-inkey", str(ephemeral),
                 "-peerkey", str(public), "-out", str(expected))  # fmt: skip
        tool.pkcs11(*login, "--derive", "-m", "ECDH1-DERIVE", "-i", str(peer), "-o", str(out))
        assert out.read_bytes() == expected.read_bytes()
    commands = [e.text for e in emu.log_entries() if e.direction == ">"]
    assert any(c[2:8] == "2A8086" for c in commands)  # PSO:DECIPHER reached the card

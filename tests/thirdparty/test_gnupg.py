"""GnuPG (gpg, gpg-agent, scdaemon) as an independent judge of the emulated card.

Each test gets its own emulator (fresh card) and its own GNUPGHOME with scdaemon on the
emulator's reader (pcsc-shared, so raw PC/SC reads can check the card alongside), and a test
pinentry that answers with the PIN files in GNUPGHOME (``pw1``, ``pw3``).
Set OPCARD_GNUPG_DEBUG=1 to get scdaemon's APDU trace in GNUPGHOME/scdaemon.log (test PINs
only: it logs VERIFY data).
"""

from __future__ import annotations

import hashlib
import os
import shutil
import subprocess
import tempfile
from collections.abc import Callable, Iterator
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
from conftest import PCSC_LIB, PW1, PW3, require_tool
from cryptography import x509
from cryptography.exceptions import InvalidSignature
from cryptography.hazmat.primitives import hashes
from cryptography.hazmat.primitives.asymmetric import ec, ed25519, padding, rsa, utils, x25519
from cryptography.hazmat.primitives.serialization import Encoding, PublicFormat

from fixtures.profiles import PROFILES as CARD_PROFILES
from fixtures.profiles import supported_pairs

pytestmark = [pytest.mark.pcsc, pytest.mark.gnupg, pytest.mark.slow]

REPO = Path(__file__).resolve().parents[2]
DEMO = REPO / "fixtures" / "demo"
SELECT = bytes.fromhex("00A4040006D27600012401")
PROFILES = sorted(CARD_PROFILES)  # every profile of the emulated card
# (profile, personalisation): the generic profiles with every personalisation, each card
# family with the richest one it can hold (fixtures.profiles.supports decides)
PAIRS = supported_pairs(["demo", "demo-ecc", "demo-25519"], one_per_family=True)
# PIN counting and SETATTR: the generic profiles and the families whose C4 and cardholder DOs
# read differently (6E/65/7A without outer tag, C4 byte 1 FF, short PIN limits); the factory
# C4 of these reads retries 3 0 3 (the NEO shows 3 3 3)
SOME_PROFILES = sorted(
    [n for n, p in CARD_PROFILES.items() if not p.family]
    + ["gnuk12", "ledger", "yubikey4", "zeitcontrol21"]
)
VARIANTS = {"demo": "demo-rsa", "demo-ecc": "demo-ecc", "demo-25519": "demo-25519"}

PINENTRY = """#!/bin/sh
# Test pinentry: answers GETPIN with the PIN file next to it (pw3 when asked for the Admin PIN).
dir=$(dirname "$0")
echo "OK test pinentry"
desc=""
while IFS= read -r line; do
  case "$line" in
    SETDESC*) desc="$line"; echo OK ;;
    GETPIN*)
      case "$desc" in
        *[Aa]dmin*) pin=$(cat "$dir/pw3") ;;
        *) pin=$(cat "$dir/pw1") ;;
      esac
      printf 'D %s\\n' "$pin"; echo OK ;;
    BYE*) echo OK; exit 0 ;;
    *) echo OK ;;
  esac
done
"""


# --- Assuan / GnuPG helpers ----------------------------------------------------------------------


def _assuan_unescape(data: bytes) -> bytes:
    out = bytearray()
    i = 0
    while i < len(data):
        if data[i] == 0x25 and i + 2 < len(data) + 0:  # '%XX'
            out.append(int(data[i + 1 : i + 3], 16))
            i += 3
        else:
            out.append(data[i])
            i += 1
    return bytes(out)


@dataclass
class Reply:
    """The answer to one Assuan command sent through gpg-connect-agent."""

    ok: bool
    error: str = ""
    status: list[str] = field(default_factory=list)
    data: bytes = b""

    def status_value(self, keyword: str) -> list[str]:
        return [s.split(" ", 1)[1] for s in self.status if s.split(" ", 1)[0] == keyword]


@dataclass
class GnuPG:
    """A private GNUPGHOME wired to one reader (see the module docstring)."""

    home: Path
    reader: str

    def env(self) -> dict[str, str]:
        env = {k: v for k, v in os.environ.items() if not k.startswith("GPG_")}
        env["GNUPGHOME"] = str(self.home)
        env["LC_ALL"] = "C"
        return env

    def set_pins(self, pw1: str | None = None, pw3: str | None = None) -> None:
        if pw1 is not None:
            (self.home / "pw1").write_text(pw1)
        if pw3 is not None:
            (self.home / "pw3").write_text(pw3)

    def gpg(self, *args: str) -> str:
        proc = subprocess.run(
            ["gpg", "--batch", "--no-tty", *args],
            env=self.env(),
            capture_output=True,
            text=True,
            timeout=60,
        )
        assert proc.returncode == 0, f"gpg {' '.join(args)} failed:\n{proc.stderr}"
        return proc.stdout

    def card_status(self) -> dict[str, list[str]]:
        """``gpg --card-status --with-colons`` as {record: fields}."""
        records: dict[str, list[str]] = {}
        for line in self.gpg("--card-status", "--with-colons").splitlines():
            name, _, rest = line.partition(":")
            records[name] = rest.split(":")
        return records

    def agent(self, *commands: str) -> list[Reply]:
        """Send Assuan commands over one gpg-connect-agent connection; one Reply each."""
        proc = subprocess.run(
            ["gpg-connect-agent", *commands, "/bye"],
            env=self.env(),
            capture_output=True,
            timeout=120,
        )
        assert proc.returncode == 0, proc.stderr.decode(errors="replace")
        replies: list[Reply] = []
        current = Reply(ok=False)
        data = bytearray()
        for line in proc.stdout.split(b"\n"):
            if line.startswith(b"D "):
                data += _assuan_unescape(line[2:])
            elif line.startswith(b"S "):
                current.status.append(line[2:].decode())
            elif line == b"OK" or line.startswith(b"OK "):
                current.ok, current.data = True, bytes(data)
                replies.append(current)
                current, data = Reply(ok=False), bytearray()
            elif line.startswith(b"ERR "):
                current.error, current.data = line[4:].decode(errors="replace"), bytes(data)
                replies.append(current)
                current, data = Reply(ok=False), bytearray()
        assert len(replies) == len(commands), proc.stdout
        return replies

    def pksign(self, digest: bytes, keyref: str = "OPENPGP.1") -> Reply:
        """``SCD SETDATA`` + ``SCD PKSIGN --hash=sha256 keyref`` over a SHA-256 digest."""
        setdata, sign = self.agent(
            f"SCD SETDATA {digest.hex().upper()}", f"SCD PKSIGN --hash=sha256 {keyref}"
        )
        assert setdata.ok, setdata.error
        return sign

    def kill(self) -> None:
        subprocess.run(
            ["gpgconf", "--homedir", str(self.home), "--kill", "all"],
            env=self.env(),
            capture_output=True,
            timeout=30,
        )


@pytest.fixture
def gnupg(emulator: Any) -> Iterator[Callable[[str], GnuPG]]:
    """Factory ``gnupg(reader) -> GnuPG``; agents are killed and homes removed afterwards.

    Depends on ``emulator`` so that scdaemon is stopped before the emulators are.
    """
    for tool in ("gpg", "gpg-agent", "gpg-connect-agent", "gpgconf"):
        require_tool(tool)
    require_tool("/usr/lib/gnupg/scdaemon" if not shutil.which("scdaemon") else "scdaemon")
    homes: list[GnuPG] = []

    def make(reader: str) -> GnuPG:
        # short path: gpg-agent's socket path must stay under 108 bytes
        home = Path(tempfile.mkdtemp(prefix="opcard-gpg-", dir="/tmp"))
        home.chmod(0o700)
        g = GnuPG(home, reader)
        homes.append(g)
        pinentry = home / "pinentry.sh"
        pinentry.write_text(PINENTRY)
        pinentry.chmod(0o700)
        g.set_pins(PW1, PW3)
        scd = [
            "disable-ccid",
            f"pcsc-driver {PCSC_LIB}",
            "pcsc-shared",
            f'reader-port "{reader}"',
        ]
        if os.environ.get("OPCARD_GNUPG_DEBUG"):
            scd += ["debug-level guru", f"log-file {home / 'scdaemon.log'}"]
        (home / "scdaemon.conf").write_text("\n".join(scd) + "\n")
        (home / "gpg-agent.conf").write_text(
            f"allow-loopback-pinentry\npinentry-program {pinentry}\n"
        )
        return g

    try:
        yield make
    finally:
        for g in homes:
            g.kill()
            shutil.rmtree(g.home, ignore_errors=True)


# --- expected values, computed independently of GnuPG -------------------------------------------


def _tlv_find(data: bytes, wanted: int) -> bytes | None:
    """First value of tag ``wanted`` in BER-TLV ``data``, descending into constructed tags."""
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
        if tag == wanted:
            return value
        if first & 0x20:
            found = _tlv_find(value, wanted)
            if found is not None:
                return found
    return None


def _mpi(value: int) -> bytes:
    return value.bit_length().to_bytes(2, "big") + value.to_bytes((value.bit_length() + 7) // 8)


_CURVE_OIDS = {  # RFC 6637 / draft-ietf-openpgp-crypto-refresh curve OIDs (DER content)
    "secp256r1": "2A8648CE3D030107",
    "secp384r1": "2B81040022",
    "secp521r1": "2B81040023",
    "ed25519": "2B06010401DA470F01",
    "cv25519": "2B060104019755010501",
}


def openpgp_v4_fingerprint(public_key: Any, created: int, *, ecdh: bool = False) -> bytes:
    """RFC 4880 12.2: SHA-1 over 0x99 ‖ length ‖ the v4 public key packet body."""
    body = b"\x04" + created.to_bytes(4, "big")
    if isinstance(public_key, rsa.RSAPublicKey):
        nums = public_key.public_numbers()
        body += b"\x01" + _mpi(nums.n) + _mpi(nums.e)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        oid = bytes.fromhex(_CURVE_OIDS[public_key.curve.name])
        point = public_key.public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        body += bytes([18 if ecdh else 19, len(oid)]) + oid + _mpi(int.from_bytes(point))
        if ecdh:  # KDF parameters as GnuPG writes them: SHA-256/AES-128 ... SHA-512/AES-256
            bits = public_key.curve.key_size
            kdf = {256: (8, 7), 384: (9, 8), 521: (10, 9)}[bits]
            body += bytes([3, 1, *kdf])
    elif isinstance(public_key, ed25519.Ed25519PublicKey | x25519.X25519PublicKey):
        is_ed = isinstance(public_key, ed25519.Ed25519PublicKey)
        oid = bytes.fromhex(_CURVE_OIDS["ed25519" if is_ed else "cv25519"])
        raw = public_key.public_bytes(Encoding.Raw, PublicFormat.Raw)
        body += bytes([22 if is_ed else 18, len(oid)]) + oid + _mpi(int.from_bytes(b"\x40" + raw))
        if not is_ed:
            body += bytes([3, 1, 8, 7])
    else:
        raise TypeError(type(public_key))
    return hashlib.sha1(b"\x99" + len(body).to_bytes(2, "big") + body).digest()


def demo_public_key(personalization: str, slot: str) -> Any:
    pem = (DEMO / VARIANTS.get(personalization, personalization) / f"{slot}-cert.pem").read_bytes()
    return x509.load_pem_x509_certificate(pem).public_key()


def verify_signature(public_key: Any, signature: bytes, digest: bytes) -> None:
    """Verify a card signature over a SHA-256 digest (raises InvalidSignature).

    scdaemon hands an EdDSA card the bytes to sign as they are, so for Ed25519 the "digest"
    is the signed message."""
    prehashed = utils.Prehashed(hashes.SHA256())
    if isinstance(public_key, rsa.RSAPublicKey):
        public_key.verify(signature, digest, padding.PKCS1v15(), prehashed)
    elif isinstance(public_key, ec.EllipticCurvePublicKey):
        half = len(signature) // 2
        der = utils.encode_dss_signature(
            int.from_bytes(signature[:half]), int.from_bytes(signature[half:])
        )
        public_key.verify(der, digest, ec.ECDSA(prehashed))
    elif isinstance(public_key, ed25519.Ed25519PublicKey):
        public_key.verify(signature, digest)  # EdDSA: the card signs the bytes it is given
    else:
        raise TypeError(type(public_key))


@dataclass
class CardFacts:
    """What the card holds, read through raw PC/SC (no GnuPG involved)."""

    aid: bytes
    fingerprints: list[bytes]
    times: list[int]
    name: bytes
    pw_status: bytes


def read_card(emu: Any, *, select: bool = True) -> CardFacts:
    """Read the facts raw. ``select=False`` while scdaemon holds a session: a SELECT from
    another client resets the card's PIN status behind scdaemon's back (as on a real card),
    and GnuPG then fails on DOs it believes it may read."""
    with emu.connect() as conn:
        if select:
            assert conn.transmit(SELECT)[-2:] == b"\x90\x00"
        app = conn.get_data(0x006E)
        holder = conn.get_data(0x0065)
    c5 = _tlv_find(app, 0xC5)
    cd = _tlv_find(app, 0xCD)
    aid = _tlv_find(app, 0x4F)
    name = _tlv_find(holder, 0x5B)
    pw = _tlv_find(app, 0xC4)
    assert c5 is not None and cd is not None and aid is not None and name is not None
    assert pw is not None
    return CardFacts(
        aid=aid,
        fingerprints=[c5[i : i + 20] for i in range(0, 60, 20)],
        times=[int.from_bytes(cd[i : i + 4]) for i in range(0, 12, 4)],
        name=name,
        pw_status=pw,
    )


# --- tests ---------------------------------------------------------------------------------------


@pytest.mark.parametrize(("profile", "personalization"), PAIRS)
def test_card_status_shows_what_the_card_holds(
    emulator: Any, gnupg: Any, profile: str, personalization: str
) -> None:
    emu = emulator(profile=profile, personalize=personalization)
    card = read_card(emu)
    # the card's fingerprints are the OpenPGP v4 fingerprints of the demo keys
    for i, slot in enumerate(("sig", "dec", "aut")):
        key = demo_public_key(personalization, slot)
        expected_fpr = openpgp_v4_fingerprint(key, card.times[i], ecdh=slot == "dec")
        assert card.fingerprints[i] == expected_fpr, f"{slot} fingerprint"

    status = gnupg(emu.reader).card_status()
    assert status["Reader"][0] == emu.reader
    assert status["Reader"][2] == card.aid.hex().upper()
    assert status["serial"][0] == card.aid[10:14].hex().upper()
    assert status["fpr"][:3] == [f.hex().upper() for f in card.fingerprints]
    assert status["fprtime"][:3] == [str(t) for t in card.times]
    surname, _, given = card.name.decode().partition("<<")
    assert status["name"][:2] == [given.replace("<", " "), surname.replace("<", " ")]
    assert status["pinretry"][:3] == [str(b) for b in card.pw_status[4:7]]


@pytest.mark.parametrize(("profile", "personalization"), PAIRS)
def test_scd_pksign_verifies_with_the_demo_signature_key(
    emulator: Any, gnupg: Any, profile: str, personalization: str
) -> None:
    emu = emulator(profile=profile, personalize=personalization)
    g = gnupg(emu.reader)
    digest = hashlib.sha256(f"opcard rig {profile} {personalization}".encode()).digest()
    reply = g.pksign(digest)
    assert reply.ok, reply.error
    verify_signature(demo_public_key(personalization, "sig"), reply.data, digest)
    with pytest.raises(InvalidSignature):
        verify_signature(demo_public_key(personalization, "sig"), reply.data, bytes(32))
    # the card counted it, and GnuPG reports the counter
    assert g.card_status()["sigcount"][0] == "1"


@pytest.mark.parametrize("profile", PROFILES)
def test_on_card_key_generation_through_scdaemon(emulator: Any, gnupg: Any, profile: str) -> None:
    emu = emulator(profile=profile)
    g = gnupg(emu.reader)
    (reply,) = g.agent("SCD GENKEY --force 1")
    assert reply.ok, reply.error
    data = dict(s.split(" ", 1) for s in reply.status_value("KEY-DATA"))
    created = int(reply.status_value("KEY-CREATED-AT")[0])
    fpr = reply.status_value("KEY-FPR")[0]
    new_key = rsa.RSAPublicNumbers(int(data["e"], 16), int(data["n"], 16)).public_key()

    # scdaemon's fingerprint of the new key is the v4 fingerprint we compute, and the card
    # stores it and the creation time
    assert fpr == openpgp_v4_fingerprint(new_key, created).hex().upper()
    status = g.card_status()
    assert status["fpr"][0] == fpr
    assert status["fprtime"][0] == str(created)
    card = read_card(emu, select=False)
    assert card.fingerprints[0].hex().upper() == fpr
    assert card.times[0] == created
    # the public key read back from the card (GENERATE ASYMMETRIC KEY PAIR, read) is it
    with emu.connect() as conn:
        pub, sw = conn.transceive(bytes.fromhex("00478100 02 B600 00".replace(" ", "")))
    assert sw == 0x9000
    assert _tlv_find(pub, 0x81) == bytes.fromhex(data["n"]).lstrip(b"\x00")
    # and the new private key signs
    digest = hashlib.sha256(b"after genkey").digest()
    sig = g.pksign(digest)
    assert sig.ok, sig.error
    verify_signature(new_key, sig.data, digest)
    with pytest.raises(InvalidSignature):
        verify_signature(demo_public_key("demo", "sig"), sig.data, digest)


@pytest.mark.parametrize("profile", SOME_PROFILES)
def test_wrong_pins_count_down_and_a_blocked_pin_stays_blocked(
    emulator: Any, gnupg: Any, profile: str, tmp_path: Path
) -> None:
    emu = emulator(profile=profile, state=tmp_path / "card.json")
    g = gnupg(emu.reader)
    assert g.card_status()["pinretry"][:3] == ["3", "0", "3"]
    digest = hashlib.sha256(b"wrong pin").digest()
    g.set_pins(pw1="999999")
    for left in (2, 1, 0):
        reply = g.pksign(digest)
        assert not reply.ok
        assert "PIN" in reply.error
        assert g.card_status()["pinretry"][:3] == [str(left), "0", "3"]
    # the right PIN no longer helps
    g.set_pins(pw1=PW1)
    reply = g.pksign(digest)
    assert not reply.ok
    assert "blocked" in reply.error.lower()
    assert g.card_status()["pinretry"][:3] == ["0", "0", "3"]
    # the card itself says so, to anyone
    with emu.connect() as conn:
        conn.transmit(SELECT)
        assert conn.get_data(0x00C4)[4] == 0
        verify = bytes([0x00, 0x20, 0x00, 0x81, len(PW1)]) + PW1.encode()
        assert conn.transmit(verify) == b"\x69\x83"
        assert conn.get_data(0x00C4)[4:7] == b"\x00\x00\x03"
    # and after the card was pulled and put back (its state file keeps the counters)
    emu.restart()
    assert g.card_status()["pinretry"][:3] == ["0", "0", "3"]
    reply = g.pksign(digest)
    assert not reply.ok
    assert "blocked" in reply.error.lower()


@pytest.mark.parametrize(("profile", "personalization"), PAIRS)
def test_scd_pkdecrypt_recovers_what_was_encrypted_to_the_dec_key(
    emulator: Any, gnupg: Any, profile: str, personalization: str
) -> None:
    """PSO:DECIPHER as scdaemon drives it: RSA (00 ‖ cryptogram) and ECDH (A6 7F49 86)."""
    emu = emulator(profile=profile, personalize=personalization)
    g = gnupg(emu.reader)
    public = demo_public_key(personalization, "dec")
    if isinstance(public, rsa.RSAPublicKey):
        secret = os.urandom(32)
        ciphertext = public.encrypt(secret, padding.PKCS1v15())
        setdata, reply = g.agent(f"SCD SETDATA {ciphertext.hex()}", "SCD PKDECRYPT OPENPGP.2")
        assert setdata.ok and reply.ok, reply.error
        assert reply.data == secret
        return
    if isinstance(public, ec.EllipticCurvePublicKey):
        ephemeral = ec.generate_private_key(public.curve)
        point = ephemeral.public_key().public_bytes(Encoding.X962, PublicFormat.UncompressedPoint)
        shared = ephemeral.exchange(ec.ECDH(), public)
        prefix = b"\x41"  # scdaemon marks an x-coordinate-only result with 0x41
    else:
        assert isinstance(public, x25519.X25519PublicKey)
        eph25519 = x25519.X25519PrivateKey.generate()
        point = b"\x40" + eph25519.public_key().public_bytes(Encoding.Raw, PublicFormat.Raw)
        shared = eph25519.exchange(public)
        prefix = b"\x40"  # native (Montgomery) encoding
    setdata, reply = g.agent(f"SCD SETDATA {point.hex()}", "SCD PKDECRYPT OPENPGP.2")
    assert setdata.ok and reply.ok, reply.error
    assert reply.data == prefix + shared


@pytest.mark.parametrize("profile", SOME_PROFILES)
def test_scd_setattr_writes_cardholder_data(emulator: Any, gnupg: Any, profile: str) -> None:
    emu = emulator(profile=profile)
    g = gnupg(emu.reader)
    replies = g.agent(
        "SCD SETATTR DISP-NAME Tester<<Rig",
        "SCD SETATTR PUBKEY-URL https://example.invalid/rig.asc",
        "SCD SETATTR LOGIN-DATA rigger",
    )
    assert all(r.ok for r in replies), [r.error for r in replies]
    status = g.card_status()
    assert status["name"][:2] == ["Rig", "Tester"]
    assert status["login"][0] == "rigger"
    with emu.connect() as conn:  # raw, without SELECT: scdaemon holds a session
        assert _tlv_find(conn.get_data(0x0065), 0x5B) == b"Tester<<Rig"
        assert conn.get_data(0x5F50) == b"https://example.invalid/rig.asc"
        assert conn.get_data(0x005E) == b"rigger"

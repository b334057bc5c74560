"""The hash functions opcard signs with: one row of facts each, every other hash table derived.

A row (:class:`Hash`) holds the hash's name (opcard's and ``cryptography``'s, ``"sha256"``;
the ``cryptography`` hash itself is :attr:`Hash.algorithm`), how people write it
(``SHA-256``), its digest size and the PKCS#11 mechanisms that hash with it before a PKCS#1
v1.5 or an ECDSA signature. What other standards number or encode is read off the row where
that standard's table lives:

- the PKCS#1 v1.5 DigestInfo (RFC 8017 §9.2): :attr:`Hash.digest_info_prefix`, the DER
  forms of RFC 8017's note 1 written into the rows (tests/unit/opcard/test_mechanisms.py
  compares them with the RFC's text and with asn1crypto's encoding of each hash's OID; encoding
  them at import cost every signing command asn1crypto, about 15 ms of start-up);
- OpenPGP's hash ids (RFC 4880 §9.4): :class:`opcard.openpgp.packets.HashAlgorithm`, whose
  members bear the rows' names;
- TLS 1.2's hash ids (RFC 5246 §7.4.1.4.1): tlslite's ``HashAlgorithm``, likewise.

The rows are looked up by name with :func:`hash_named`; :func:`hash_for_curve` gives the hash
that GnuPG and TLS pair with an ECDSA key of a curve.
"""

from __future__ import annotations

from apdu.record import Record, field

TYPE_CHECKING = False  # typing is not imported at run time (with re: ~3.5 ms: issue #15)

if TYPE_CHECKING:
    from cryptography.hazmat.primitives import hashes

    from opcard.pkcs11.constants import Mechanism

__all__ = ["HASHES", "Hash", "hash_for_curve", "hash_named", "unsupported_hash_message"]


class Hash(Record):
    """One hash function and what opcard needs to know of it.

    The row holds plain values, so that loading it costs neither ``cryptography`` (about 5 ms)
    nor the PKCS#11 mechanism table (about 7 ms): a signature of a digest needs only the
    DigestInfo prefix and the digest size. :attr:`algorithm`, :attr:`rsa_pkcs` and
    :attr:`ecdsa` give the ``cryptography`` hash and the :class:`~opcard.pkcs11.Mechanism`
    members when asked for (tests/unit/opcard/test_tables.py checks the numbers against the
    members' names)."""

    #: ``"sha256"``: the name opcard's functions take and ``cryptography`` uses.
    name: str
    #: The name as people write it: ``SHA-256``.
    label: str
    #: The digest's length in bytes.
    digest_size: int
    #: CKM_SHA…_RSA_PKCS (hash, then a PKCS#1 v1.5 signature of its DigestInfo), as a number.
    rsa_pkcs_value: int
    #: CKM_ECDSA_SHA… (hash, then ECDSA), as a number.
    ecdsa_value: int
    #: ``prefix ‖ digest`` is the DER DigestInfo (RFC 8017 §9.2, parameters NULL).
    digest_info_prefix: bytes = field(repr=False)

    @property
    def algorithm(self) -> hashes.HashAlgorithm:
        """The ``cryptography`` hash (one instance per row; loads ``cryptography``)."""
        algorithm = _ALGORITHMS.get(self.name)
        if algorithm is None:
            from cryptography.hazmat.primitives import hashes

            algorithm = _ALGORITHMS.setdefault(self.name, getattr(hashes, self.name.upper())())
        return algorithm

    @property
    def rsa_pkcs(self) -> Mechanism:
        """CKM_SHA…_RSA_PKCS."""
        from opcard.pkcs11.constants import Mechanism

        return Mechanism(self.rsa_pkcs_value)

    @property
    def ecdsa(self) -> Mechanism:
        """CKM_ECDSA_SHA…."""
        from opcard.pkcs11.constants import Mechanism

        return Mechanism(self.ecdsa_value)


#: Hash name → its ``cryptography`` hash, made on first use (:attr:`Hash.algorithm`).
_ALGORITHMS: dict[str, hashes.HashAlgorithm] = {}

#: The hashes opcard signs with, by name, weakest first.
HASHES: dict[str, Hash] = {
    h.name: h
    for h in (
        Hash(
            "sha1",
            "SHA-1",
            20,
            0x6,  # CKM_SHA1_RSA_PKCS
            0x1042,  # CKM_ECDSA_SHA1
            bytes.fromhex("30 21 30 09 06 05 2b 0e 03 02 1a 05 00 04 14"),
        ),
        Hash(
            "sha224",
            "SHA-224",
            28,
            0x46,  # CKM_SHA224_RSA_PKCS
            0x1043,  # CKM_ECDSA_SHA224
            bytes.fromhex("30 2d 30 0d 06 09 60 86 48 01 65 03 04 02 04 05 00 04 1c"),
        ),
        Hash(
            "sha256",
            "SHA-256",
            32,
            0x40,  # CKM_SHA256_RSA_PKCS
            0x1044,  # CKM_ECDSA_SHA256
            bytes.fromhex("30 31 30 0d 06 09 60 86 48 01 65 03 04 02 01 05 00 04 20"),
        ),
        Hash(
            "sha384",
            "SHA-384",
            48,
            0x41,  # CKM_SHA384_RSA_PKCS
            0x1045,  # CKM_ECDSA_SHA384
            bytes.fromhex("30 41 30 0d 06 09 60 86 48 01 65 03 04 02 02 05 00 04 30"),
        ),
        Hash(
            "sha512",
            "SHA-512",
            64,
            0x42,  # CKM_SHA512_RSA_PKCS
            0x1046,  # CKM_ECDSA_SHA512
            bytes.fromhex("30 51 30 0d 06 09 60 86 48 01 65 03 04 02 03 05 00 04 40"),
        ),
    )
}


def hash_named(name: str | hashes.HashAlgorithm) -> Hash | None:
    """The row of ``name`` (``"sha256"``, ``"SHA-256"``, or a ``cryptography`` hash); None for
    a hash opcard does not sign with."""
    text = name if isinstance(name, str) else name.name
    return HASHES.get(text.lower().replace("-", ""))


def unsupported_hash_message(name: object) -> str:
    """What to say of a hash opcard does not sign with: which ones it does."""
    return f"unsupported hash {name!r} ({', '.join(HASHES)})"


def hash_for_curve(bits: int) -> Hash:
    """The hash to pair with ECDSA on a curve of ``bits``: SHA-256 up to 256 bits, SHA-384 up
    to 384, SHA-512 above (GnuPG's choice: a hash at least as long as the curve order, as far as
    one exists; TLS 1.2 pairs P-256/P-384/P-521 with them the same way)."""
    for h in HASHES.values():
        if h.digest_size >= 32 and h.digest_size * 8 >= bits:
            return h
    return HASHES["sha512"]

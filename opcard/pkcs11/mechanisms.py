"""PKCS#11 mechanisms on an OpenPGP card: which key slot does what, and the card's input formats.

Pure functions, no I/O; they sit on the signing hot path, so the tables are built once and each
call is a few dictionary look-ups plus, where the mechanism includes hashing, one hash. The
tables of mechanisms are built on first use (they need the PKCS#11 mechanism table, about 7 ms
to load) and ``cryptography`` is imported where a hash or a DER signature is computed: signing a
digest (:func:`prepare_digest_sign_input`, ``opcard sign``) loads neither.

The card's formats (OpenPGP card specification v3.4, 7.2.10 PSO: COMPUTE DIGITAL SIGNATURE,
7.2.13 INTERNAL AUTHENTICATE):

- RSA: the card adds PKCS#1 v1.5 type-1 padding itself; the input is a DigestInfo (PSO:CDS) or
  any short string (INTERNAL AUTHENTICATE, at most 40 % of the modulus length). There is no
  raw RSA and no PSS padding on any OpenPGP card, hence no TLS 1.3 with an RSA card key.
- ECDSA: the input is the hash, normalised to the curve size (:func:`normalise_hash`); the
  output is raw ``r‖s``, which is also the PKCS#11 CKM_ECDSA signature format.
  :func:`ecdsa_raw_to_der` makes the DER form X.509, TLS and ``cryptography`` expect.
- EdDSA: the input is the whole message (PureEdDSA); the output is ``R‖S``.

Slots: SIG (CKA_ID 01) signs through PSO:CDS, AUT (03) through INTERNAL AUTHENTICATE, DEC (02)
decrypts (RSA, PSO:DECIPHER) or derives (ECDH, PSO:DECIPHER with the peer's point).
"""

from __future__ import annotations

import functools

from apdu._enums import IntEnumBody, fast_enum
from apdu.openpgp.constants import KeySlot
from apdu.record import Record
from opcard.hashes import HASHES, Hash, hash_named, unsupported_hash_message
from opcard.pkcs11.keytype import KeyType

TYPE_CHECKING = False  # typing is not imported at run time (with re: ~3.5 ms: issue #15)

if TYPE_CHECKING:
    from typing import NamedTuple

    from cryptography.hazmat.primitives import hashes

    from opcard.pkcs11.constants import Mechanism, MechanismFlag

__all__ = [
    "DIGEST_INFO_PREFIXES",
    "HASH_ALGORITHMS",
    "CardOperation",
    "KeyInfo",
    "NO_PSS_MESSAGE",
    "SignInput",
    "SignatureFormat",
    "check_mechanism",
    "digest_info",
    "ecdsa_der_to_raw",
    "ecdsa_raw_to_der",
    "hash_name_of",
    "mechanism_flags",
    "mechanisms_for",
    "normalise_hash",
    "parse_digest_info",
    "prepare_digest_sign_input",
    "prepare_sign_input",
    "signature_length",
    "signing_hash",
    "signing_operation",
]


@fast_enum
class CardOperation(IntEnumBody):
    """The card command that performs an operation (spec v3.4 section numbers)."""

    COMPUTE_DIGITAL_SIGNATURE = 1  # 7.2.10 PSO: COMPUTE DIGITAL SIGNATURE (SIG key)
    DECIPHER = 2  # 7.2.11 PSO: DECIPHER (DEC key)
    INTERNAL_AUTHENTICATE = 3  # 7.2.13 INTERNAL AUTHENTICATE (AUT key)


@fast_enum
class SignatureFormat(IntEnumBody):
    """What the card answers to a signing command."""

    PKCS1_V1_5 = 1  # RSA signature, exactly the modulus length
    ECDSA_RAW = 2  # r‖s, each the curve's byte length
    EDDSA = 3  # R‖S, 64 bytes for Ed25519


class KeyInfo(Record):
    """What the mechanism rules need to know about a card key.

    ``bits``: the RSA modulus length, or the bit length of the curve order for ECC keys (256
    for P-256, brainpoolP256r1 and secp256k1, 384, 512 for brainpoolP512r1, 521 for P-521, 255
    for Ed25519 and X25519).
    """

    slot: KeySlot
    key_type: KeyType
    bits: int


if TYPE_CHECKING:

    class SignInput(NamedTuple):
        """The bytes to send to the card, which command to use, and the format of the answer."""

        data: bytes
        operation: CardOperation
        output: SignatureFormat

else:
    # collections.namedtuple at run time: typing.NamedTuple needs typing (with re: 3.5 ms of
    # every signing command's start-up) and compiles its string annotations (1 ms; issue #15)
    from collections import namedtuple

    SignInput = namedtuple("SignInput", ["data", "operation", "output"])
    SignInput.__doc__ = (
        "The bytes to send to the card, which command to use, and the format of the answer."
    )


# --- hashes and DigestInfo -----------------------------------------------------------------

if TYPE_CHECKING:
    #: Hash name → a ``cryptography`` hash instance (the names used throughout opcard); made
    #: on first use (``cryptography``), by :func:`__getattr__`.
    HASH_ALGORITHMS: dict[str, hashes.HashAlgorithm]
else:

    def __getattr__(name: str) -> object:
        if name != "HASH_ALGORITHMS":
            raise AttributeError(f"module {__name__!r} has no attribute {name!r}")
        value = {n: h.algorithm for n, h in HASHES.items()}
        globals()[name] = value
        return value


#: DER prefixes of DigestInfo (RFC 8017 §9.2, note 1): ``prefix ‖ digest`` is the DigestInfo.
DIGEST_INFO_PREFIXES: dict[str, bytes] = {n: h.digest_info_prefix for n, h in HASHES.items()}

# total DigestInfo length → (hash name, prefix): every supported DigestInfo has its own length
_DIGEST_INFO_BY_LENGTH = {
    len(h.digest_info_prefix) + h.digest_size: (n, h.digest_info_prefix) for n, h in HASHES.items()
}
_MAX_DIGEST = max(h.digest_size for h in HASHES.values())


def _hash(name: str | hashes.HashAlgorithm) -> Hash:
    found = hash_named(name)
    if found is None:
        from opcard.errors import MechanismError

        raise MechanismError(unsupported_hash_message(name))
    return found


def hash_name_of(algorithm: hashes.HashAlgorithm | str) -> str:
    """The opcard hash name (``"sha256"``) of a ``cryptography`` hash or a name; checks it."""
    return _hash(algorithm).name


def digest_info(hash_name: str, digest: bytes) -> bytes:
    """RFC 8017 §9.2 DigestInfo DER encoding of ``digest`` (EMSA-PKCS1-v1_5 step 2)."""
    row = HASHES.get(hash_name) or _hash(hash_name)  # accepts "SHA-256"
    if len(digest) != row.digest_size:
        from opcard.errors import DataLengthError

        raise DataLengthError(f"a {row.name} digest is {row.digest_size} bytes, not {len(digest)}")
    return row.digest_info_prefix + digest


def parse_digest_info(data: bytes) -> tuple[str, bytes]:
    """RFC 8017 §9.2 DigestInfo → (hash name, digest); the DER forms of note 1 only."""
    entry = _DIGEST_INFO_BY_LENGTH.get(len(data))
    if entry is None or not data.startswith(entry[1]):
        from opcard.errors import MechanismError

        raise MechanismError("not a DigestInfo for SHA-1/224/256/384/512")
    return entry[0], bytes(data[len(entry[1]) :])


def normalise_hash(digest: bytes, field_bits: int) -> bytes:
    """ECDSA input for a card: ``digest`` fitted to a curve of ``field_bits`` (FIPS 186-4 §6.4).

    ECDSA uses the leftmost ``min(field_bits, 8·len)`` bits of the hash. A longer digest is
    cut to the curve's byte length (``digest[:ceil(field_bits/8)]``: for byte-aligned curves
    exactly the leftmost bits; for P-521 the signer's own truncation then takes the leftmost
    521 of those 528 bits). A shorter digest is left-padded with zero bytes to the curve's byte
    length, which keeps its integer value, when the curve size is a multiple of 8; for P-521
    it is left as it is, because 66 bytes (528 bits) would be truncated by the signer and
    lose the value (SHA-512 is never longer than P-521, so P-521 inputs never need padding).
    """
    if field_bits <= 0:
        raise ValueError(f"field_bits must be positive, not {field_bits}")
    if not digest:
        from opcard.errors import DataLengthError

        raise DataLengthError("empty digest")
    size = (field_bits + 7) // 8
    length = len(digest)
    if length > size:
        return bytes(digest[:size])
    if length < size and field_bits % 8 == 0:
        return bytes(size - length) + digest
    return bytes(digest)


# --- ECDSA signature encodings -------------------------------------------------------------


def ecdsa_raw_to_der(rs: bytes) -> bytes:
    """ECDSA ``r‖s`` (two equal halves, as the card and PKCS#11 give it) → DER Ecdsa-Sig-Value."""
    if not rs or len(rs) % 2:
        from opcard.errors import MechanismError

        raise MechanismError(f"raw ECDSA signature of {len(rs)} bytes: r and s must be equal")
    half = len(rs) // 2
    body = _der_integer(rs[:half]) + _der_integer(rs[half:])
    return b"\x30" + _der_length(len(body)) + body


def _der_integer(magnitude: bytes) -> bytes:
    """DER INTEGER of the unsigned big-endian ``magnitude``: no leading zero byte but one
    before a first byte of 0x80 or more (the value is positive); zero is ``02 01 00``."""
    value = magnitude.lstrip(b"\x00") or b"\x00"
    if value[0] & 0x80:
        value = b"\x00" + value
    return b"\x02" + _der_length(len(value)) + value


def _der_length(n: int) -> bytes:
    """A DER length: one byte up to 127, else 0x81/0x82 and the length."""
    if n < 0x80:
        return bytes((n,))
    size = (n.bit_length() + 7) // 8
    return bytes((0x80 | size,)) + n.to_bytes(size, "big")


def ecdsa_der_to_raw(der: bytes, size: int) -> bytes:
    """DER Ecdsa-Sig-Value → ``r‖s`` with each integer on ``size`` bytes (32 for P-256)."""
    from cryptography.hazmat.primitives.asymmetric.utils import decode_dss_signature

    try:
        r, s = decode_dss_signature(der)
    except ValueError as e:
        from opcard.errors import MechanismError

        raise MechanismError("not a DER ECDSA signature") from e
    limit = 1 << (8 * size)
    if not (0 < r < limit and 0 < s < limit):
        from opcard.errors import MechanismError

        raise MechanismError(f"ECDSA signature values do not fit {size} bytes")
    return r.to_bytes(size, "big") + s.to_bytes(size, "big")


# --- which slot and key type does what -----------------------------------------------------

_SIGN_SLOTS = {
    KeySlot.SIG: CardOperation.COMPUTE_DIGITAL_SIGNATURE,
    KeySlot.AUT: CardOperation.INTERNAL_AUTHENTICATE,
}


def signing_operation(slot: KeySlot) -> CardOperation:
    """The card command that signs with ``slot``'s key: PSO:COMPUTE DIGITAL SIGNATURE for SIG,
    INTERNAL AUTHENTICATE for AUT (spec 7.2.10, 7.2.13); :class:`UnsupportedMechanismError`
    for DEC, which does not sign."""
    operation = _SIGN_SLOTS.get(slot)
    if operation is None:
        from opcard.errors import UnsupportedMechanismError
        from opcard.pkcs11.rv import ReturnValue

        raise UnsupportedMechanismError(
            f"the {slot.name} key cannot sign",
            return_value=ReturnValue.KEY_FUNCTION_NOT_PERMITTED,
        )
    return operation


#: Why every RSA-PSS mechanism (and TLS 1.3 with an RSA card key) is refused.
NO_PSS_MESSAGE = (
    "OpenPGP cards pad RSA signatures with PKCS#1 v1.5 only, so RSA-PSS is impossible; TLS 1.3 "
    "requires RSA-PSS, so TLS 1.3 client authentication with an RSA card key cannot work: use "
    "an ECC card key (P-256, P-384, Ed25519) or TLS 1.2"
)


class _Rules:
    """The mechanism tables, built once on first use (:func:`_rules`)."""

    def __init__(self) -> None:
        from opcard.pkcs11.constants import Mechanism, MechanismFlag

        # mechanism → the hash it applies first (None: the caller hashed)
        rsa_sign: dict[Mechanism, str | None] = {
            Mechanism.RSA_PKCS: None,
            **{h.rsa_pkcs: n for n, h in HASHES.items()},
        }
        ecdsa_sign: dict[Mechanism, str | None] = {
            Mechanism.ECDSA: None,
            **{h.ecdsa: n for n, h in HASHES.items()},
        }
        eddsa_sign: dict[Mechanism, str | None] = {Mechanism.EDDSA: None}
        self.signing_hash: dict[int, str] = {
            int(m): h for m, h in (*rsa_sign.items(), *ecdsa_sign.items()) if h is not None
        }

        # (slot, key type) → {mechanism: usage flag}
        usage: dict[tuple[KeySlot, KeyType], dict[int, MechanismFlag]] = {}
        for slot in (KeySlot.SIG, KeySlot.AUT):
            usage[slot, KeyType.RSA] = {int(m): MechanismFlag.SIGN for m in rsa_sign}
            usage[slot, KeyType.EC] = {int(m): MechanismFlag.SIGN for m in ecdsa_sign}
            usage[slot, KeyType.EC_EDWARDS] = {int(m): MechanismFlag.SIGN for m in eddsa_sign}
            usage[slot, KeyType.EC_MONTGOMERY] = {}
        usage[KeySlot.DEC, KeyType.RSA] = {int(Mechanism.RSA_PKCS): MechanismFlag.DECRYPT}
        usage[KeySlot.DEC, KeyType.EC] = {int(Mechanism.ECDH1_DERIVE): MechanismFlag.DERIVE}
        usage[KeySlot.DEC, KeyType.EC_MONTGOMERY] = {
            int(Mechanism.ECDH1_DERIVE): MechanismFlag.DERIVE
        }
        usage[KeySlot.DEC, KeyType.EC_EDWARDS] = {}
        self.usage = usage

        # (slot, key type) → {mechanism: (hash name or None, output format)}, signing slots
        table = {
            int(m): h for m, h in (*rsa_sign.items(), *ecdsa_sign.items(), *eddsa_sign.items())
        }
        formats = {
            KeyType.RSA: SignatureFormat.PKCS1_V1_5,
            KeyType.EC: SignatureFormat.ECDSA_RAW,
            KeyType.EC_EDWARDS: SignatureFormat.EDDSA,
            KeyType.EC_MONTGOMERY: SignatureFormat.EDDSA,
        }
        self.sign_plans: dict[
            tuple[KeySlot, KeyType], dict[int, tuple[str | None, SignatureFormat]]
        ] = {
            (slot, key_type): {m: (table[m], formats[key_type]) for m in usages}
            for (slot, key_type), usages in usage.items()
            if slot is not KeySlot.DEC
        }

        self.key_types: dict[int, tuple[KeyType, ...]] = {
            **{int(m): (KeyType.RSA,) for m in rsa_sign},
            **{int(m): (KeyType.EC,) for m in ecdsa_sign},
            int(Mechanism.EDDSA): (KeyType.EC_EDWARDS,),
            int(Mechanism.ECDH1_DERIVE): (KeyType.EC, KeyType.EC_MONTGOMERY),
        }
        self.impossible: dict[int, str] = {
            **{m: NO_PSS_MESSAGE for m in Mechanism if m.name.endswith("RSA_PKCS_PSS")},
            Mechanism.RSA_X_509: (
                "OpenPGP cards do not compute raw RSA (CKM_RSA_X_509); they pad PKCS#1 v1.5 "
                "themselves: use CKM_RSA_PKCS"
            ),
            Mechanism.RSA_PKCS_OAEP: (
                "OpenPGP cards decrypt PKCS#1 v1.5 (CKM_RSA_PKCS) only, not OAEP"
            ),
        }


@functools.cache
def _rules() -> _Rules:
    return _Rules()


def signing_hash(mechanism: int) -> str | None:
    """The hash a signing mechanism applies to the data first (``"sha256"`` for
    CKM_SHA256_RSA_PKCS and CKM_ECDSA_SHA256); None for one that signs its input as it is
    (CKM_RSA_PKCS, CKM_ECDSA, CKM_EDDSA) or does not sign."""
    return _rules().signing_hash.get(mechanism)


def _mechanism_name(mechanism: int) -> str:
    from opcard.pkcs11.constants import Mechanism

    try:
        return f"CKM_{Mechanism(mechanism).name}"
    except ValueError:
        return f"mechanism {mechanism:#x}"


def _key_name(key: KeyInfo) -> str:
    return f"{key.slot.name} key ({key.key_type.name}, {key.bits} bits)"


def mechanisms_for(key: KeyInfo) -> dict[Mechanism, MechanismFlag]:
    """The mechanisms ``key`` supports, each with its usage (SIGN, DECRYPT or DERIVE)."""
    from opcard.pkcs11.constants import Mechanism

    return {Mechanism(m): u for m, u in _rules().usage.get((key.slot, key.key_type), {}).items()}


def mechanism_flags(mechanism: int, key: KeyInfo) -> MechanismFlag:
    """CK_MECHANISM_INFO.flags of ``mechanism`` on ``key``: its usage, plus HW (the card does
    it); for ECC mechanisms also EC_F_P, EC_OID and EC_UNCOMPRESS. 0 when unsupported."""
    from opcard.pkcs11.constants import MechanismFlag

    usage = _rules().usage.get((key.slot, key.key_type), {}).get(mechanism)
    if usage is None:
        return MechanismFlag(0)
    flags = usage | MechanismFlag.HW
    if key.key_type is not KeyType.RSA:
        flags |= MechanismFlag.EC_F_P | MechanismFlag.EC_OID | MechanismFlag.EC_UNCOMPRESS
    return flags


def check_mechanism(mechanism: int, key: KeyInfo, usage: MechanismFlag) -> None:
    """Raise :class:`UnsupportedMechanismError` (with the reason, and the right CK_RV) unless
    ``key`` can do ``mechanism`` for ``usage`` (MechanismFlag.SIGN, DECRYPT or DERIVE)."""
    from opcard.pkcs11.constants import MechanismFlag

    rules = _rules()
    usages = rules.usage.get((key.slot, key.key_type))
    if usages is not None and usages.get(mechanism) == usage:
        return
    name = _mechanism_name(mechanism)
    reason = rules.impossible.get(mechanism)
    if reason is not None:
        from opcard.errors import UnsupportedMechanismError

        raise UnsupportedMechanismError(f"{name}: {reason}")
    key_types = rules.key_types.get(mechanism)
    if key_types is None:
        from opcard.errors import UnsupportedMechanismError

        raise UnsupportedMechanismError(f"{name} is not supported by OpenPGP cards")
    if key.key_type not in key_types:
        from opcard.errors import UnsupportedMechanismError
        from opcard.pkcs11.rv import ReturnValue

        raise UnsupportedMechanismError(
            f"{name} needs a {' or '.join(t.name for t in key_types)} key; the "
            f"{_key_name(key)} cannot do it",
            return_value=ReturnValue.KEY_TYPE_INCONSISTENT,
        )
    what = {MechanismFlag.SIGN: "sign", MechanismFlag.DECRYPT: "decrypt"}.get(usage, "derive")
    from opcard.errors import UnsupportedMechanismError
    from opcard.pkcs11.rv import ReturnValue

    raise UnsupportedMechanismError(
        f"the {_key_name(key)} cannot {what} with {name}",
        return_value=ReturnValue.KEY_FUNCTION_NOT_PERMITTED,
    )


def signature_length(key: KeyInfo) -> int:
    """Length of the signature ``key`` produces (C_Sign's output length)."""
    if key.key_type is KeyType.RSA:
        return (key.bits + 7) // 8
    if key.key_type is KeyType.EC_EDWARDS:
        return 64 if key.bits <= 256 else 114
    return 2 * ((key.bits + 7) // 8)


def _check_rsa_length(key: KeyInfo, data: bytes) -> bytes:
    modulus = (key.bits + 7) // 8
    if key.slot is KeySlot.AUT:
        # spec 7.2.13: the input must not exceed 40 % of the modulus length
        if len(data) * 10 > modulus * 4:
            from opcard.errors import DataLengthError

            raise DataLengthError(
                f"INTERNAL AUTHENTICATE takes at most 40 % of the modulus ({modulus * 4 // 10} "
                f"bytes for RSA-{key.bits}), not {len(data)}"
            )
    elif len(data) > modulus - 11:
        from opcard.errors import DataLengthError

        raise DataLengthError(
            f"PKCS#1 v1.5 signs at most {modulus - 11} bytes with RSA-{key.bits}, not {len(data)}"
        )
    if not data:
        from opcard.errors import DataLengthError

        raise DataLengthError("nothing to sign")
    return data


def prepare_sign_input(mechanism: int, key: KeyInfo, data: bytes) -> SignInput:
    """The card input for signing ``data`` with ``mechanism`` on ``key`` (SIG or AUT slot).

    Mechanisms with a hash (CKM_SHA256_RSA_PKCS, CKM_ECDSA_SHA256, …) hash ``data`` here:
    RSA then builds the DigestInfo, ECDSA normalises the hash to the curve. CKM_RSA_PKCS takes
    ``data`` as the card's input (a DigestInfo for the SIG key), CKM_ECDSA takes the hash,
    CKM_EDDSA the message. Raises :class:`UnsupportedMechanismError` or
    :class:`DataLengthError`; RSA-PSS is refused with the reason.
    """
    plans = _rules().sign_plans.get((key.slot, key.key_type))
    plan = None if plans is None else plans.get(mechanism)
    if plan is None:
        from opcard.pkcs11.constants import MechanismFlag

        check_mechanism(mechanism, key, MechanismFlag.SIGN)
        raise AssertionError("unreachable")  # pragma: no cover
    hash_name, output = plan
    operation = _SIGN_SLOTS[key.slot]
    if output is SignatureFormat.EDDSA:
        return SignInput(bytes(data), operation, output)
    if hash_name is not None:
        from cryptography.hazmat.primitives import hashes

        row = HASHES[hash_name]
        hasher = hashes.Hash(row.algorithm)
        hasher.update(data)
        digest = hasher.finalize()
        if output is SignatureFormat.PKCS1_V1_5:
            return SignInput(
                _check_rsa_length(key, row.digest_info_prefix + digest), operation, output
            )
        return SignInput(normalise_hash(digest, key.bits), operation, output)
    if output is SignatureFormat.PKCS1_V1_5:
        return SignInput(_check_rsa_length(key, bytes(data)), operation, output)
    if not 0 < len(data) <= max(_MAX_DIGEST, (key.bits + 7) // 8):
        from opcard.errors import DataLengthError

        raise DataLengthError(f"CKM_ECDSA takes a hash, not {len(data)} bytes")
    return SignInput(normalise_hash(data, key.bits), operation, output)


def prepare_digest_sign_input(key: KeyInfo, hash_name: str, digest: bytes) -> SignInput:
    """The card input for signing a ``digest`` made with ``hash_name`` (the fast TLS path).

    RSA: the DigestInfo; ECDSA: the digest normalised to the curve. The hash is explicit, never
    guessed from the digest length. EdDSA keys sign messages, not digests: refused.
    """
    operation = _SIGN_SLOTS.get(key.slot)
    if operation is None:
        from opcard.errors import UnsupportedMechanismError
        from opcard.pkcs11.rv import ReturnValue

        raise UnsupportedMechanismError(
            f"the {_key_name(key)} cannot sign",
            return_value=ReturnValue.KEY_FUNCTION_NOT_PERMITTED,
        )
    if key.key_type is KeyType.RSA:
        return SignInput(
            _check_rsa_length(key, digest_info(hash_name, digest)),
            operation,
            SignatureFormat.PKCS1_V1_5,
        )
    if key.key_type is KeyType.EC:
        size = (HASHES.get(hash_name) or _hash(hash_name)).digest_size
        if len(digest) != size:
            from opcard.errors import DataLengthError

            raise DataLengthError(f"a {hash_name} digest is {size} bytes, not {len(digest)}")
        return SignInput(normalise_hash(digest, key.bits), operation, SignatureFormat.ECDSA_RAW)
    from opcard.errors import UnsupportedMechanismError
    from opcard.pkcs11.rv import ReturnValue

    raise UnsupportedMechanismError(
        f"the {_key_name(key)} signs whole messages (PureEdDSA), not digests",
        return_value=ReturnValue.KEY_TYPE_INCONSISTENT,
    )

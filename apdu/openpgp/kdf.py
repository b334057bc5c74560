"""PIN derivation with the KDF-DO (§4.3.2): iterated and salted S2K (RFC 4880 §3.7.1.3).

When the card's KDF-DO (F9) says algorithm 03, every command that carries a PIN (VERIFY,
CHANGE REFERENCE DATA, RESET RETRY COUNTER, PUT DATA D3) carries ``S2K(salt ‖ PIN)`` instead
of the PIN: the card only ever sees the hash. Stdlib only (hashlib, secrets), both imported
where they are used: a command that carries no PIN does not load them.
"""

from __future__ import annotations

from apdu.openpgp.constants import KdfAlgorithm, KdfHash, Secret
from apdu.openpgp.objects import KdfDo

__all__ = [
    "DEFAULT_ITERATION_COUNT",
    "DEFAULT_PW1",
    "DEFAULT_PW3",
    "SALT_LENGTH",
    "decode_s2k_count",
    "derive",
    "derive_pin",
    "encode_s2k_count",
    "kdf_off",
    "new_kdf_do",
    "s2k",
]

#: Factory PINs (§4.3): the KDF-DO stores their hashes (87/88) when KDF is switched on.
DEFAULT_PW1 = b"123456"
DEFAULT_PW3 = b"12345678"
#: Salt length GnuPG (``g10/card-util.c gen_kdf_data``) and yubikit use.
SALT_LENGTH = 8
#: Bytes hashed per derivation. GnuPG uses gpg-agent's calibrated S2K count (~100 ms, at least
#: 65536, rounded to an RFC 4880 encodable value); yubikit fixes 0x780000 (7,864,320 bytes,
#: RFC 4880 count byte 0xCE). We take yubikit's fixed, encodable value: a deterministic cost.
DEFAULT_ITERATION_COUNT = 0x780000


def s2k(hash_algorithm: KdfHash, salt: bytes, secret: bytes, count: int) -> bytes:
    """RFC 4880 §3.7.1.3 iterated and salted S2K: hash ``count`` bytes of the repeated
    ``salt ‖ secret`` (at least the whole of it once). The output is the full digest."""
    data = bytes(salt) + bytes(secret)
    if not data:
        raise ValueError("nothing to hash")
    count = max(count, len(data))
    import hashlib

    digest = hashlib.new(KdfHash(hash_algorithm).hashlib_name)
    full, rest = divmod(count, len(data))
    # Hash in large blocks: the count is millions of bytes.
    block = data * max(1, 65536 // len(data))
    blocks, tail_repeats = divmod(full, max(1, 65536 // len(data)))
    for _ in range(blocks):
        digest.update(block)
    digest.update(data * tail_repeats)
    digest.update(data[:rest])
    return digest.digest()


def derive(kdf: KdfDo | None, secret: Secret, pin: bytes) -> bytes:
    """What the card must receive for ``pin`` of ``secret`` under ``kdf``.

    KDF off (or no KDF-DO): the PIN itself. KDF on: S2K with the secret's salt (a missing
    reset-code or PW3 salt falls back to PW1's, as in GnuPG's ``pin2hash_if_kdf``).
    """
    if kdf is None or not kdf.enabled:
        return bytes(pin)
    if kdf.hash_algorithm is None or kdf.iteration_count is None:
        raise ValueError("KDF-DO is enabled but incomplete")
    return s2k(KdfHash(kdf.hash_algorithm), kdf.salt(secret), pin, kdf.iteration_count)


def derive_pin(kdf: KdfDo | None, secret: Secret, pin: bytes | str) -> bytes:
    """:func:`derive` for a PIN given as text (encoded UTF-8) or bytes."""
    raw = pin.encode("utf-8") if isinstance(pin, str) else bytes(pin)
    return derive(kdf, secret, raw)


def new_kdf_do(
    *,
    hash_algorithm: KdfHash = KdfHash.SHA256,
    iteration_count: int = DEFAULT_ITERATION_COUNT,
    single_salt: bool = False,
    salts: tuple[bytes, bytes, bytes] | None = None,
) -> KdfDo:
    """A KDF-DO that switches KDF on (write it with PUT DATA F9 after verifying PW3).

    Fresh random salts from :mod:`secrets` (or ``salts`` for tests): one for PW1, the reset
    code and PW3, or a single PW1 salt with ``single_salt`` (GnuPG's "kdf-setup single").
    87/88 hold the hashes of the factory PINs, which the card takes as the new PW1/PW3
    reference values (the PINs return to their defaults, as the spec requires).
    """
    if salts is None:
        import secrets

        salts = (
            secrets.token_bytes(SALT_LENGTH),
            secrets.token_bytes(SALT_LENGTH),
            secrets.token_bytes(SALT_LENGTH),
        )
    salt_pw1, salt_rc, salt_pw3 = salts
    kdf = KdfDo(
        algorithm=KdfAlgorithm.ITERSALTED_S2K,
        hash_algorithm=hash_algorithm,
        iteration_count=iteration_count,
        salt_pw1=salt_pw1,
        salt_reset_code=None if single_salt else salt_rc,
        salt_pw3=None if single_salt else salt_pw3,
    )
    return KdfDo(
        algorithm=kdf.algorithm,
        hash_algorithm=kdf.hash_algorithm,
        iteration_count=kdf.iteration_count,
        salt_pw1=kdf.salt_pw1,
        salt_reset_code=kdf.salt_reset_code,
        salt_pw3=kdf.salt_pw3,
        initial_hash_pw1=derive(kdf, Secret.PW1, DEFAULT_PW1),
        initial_hash_pw3=derive(kdf, Secret.PW3, DEFAULT_PW3),
    )


def kdf_off() -> KdfDo:
    """The KDF-DO that switches KDF off (81 01 00)."""
    return KdfDo(algorithm=KdfAlgorithm.NONE)


def encode_s2k_count(count: int) -> int:
    """The RFC 4880 one-byte coded count for ``count`` (exact, else ValueError)."""
    for c in range(256):
        if decode_s2k_count(c) == count:
            return c
    raise ValueError(f"{count} is not an RFC 4880 encodable S2K count")


def decode_s2k_count(c: int) -> int:
    """RFC 4880 §3.7.1.3: ``(16 + (c & 15)) << ((c >> 4) + 6)``."""
    if not 0 <= c <= 0xFF:
        raise ValueError("coded count is one byte")
    return (16 + (c & 15)) << ((c >> 4) + 6)

"""Private key import templates (§4.4.3.12): the extended header list 4D for PUT DATA (odd).

::

    4D { CRT (B6|B8|A4 00),
         7F48 { 91 len(e) 92 len(p) 93 len(q) [94 len(u) 95 len(dp) 96 len(dq)] [97 len(n)] },
         5F48 { e ‖ p ‖ q [‖ u ‖ dp ‖ dq] [‖ n] } }                      RSA
    4D { CRT, 7F48 { 92 len(d) [99 len(public)] }, 5F48 { d [‖ public] } }   ECC

7F48 holds tags and lengths without values; 5F48 the values concatenated in the same order.
RSA values are padded to the sizes the card's algorithm attributes declare (p, q, u, dp, dq to
n/16 bytes, n to n/8, e to the declared exponent length); ECC scalars to the field size, and
X25519 scalars are sent byte-reversed (big-endian, as OpenPGP stores them). Stdlib only: the
CRT values are computed here from e, p and q.
"""

from __future__ import annotations

from apdu import tlv
from apdu.openpgp.constants import (
    Curve,
    Do,
    EcImportFormat,
    KeySlot,
    KeyTemplateTag,
    RsaImportFormat,
)
from apdu.openpgp.objects import EcAttributes, RsaAttributes

__all__ = ["ec_import_template", "rsa_import_template"]


def _fixed(value: int, length: int, what: str) -> bytes:
    if value < 0:
        raise ValueError(f"{what} is negative")
    if value.bit_length() > 8 * length:
        raise ValueError(f"{what} does not fit {length} bytes")
    return value.to_bytes(length, "big")


def _template(slot: KeySlot, parts: list[tuple[int, bytes]]) -> bytes:
    header = b"".join(tlv.encode_tag(tag) + tlv.encode_length(len(v)) for tag, v in parts)
    values = b"".join(v for _, v in parts)
    return tlv.build(
        Do.EXTENDED_HEADER_LIST,
        tlv.build(KeySlot(slot).crt)
        + tlv.build(Do.CARDHOLDER_PRIVATE_KEY_TEMPLATE, header)
        + tlv.build(Do.CARDHOLDER_PRIVATE_KEY, values),
    )


def rsa_import_template(
    slot: KeySlot,
    attributes: RsaAttributes,
    *,
    e: int,
    p: int,
    q: int,
    import_format: RsaImportFormat | None = None,
) -> bytes:
    """The 4D template importing the RSA key (e, p, q) into ``slot``.

    ``attributes`` are the slot's algorithm attributes as the card declares them (after any
    change): they fix the modulus size, the exponent length and, unless ``import_format``
    overrides it, the import format (standard: e, p, q; CRT adds 1/q mod p, d mod (p-1),
    d mod (q-1); "with modulus" adds n).
    """
    fmt = import_format if import_format is not None else attributes.import_format
    fmt = RsaImportFormat.STANDARD if fmt is None else RsaImportFormat(fmt)
    if attributes.n_bits % 16:
        raise ValueError(f"modulus size {attributes.n_bits} is not a multiple of 16 bits")
    half = attributes.n_bits // 16
    e_len = (attributes.e_bits + 7) // 8
    parts: list[tuple[int, bytes]] = [
        (KeyTemplateTag.PUBLIC_EXPONENT, _fixed(e, e_len, "public exponent")),
        (KeyTemplateTag.PRIME1_OR_EC_PRIVATE, _fixed(p, half, "prime p")),
        (KeyTemplateTag.PRIME2, _fixed(q, half, "prime q")),
    ]
    if fmt.crt:
        try:
            u = pow(q, -1, p)
            dp = pow(e, -1, p - 1)
            dq = pow(e, -1, q - 1)
        except ValueError as err:
            raise ValueError("e, p, q do not form an RSA key (no modular inverse)") from err
        parts += [
            (KeyTemplateTag.PQ, _fixed(u, half, "1/q mod p")),
            (KeyTemplateTag.DP1, _fixed(dp, half, "d mod (p-1)")),
            (KeyTemplateTag.DQ1, _fixed(dq, half, "d mod (q-1)")),
        ]
    if fmt.with_modulus:
        parts.append((KeyTemplateTag.MODULUS, _fixed(p * q, 2 * half, "modulus")))
    return _template(slot, parts)


def ec_import_template(
    slot: KeySlot,
    curve: Curve,
    private: bytes | int,
    *,
    public: bytes | None = None,
    attributes: EcAttributes | None = None,
) -> bytes:
    """The 4D template importing an ECC private key into ``slot``.

    ``private`` is the big-endian scalar for Weierstrass curves (bytes or int), the 32-byte
    seed for Ed25519, or the 32-byte RFC 7748 private key for X25519 (this function reverses
    it). ``public`` (04 ‖ X ‖ Y, or the raw 32 bytes for 25519) is included when given, or
    required when ``attributes`` ask for it (import format FF).
    """
    size = curve.size
    if isinstance(private, int):
        if curve.is_25519:
            raise ValueError("give 25519 private keys as their 32 raw bytes")
        d = _fixed(private, size, "private scalar")
    else:
        raw = bytes(private)
        if curve.is_25519:
            if len(raw) != size:
                raise ValueError(f"{curve.name} private key must be {size} bytes")
            d = raw[::-1] if curve is Curve.X25519 else raw
        else:
            d = _fixed(int.from_bytes(raw, "big"), size, "private scalar")
    if (
        attributes is not None
        and attributes.import_format == EcImportFormat.WITH_PUBLIC_KEY
        and public is None
    ):
        raise ValueError("the slot's attributes require the public key in the import")
    parts: list[tuple[int, bytes]] = [(KeyTemplateTag.PRIME1_OR_EC_PRIVATE, d)]
    if public is not None:
        if not public:
            raise ValueError("empty public key")
        parts.append((KeyTemplateTag.EC_PUBLIC, bytes(public)))
    return _template(slot, parts)

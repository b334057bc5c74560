"""opcard: OpenPGP smartcards as PKCS#11-like tokens, from Python and the command line.

Example::

    import opcard

    with opcard.open_card() as card, card.session() as session:
        session.login("123456")
        key = session.private_key("aut")
        signature = key.to_cryptography().sign(data, ec.ECDSA(hashes.SHA256()))

Cards are found across PC/SC readers by AID serial (:func:`list_cards`, :func:`open_card`);
a :class:`Card` gives :class:`Session` objects with login state, PKCS#11-style objects and
attributes (:mod:`opcard.objects`), mechanisms (:mod:`opcard.pkcs11.mechanisms`), ``pkcs11:`` URIs
(:mod:`opcard.pkcs11.uri`) and a one-APDU signature path (:meth:`Session.digest_signer`).
"""

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from opcard.card import Card, CardFeatures, CardInfo, TokenInfo, list_cards, open_card
    from opcard.errors import (
        AlgorithmRefusedError,
        CardError,
        CardInUseError,
        NoCardError,
        NotLoggedInError,
        NotSupportedByCardError,
        ObjectNotFoundError,
        OpcardError,
        PinBlockedError,
        SeveralCardsError,
        WrongPinError,
    )
    from opcard.objects import Certificate, DataObject, PrivateKey, PublicKey
    from opcard.pkcs11 import Attribute, KeyType, Mechanism, ObjectClass, UserType
    from opcard.session import DigestSigner, Session

# The names above are imported on first use (PEP 562), so that ``import opcard.cli`` or
# ``import opcard.errors`` does not load every layer: the command line starts faster.
_LAZY = {
    **dict.fromkeys(
        ("Card", "CardFeatures", "CardInfo", "TokenInfo", "list_cards", "open_card"), "opcard.card"
    ),
    **dict.fromkeys(
        (
            "AlgorithmRefusedError",
            "CardError",
            "CardInUseError",
            "NoCardError",
            "NotLoggedInError",
            "NotSupportedByCardError",
            "ObjectNotFoundError",
            "OpcardError",
            "PinBlockedError",
            "SeveralCardsError",
            "WrongPinError",
        ),
        "opcard.errors",
    ),
    **dict.fromkeys(("Certificate", "DataObject", "PrivateKey", "PublicKey"), "opcard.objects"),
    **dict.fromkeys(
        ("Attribute", "KeyType", "Mechanism", "ObjectClass", "UserType"), "opcard.pkcs11"
    ),
    **dict.fromkeys(("DigestSigner", "Session"), "opcard.session"),
}


def __getattr__(name: str) -> object:
    module = _LAZY.get(name)
    if module is None:
        raise AttributeError(f"module 'opcard' has no attribute {name!r}")
    import importlib

    value = getattr(importlib.import_module(module), name)
    globals()[name] = value
    return value


def __dir__() -> list[str]:
    return sorted({*globals(), *_LAZY})


__all__ = [
    "AlgorithmRefusedError",
    "Attribute",
    "Card",
    "CardError",
    "CardFeatures",
    "CardInUseError",
    "CardInfo",
    "Certificate",
    "DataObject",
    "DigestSigner",
    "KeyType",
    "Mechanism",
    "NoCardError",
    "NotLoggedInError",
    "NotSupportedByCardError",
    "ObjectClass",
    "ObjectNotFoundError",
    "OpcardError",
    "PinBlockedError",
    "PrivateKey",
    "PublicKey",
    "Session",
    "SeveralCardsError",
    "TokenInfo",
    "UserType",
    "WrongPinError",
    "list_cards",
    "open_card",
]

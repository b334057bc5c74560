"""opcard: OpenPGP smartcards as PKCS#11-like tokens, from Python and the command line.

Example::

    import opcard

    with opcard.open_card() as card, card.session() as session:
        session.login("123456")
        key = session.get_private_key("aut")
        signature = key.to_cryptography().sign(data, ec.ECDSA(hashes.SHA256()))

Cards are found across PC/SC readers by AID serial (:func:`list_cards`, :func:`open_card`);
a :class:`Card` gives :class:`Session` objects with login state, PKCS#11-style objects and
attributes (:mod:`opcard.objects`), mechanisms (:mod:`opcard.pkcs11.mechanisms`), ``pkcs11:`` URIs
(:mod:`opcard.pkcs11.uri`) and a one-APDU signature path (:meth:`Session.digest_signer`).
"""

TYPE_CHECKING = False  # typing is not imported at run time (opcard --help: ~2.5 ms)

if TYPE_CHECKING:
    from apdu.openpgp.constants import Do, KeySlot, UifMode
    from opcard.algorithms import KeyAlgorithm
    from opcard.card import Card, CardFeatures, CardInfo, TokenInfo, list_cards, open_card
    from opcard.errors import *  # noqa: F403 - every public exception (opcard.errors.__all__)
    from opcard.objects import CardObject, Certificate, DataObject, PrivateKey, PublicKey
    from opcard.pkcs11 import (
        Attribute,
        KeyType,
        Mechanism,
        ObjectClass,
        TokenFlag,
        UserType,
    )
    from opcard.session import DigestSigner, LoginState, Session

#: The public names of opcard.errors (its ``__all__``: tests/unit/test_lazy_imports.py checks
#: that the two lists agree), exported here too. Listed, not read from opcard.errors, so that
#: ``import opcard`` (and the command line, whose package this is) imports no error module.
_ERRORS = [
    "CARD_IN_USE_REMEDY",
    "CLIENT_REJECTED_ALERTS",
    "AlertCode",
    "AlgorithmRefusedError",
    "CardError",
    "CardInUseError",
    "CardNotAnsweringError",
    "CardOperationError",
    "CardRemovedError",
    "CertificateFormatError",
    "CertificateTooLargeError",
    "ClientRejectedError",
    "DataLengthError",
    "MechanismError",
    "MultipleObjectsError",
    "NoCardError",
    "NotLoggedInError",
    "NotSupportedByCardError",
    "ObjectLookupError",
    "ObjectNotFoundError",
    "OpcardError",
    "OpenPgpError",
    "OpenPgpFormatError",
    "PcscUnavailableError",
    "PinBlockedError",
    "PinError",
    "PinFormatError",
    "PinKind",
    "SeveralCardsError",
    "ServerCertificateError",
    "TlsConnectError",
    "TlsError",
    "TlsHandshakeError",
    "TlsVersionError",
    "UnsupportedKeyError",
    "UnsupportedMechanismError",
    "UriError",
    "WrongPinError",
    "translate_error",
    "translated",
]

# The names above are imported on first use (PEP 562), so that ``import opcard.cli`` or
# ``import opcard.errors`` does not load every layer: the command line starts faster.
_LAZY = {
    **dict.fromkeys(("Do", "KeySlot", "UifMode"), "apdu.openpgp.constants"),
    **dict.fromkeys(
        ("Card", "CardFeatures", "CardInfo", "TokenInfo", "list_cards", "open_card"), "opcard.card"
    ),
    **dict.fromkeys(_ERRORS, "opcard.errors"),
    **dict.fromkeys(
        ("CardObject", "Certificate", "DataObject", "PrivateKey", "PublicKey"), "opcard.objects"
    ),
    **dict.fromkeys(
        ("Attribute", "KeyType", "Mechanism", "ObjectClass", "TokenFlag", "UserType"),
        "opcard.pkcs11",
    ),
    **dict.fromkeys(("KeyAlgorithm",), "opcard.algorithms"),
    **dict.fromkeys(("DigestSigner", "LoginState", "Session"), "opcard.session"),
}


if not TYPE_CHECKING:  # type checkers see the imports above, and no catch-all attribute

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
    "Attribute",
    "Card",
    "CardFeatures",
    "CardInfo",
    "CardObject",
    "Certificate",
    "DataObject",
    "DigestSigner",
    "Do",
    "KeyAlgorithm",
    "KeySlot",
    "KeyType",
    "LoginState",
    "Mechanism",
    "ObjectClass",
    "PrivateKey",
    "PublicKey",
    "Session",
    "TokenFlag",
    "TokenInfo",
    "UifMode",
    "UserType",
    "list_cards",
    "open_card",
]
__all__ += _ERRORS

"""opcard.arguments: each accepted spelling maps to the value opcard uses, and each refusal
names what to pass (pure functions, no card)."""

from __future__ import annotations

import pytest
from cryptography.hazmat.primitives import hashes

from apdu.openpgp.constants import Do, KeySlot, UifMode
from apdu.openpgp.objects import ExtendedCapabilities, ExtendedCapability
from opcard import arguments
from opcard.errors import DataLengthError, UnsupportedMechanismError
from opcard.pkcs11 import Mechanism, ObjectClass


@pytest.mark.parametrize("given", [KeySlot.AUT, "aut", "AUT", "Aut", 3])
def test_key_slots(given: object) -> None:
    assert arguments.key_slot(given) is KeySlot.AUT  # type: ignore[arg-type]


@pytest.mark.parametrize(("given", "kind"), [(True, TypeError), (None, TypeError), (4, ValueError)])
def test_key_slot_refusals(given: object, kind: type[Exception]) -> None:
    with pytest.raises(kind, match="sig"):
        arguments.key_slot(given)  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "tag"),
    [
        ("url", Do.URL),
        ("URL", Do.URL),
        ("login", Do.LOGIN_DATA),
        ("LOGIN_DATA", Do.LOGIN_DATA),
        ("Login data", Do.LOGIN_DATA),
        ("name", Do.NAME),
        ("lang", Do.LANGUAGE),
        ("sex", Do.SEX),
        ("private1", Do.PRIVATE_USE_1),
        ("private-4", Do.PRIVATE_USE_4),
        ("PRIVATE_USE_2", Do.PRIVATE_USE_2),
        ("Private DO 3", Do.PRIVATE_USE_3),
        (0x5F50, Do.URL),
        (Do.SEX, Do.SEX),
    ],
)
def test_data_object_names(given: object, tag: Do) -> None:
    assert arguments.data_object(given) is tag  # type: ignore[arg-type]


def test_data_object_refusals() -> None:
    with pytest.raises(ValueError, match="use one of url, login, name, language, sex, private1"):
        arguments.data_object("homepage")
    with pytest.raises(TypeError, match="Do member"):
        arguments.data_object(b"url")  # type: ignore[arg-type]
    assert arguments.data_object(0x1234) == 0x1234  # a tag opcard has no name for: as given


@pytest.mark.parametrize(
    "given", ["ECDSA_SHA256", "CKM_ECDSA_SHA256", "ecdsa-sha256", " ckm_ecdsa_sha256 ", 0x1044]
)
def test_mechanism_names(given: object) -> None:
    assert arguments.mechanism(given) is Mechanism.ECDSA_SHA256  # type: ignore[arg-type]


def test_mechanism_refusals() -> None:
    with pytest.raises(UnsupportedMechanismError, match="did you mean ECDSA_SHA256"):
        arguments.mechanism("ECDSA_SHA265")
    with pytest.raises(TypeError, match=r"opcard\.Mechanism"):
        arguments.mechanism(1.5)  # type: ignore[arg-type]


@pytest.mark.parametrize("given", [hashes.SHA384(), hashes.SHA384, "sha384", "SHA-384"])
def test_hashes(given: object) -> None:
    assert arguments.hash_name(given) == "sha384"  # type: ignore[arg-type]


@pytest.mark.parametrize(
    ("given", "expected"),
    [
        ("certificate", ObjectClass.CERTIFICATE),
        ("cert", ObjectClass.CERTIFICATE),
        ("CKO_PRIVATE_KEY", ObjectClass.PRIVATE_KEY),
        ("private", ObjectClass.PRIVATE_KEY),
        ("public_key", ObjectClass.PUBLIC_KEY),
        ("data", ObjectClass.DATA),
        (1, ObjectClass.CERTIFICATE),
    ],
)
def test_object_classes(given: object, expected: ObjectClass) -> None:
    assert arguments.object_class(given) is expected


@pytest.mark.parametrize(
    ("given", "mode"),
    [
        ("on", UifMode.ENABLED),
        ("off", UifMode.DISABLED),
        ("fixed", UifMode.PERMANENTLY_ENABLED),
        ("cached-fixed", UifMode.PERMANENTLY_CACHED),
        ("PERMANENTLY_ENABLED", UifMode.PERMANENTLY_ENABLED),
        (1, UifMode.ENABLED),
    ],
)
def test_touch_modes(given: object, mode: UifMode) -> None:
    assert arguments.touch_mode(given) is mode  # type: ignore[arg-type]


def test_pins_and_data() -> None:
    assert arguments.pin("012345", "user PIN", "x") == "012345"
    with pytest.raises(TypeError, match=r"give the user PIN as a string: s.login\('123456'\)"):
        arguments.pin(12345, "user PIN", "s.login('123456')")  # type: ignore[arg-type]
    assert arguments.data(bytearray(b"ab"), "the data") == b"ab"
    with pytest.raises(TypeError, match=r"encode the text first, e.g. 'text'.encode\(\)"):
        arguments.data("text", "the data")  # type: ignore[arg-type]
    assert arguments.do_value(Do.NAME, "Müller<<Jörg") == "Müller<<Jörg".encode("latin-1")
    assert arguments.do_value(Do.URL, "https://ä.example") == "https://ä.example".encode()


def _caps(special: int) -> ExtendedCapabilities:
    return ExtendedCapabilities(ExtendedCapability(0), 0, 0, 2048, max_special_do_length=special)


def test_do_lengths() -> None:
    arguments.check_do_length(Do.URL, b"u" * 255, _caps(255))
    with pytest.raises(DataLengthError, match=r"URL \(DO 5F50\): 256 bytes is too long"):
        arguments.check_do_length(Do.URL, b"u" * 256, _caps(255))
    arguments.check_do_length(Do.URL, b"u" * 5000, None)  # no C0: the card decides
    with pytest.raises(DataLengthError, match="at most 1 bytes"):
        arguments.check_do_length(Do.SEX, b"12", None)


@pytest.mark.parametrize(
    ("der", "problem"),
    [
        (b"", "no bytes"),
        (b"\x31\x00", "these bytes with 31"),
        (b"\x30", "the bytes end after the first byte"),
        (b"\x30\x85\x00\x00\x00\x00\x00", "the outer length is malformed"),
        (b"\x30\x05\x02\x01", "cut short: it announces 7 bytes, 4 are given"),
        (b"\x30\x00\x00", "1 bytes follow the certificate's DER"),
        (b"\x30\x82\x00\x01\x00", None),
    ],
)
def test_der_problems(der: bytes, problem: str | None) -> None:
    found = arguments._der_problem(der)
    assert (found is None) if problem is None else (found is not None and problem in found)

"""opcard.pkcs11.template: the one PKCS#11 template matcher (objects, URIs, opcard serve)."""

from __future__ import annotations

import pytest

from opcard.errors import NotLoggedInError
from opcard.pkcs11 import Attribute, ObjectClass
from opcard.pkcs11.template import matches_template, normalise_template
from opcard.pkcs11.uri import Pkcs11Uri

SIG_KEY = {
    Attribute.CLASS: ObjectClass.PRIVATE_KEY,
    Attribute.ID: b"\x01",
    Attribute.LABEL: "Signature key",
    Attribute.SIGN: True,
}


@pytest.mark.parametrize(
    ("template", "expected"),
    [
        ({}, True),  # an empty template matches every object
        ({Attribute.CLASS: ObjectClass.PRIVATE_KEY}, True),
        ({Attribute.CLASS: int(ObjectClass.PRIVATE_KEY)}, True),
        ({Attribute.CLASS: ObjectClass.PUBLIC_KEY}, False),
        ({Attribute.LABEL: "Signature key", Attribute.ID: b"\x01"}, True),
        ({Attribute.LABEL: b"Signature key", Attribute.ID: bytearray(b"\x01")}, True),
        ({Attribute.LABEL: "Signature key", Attribute.ID: b"\x02"}, False),  # every attribute
        ({Attribute.SIGN: True}, True),
        ({Attribute.SIGN: False}, False),
        ({Attribute.DECRYPT: False}, False),  # the object lacks it: no match, even for False
        ({0x80001234: b"vendor"}, False),  # unknown attribute
    ],
)
def test_matches_template(template: dict[int, object], expected: bool) -> None:
    wanted = normalise_template(template)
    assert matches_template(wanted, SIG_KEY) is expected

    def lookup(attribute: int) -> object:
        return SIG_KEY[attribute]  # type: ignore[index]

    assert matches_template(wanted, lookup) is expected


def test_values_that_cannot_be_shown_do_not_match() -> None:
    def value_of(attribute: int) -> object:
        if attribute == Attribute.VALUE:
            raise NotLoggedInError("private DO 3 can only be read after login")
        if attribute == Attribute.LABEL:
            return b"\xff"  # not UTF-8
        if attribute == Attribute.ID:
            return "not bytes"
        raise KeyError(attribute)

    for template in ({Attribute.VALUE: b"x"}, {Attribute.LABEL: "x"}, {Attribute.ID: b"x"}):
        assert not matches_template(normalise_template(template), value_of)


def test_a_wrong_template_type_is_the_callers_mistake() -> None:
    with pytest.raises(TypeError, match="CKA_LABEL"):
        normalise_template({Attribute.LABEL: 5})
    with pytest.raises(TypeError):
        normalise_template({"label": "x"})  # type: ignore[dict-item]


def test_the_uri_matches_as_the_template() -> None:
    """``Pkcs11Uri.matches_object`` is the same matcher over the URI's object template."""
    for text in ("pkcs11:id=%01;type=private", "pkcs11:object=Signature%20key", "pkcs11:id=%02"):
        uri = Pkcs11Uri.parse(text)
        assert uri.matches_object(SIG_KEY) is matches_template(uri.object_template(), SIG_KEY)

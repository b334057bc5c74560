"""opcard's integer enumerations built by :func:`apdu._enums.fast_enum` (issue #15: the PKCS#11
tables, the exit codes, the wire's call ids) are the ones a class statement builds: each
module is loaded a second time with ``fast_enum`` taking the class statement's route, and every
enumeration is compared with its twin by tests/unit/test_enums.py's check
(``enum._test_simple_enum`` and behaviour: members, values, repr/str/format, pickling,
lookups, flag arithmetic)."""

from __future__ import annotations

import importlib

import pytest
from test_enums import fast_enums
from test_enums import test_fast_enum_equals_the_class_statement as compare

MODULES = (
    "opcard.pkcs11.rv",
    "opcard.pkcs11.keytype",
    "opcard.pkcs11.basic",
    "opcard.pkcs11.constants",
    "opcard.pkcs11.mechanisms",
    "opcard.exitcodes",
    "opcard.serve.wire",
)

PAIRS = [
    pytest.param(module, name, id=f"{module}.{name}")
    for module in MODULES
    for name, _ in fast_enums(importlib.import_module(module))
]


def test_every_integer_enumeration_is_compared() -> None:
    names = {p.values[1] for p in PAIRS}
    assert {"ReturnValue", "KeyType", "ObjectClass", "Mechanism", "MechanismFlag"} <= names
    assert {"ExitCode", "Call", "WireType", "CardOperation"} <= names
    assert len(PAIRS) == 1 + 1 + 2 + 13 + 2 + 1 + 2


@pytest.mark.parametrize(("module_name", "name"), PAIRS)
def test_opcard_fast_enum_equals_the_class_statement(
    module_name: str, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    compare(module_name, name, monkeypatch)


def test_re_exports_are_the_same_classes() -> None:
    from opcard import pkcs11
    from opcard.pkcs11 import basic, constants, keytype, rv

    assert constants.KeyType is keytype.KeyType is pkcs11.KeyType
    assert constants.ReturnValue is rv.ReturnValue is pkcs11.ReturnValue
    assert constants.ObjectClass is basic.ObjectClass is pkcs11.ObjectClass
    assert constants.UserType is basic.UserType is pkcs11.UserType

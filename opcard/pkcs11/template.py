"""PKCS#11 templates: the one matcher of opcard (C_FindObjectsInit, ``pkcs11:`` URIs, ``opcard
serve``).

A template matches an object when every attribute it names is one the object has, with an equal
value once both are in their canonical Python form (:func:`normalise_attribute_value`: a label
as ``str`` whether given as text or UTF-8 bytes, an id as ``bytes`` whether given as bytes or a
bytearray, a class as ``int``, …). An attribute the object does not have, or cannot show now (a
private data object's value before login), matches nothing; so does a value that cannot be put
in the attribute's form (a label that is not UTF-8). An empty template matches every object.

Normalise the template once, before any I/O, with :func:`normalise_template` (it raises
``TypeError``/``ValueError`` for a caller's mistake); :func:`matches_template` then compares.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping

from opcard.errors import NotLoggedInError
from opcard.pkcs11.constants import AttributeValue, normalise_attribute_value, normalise_template

__all__ = ["matches_template", "normalise_template"]

#: What reading an attribute the object cannot show raises: absent (KeyError), unknown to
#: PKCS#11 or not in the attribute's form (ValueError, TypeError), private before login.
_NO_VALUE = (KeyError, ValueError, TypeError, NotLoggedInError)


def matches_template(
    template: Mapping[int, AttributeValue],
    values: Mapping[int, object] | Callable[[int], object],
) -> bool:
    """Whether an object matches ``template`` (normalised: :func:`normalise_template`).

    ``values`` gives the object's attributes: a mapping (attribute type → value), or a function
    that returns one attribute's value and raises ``KeyError`` when the object does not have it
    (as ``CardObject.__getitem__`` does). Values are compared in their normalised form."""
    lookup = values.__getitem__ if isinstance(values, Mapping) else values
    for attribute, wanted in template.items():
        try:
            have = normalise_attribute_value(attribute, lookup(attribute))
        except _NO_VALUE:
            return False
        if have != wanted:
            return False
    return True

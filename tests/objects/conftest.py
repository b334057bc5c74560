"""Fixtures for the object-layer tests: an opcard.Card over the in-process emulated card.

``rig(profile, variant, **card_options)`` gives a :class:`Rig`: the emulated card (``emu``, a
``fixtures.card.OpenPGPCard``), the loopback transport and the ``opcard.Card`` on it, plus the
demo material the card was personalised with (``demo``). Parametrised fixtures ``profile``
("extended", "short") and ``variant`` ("demo-rsa", "demo-ecc", "demo-25519") run a test on
each combination.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import pytest
from opcard_support import Rig, make_rig

PROFILES = ("extended", "short")
VARIANTS = ("demo-rsa", "demo-ecc", "demo-25519")


@pytest.fixture(params=PROFILES)
def profile(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture(params=VARIANTS)
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)


@pytest.fixture
def rig() -> Iterator[Callable[..., Rig]]:
    """Factory ``rig(profile="extended", variant="demo-ecc", **card_options)``; the cards it
    made are closed at the end of the test."""
    made: list[Rig] = []

    def make(profile: str = "extended", variant: str | None = "demo-ecc", **kw: object) -> Rig:
        r = make_rig(profile, variant, **kw)
        made.append(r)
        return r

    yield make
    for r in made:
        r.card.close()


@pytest.fixture
def card_rig(rig: Callable[..., Rig], profile: str, variant: str) -> Rig:
    """The card of every profile x variant combination."""
    return rig(profile, variant)

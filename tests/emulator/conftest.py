"""Fixtures for the in-process emulator tests: cards of every profile, fresh or personalised."""

from __future__ import annotations

from collections.abc import Callable

import pytest
from card_apdus import Driver

from fixtures.card import OpenPGPCard
from fixtures.personalize import personalize
from fixtures.profiles import GENERIC_PROFILES


def make_driver(
    profile: str = "extended", personalisation: str | None = None, **kw: object
) -> Driver:
    card = OpenPGPCard(profile, **kw)  # type: ignore[arg-type]
    if personalisation:
        personalize(card, personalisation)
    card.power_on()
    d = Driver(card)
    assert d.select().sw == 0x9000
    return d


@pytest.fixture
def fresh() -> Driver:
    """A factory-fresh card (extended profile), application selected."""
    return make_driver()


@pytest.fixture
def make() -> Callable[..., Driver]:
    return make_driver


@pytest.fixture(params=sorted(GENERIC_PROFILES))
def profile(request: pytest.FixtureRequest) -> str:
    """The generic (full v3.4) profiles; the card families have tests of their own
    (test_emu_families.py)."""
    return str(request.param)


@pytest.fixture(params=["demo-rsa", "demo-ecc", "demo-25519"])
def variant(request: pytest.FixtureRequest) -> str:
    return str(request.param)

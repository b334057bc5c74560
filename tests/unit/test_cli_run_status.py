"""``opcard status`` writes key creation times without :mod:`datetime` (issue #15): the same
text as ``datetime.fromtimestamp(t, UTC).strftime(...)`` for every time a card can hold (the
generation-time DOs are 4-byte Unix times)."""

from __future__ import annotations

from datetime import UTC, datetime

from hypothesis import given, settings
from hypothesis import strategies as st

from opcard.cli.run.status import _iso


@settings(max_examples=2000, deadline=None)
@given(st.integers(min_value=1, max_value=2**32 - 1))
def test_creation_time_text_is_datetimes(timestamp: int) -> None:
    expected = datetime.fromtimestamp(timestamp, UTC).strftime("%Y-%m-%dT%H:%M:%SZ")
    assert _iso(timestamp) == expected


def test_no_creation_time() -> None:
    assert _iso(0) is None
    assert _iso(None) is None
    assert _iso(2**32 - 1) == "2106-02-07T06:28:15Z"

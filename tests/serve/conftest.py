"""Fixtures for the ``opcard serve`` tests (see serve_support.py for the helpers).

``served(variants=("demo-rsa",), profile="extended", login=False)`` starts a server in this
process with emulated cards behind it (loopback transport) and stops it at the end of the
test; ``p11_client`` is p11-kit's client module (FAILS in CI when missing).
"""

from __future__ import annotations

import contextlib
from collections.abc import Callable, Iterator
from typing import Any

import pytest
from serve_support import P11_CLIENT, Served, serving


@pytest.fixture
def served() -> Iterator[Callable[..., Served]]:
    with contextlib.ExitStack() as stack:

        def start(*variants: str, **kw: Any) -> Served:
            return stack.enter_context(serving(variants or ("demo-rsa",), **kw))

        yield start


@pytest.fixture
def p11_client() -> str:
    # imported here: at module level ``conftest`` would be this file itself
    from conftest import require_file

    return str(require_file(P11_CLIENT))
